from __future__ import annotations

import csv
import io
import re
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


_UNDECODABLE = re.compile("[\udc80-\udcff]")


class FileFormatError(ValueError):
    """The file itself is unreadable from this line on (not UTF-8, broken CSV): nothing is imported."""

    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


def read_csv(stream: IO[str] | IO[bytes]) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows with their line number in the file (the header is line 1).

    Raises FileFormatError for bytes that are not UTF-8, a field over the CSV module's size limit,
    a repeated column name, or a row with more cells than the header has columns (the file is
    misaligned): import_file turns it into a one-line report and writes nothing.
    """
    if isinstance(stream.read(0), bytes):
        # Undecodable bytes become lone surrogates, found below with their line number.
        stream = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.DictReader(stream)
    try:
        if not reader.fieldnames:
            return
        names = [name.strip() for name in reader.fieldnames]
        if any(_UNDECODABLE.search(name) for name in names):
            raise FileFormatError(1, "Not UTF-8 text: the header has bytes that are not UTF-8.")
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise FileFormatError(1, f"Column(s) named more than once: {', '.join(repeated)}.")
        for row in reader:
            if None in row:
                raise FileFormatError(
                    reader.line_num, f"{len(row[None])} more cell(s) than the header has columns."
                )
            if any(_UNDECODABLE.search(v) for v in row.values() if v):
                raise FileFormatError(
                    reader.line_num, "Not UTF-8 text: this line has bytes that are not UTF-8."
                )
            yield reader.line_num, {(k or "").strip(): (v or "").strip() for k, v in row.items()}
    except UnicodeDecodeError as error:
        raise FileFormatError(reader.line_num + 1, f"Not UTF-8 text ({error.reason}).") from None
    except csv.Error as error:
        raise FileFormatError(reader.line_num, f"Not readable as CSV ({error}).") from None


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

    if file_format != "retail" and kind not in KINDS:
        raise ValueError(f"Unknown kind {kind!r}; use one of {', '.join(KINDS)}")
    try:
        if file_format == "retail":
            return retail.import_retail(stream, partial=partial, demo_contacts=demo_contacts)
        return standard.IMPORTERS[kind](stream, partial=partial)
    except FileFormatError as error:
        # Importers read the whole file before writing anything, so there is nothing to undo.
        report = ImportReport(kind="retail" if file_format == "retail" else kind, partial=False)
        report.errors.append(LineError(error.line, "file", error.message))
        return report
