from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from django.db import transaction

from core.bulk import BulkResult

KINDS = ("customers", "products", "orders")
FORMATS = ("standard", "retail")


@dataclass
class LineError:
    line: int
    field: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "message": self.message}


@dataclass
class ImportReport:
    kind: str
    partial: bool
    rows_read: int = 0
    results: dict[str, BulkResult] = field(default_factory=dict)
    errors: list[LineError] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def committed(self) -> bool:
        return self.partial or not self.errors

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "partial": self.partial,
            "committed": self.committed,
            "rows_read": self.rows_read,
            "dropped": dict(sorted(self.dropped.items())),
            "dropped_total": sum(self.dropped.values()),
            **{
                name: {
                    k: v for k, v in result.as_dict().items() if k not in ("errors", "partial", "committed")
                }
                for name, result in self.results.items()
            },
            "errors": [e.as_dict() for e in self.errors],
        }


class _Rollback(Exception):
    pass


def read_csv(stream: IO[str] | IO[bytes]) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows with their line number in the file (the header is line 1)."""
    if isinstance(stream.read(0), bytes):
        stream = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.DictReader(stream)
    if not reader.fieldnames:
        return
    for row in reader:
        yield reader.line_num, {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}


def cells(row: dict[str, str], names: Iterable[str]) -> dict[str, Any]:
    """Non-empty cells only: an empty cell leaves the stored value as it is."""
    return {name: row[name] for name in names if row.get(name, "") != ""}


def run_steps(
    report: ImportReport, steps: list[tuple[str, Callable[..., BulkResult], list[dict], list[int]]]
) -> ImportReport:
    """Run the services in order inside one transaction; roll everything back if the file is rejected."""
    try:
        with transaction.atomic():
            for name, service, rows, lines in steps:
                if not rows:
                    report.results[name] = BulkResult(partial=report.partial)
                    continue
                result = service(rows=rows, partial=report.partial)
                report.results[name] = result
                report.errors.extend(LineError(lines[e.index], e.field, e.message) for e in result.errors)
            if report.errors and not report.partial:
                raise _Rollback
    except _Rollback:
        for result in report.results.values():
            result.created = result.updated = result.unchanged = 0
    report.errors.sort(key=lambda e: (e.line, e.field))
    return report


def import_file(
    stream: IO[str] | IO[bytes],
    *,
    kind: str,
    partial: bool = False,
    file_format: str = "standard",
    demo_contacts: bool = False,
) -> ImportReport:
    from customers.importers import retail, standard

    if file_format == "retail":
        return retail.import_retail(stream, partial=partial, demo_contacts=demo_contacts)
    if kind not in KINDS:
        raise ValueError(f"Unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    return standard.IMPORTERS[kind](stream, partial=partial)
