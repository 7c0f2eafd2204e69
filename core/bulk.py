"""The outcome of a bulk write: counts and a per-row error report.

Every bulk service (customers, products, events, orders, CSV imports) answers with one of these,
so the API, the importers and the admin show the same report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.rows import RowError


@dataclass
class BulkResult:
    received: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    partial: bool = False
    errors: list[RowError] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rejected(self) -> bool:
        """True when nothing was written because some row was bad and the call was atomic."""
        return bool(self.errors) and not self.partial

    @property
    def conflict_only(self) -> bool:
        return bool(self.errors) and all(e.code == "conflict" for e in self.errors)

    def as_dict(self) -> dict[str, Any]:
        body = {
            "received": self.received,
            "created": self.created,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "partial": self.partial,
            "committed": not self.rejected,
            "errors": [e.as_dict() for e in self.errors],
        }
        body.update(self.extra)
        return body

    def finish_rejected(self) -> BulkResult:
        """Atomic call with bad rows: nothing was written, so nothing counts as created/updated."""
        self.created = self.updated = self.unchanged = 0
        self.failed = len({e.index for e in self.errors})
        return self
