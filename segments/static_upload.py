# ruff: noqa: S608 - the SQL below interpolates only constants (table names, fixed join clauses).
"""Static segments: members set, added or removed from an uploaded list of external ids or emails,
in one transaction under the segment's lock, with a report of what matched."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from segments.models import Segment
from segments.services import (
    MATCH_TABLE,
    MEMBERSHIP,
    SQLITE_MATCH_TABLE,
    _apply_diff,
    _current_count,
    _db_time,
    _postgres,
    _xact_lock,
)


@dataclass
class UploadReport:
    received: int = 0
    matched: int = 0
    unmatched_count: int = 0
    unmatched: list[str] = field(default_factory=list)
    entered: int = 0
    exited: int = 0
    member_count: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


MATCH_ON = ("external_id", "email")
UPLOAD_MODES = ("replace", "add", "remove")
MAX_UPLOAD = 1_000_000
UNMATCHED_SHOWN = 100


def upload_static_members(
    *, segment: Segment, identifiers: list[str], match_on: str = "external_id", mode: str = "replace"
) -> UploadReport:
    """Set (or add to, or remove from) a static segment's members from external ids or emails."""
    if segment.kind != Segment.Kind.STATIC:
        raise ValidationError({"segment": ["Only a static segment takes an uploaded list."]})
    if match_on not in MATCH_ON:
        raise ValidationError({"match_on": [f"Use one of {', '.join(MATCH_ON)}."]})
    if mode not in UPLOAD_MODES:
        raise ValidationError({"mode": [f"Use one of {', '.join(UPLOAD_MODES)}."]})
    values = sorted({str(v).strip() for v in identifiers if str(v).strip()})
    if len(values) > MAX_UPLOAD:
        raise ValidationError({"identifiers": [f"At most {MAX_UPLOAD} entries per upload."]})
    if any("\x00" in v or len(v) > 254 for v in values):
        raise ValidationError({"identifiers": ["Entries must be at most 254 characters, without NUL."]})
    if match_on == "email":
        values = sorted({v.lower() for v in values})
        join = "lower(c.email) = u.v"
    else:
        join = "c.external_id = u.v"
    report = UploadReport(received=len(values))
    now = timezone.now()
    active = "c.deleted_at IS NULL AND c.erased_at IS NULL"
    with transaction.atomic(), connection.cursor() as cursor:
        _xact_lock(cursor, segment.pk)
        cursor.execute("DROP TABLE IF EXISTS segment_match")
        if _postgres():
            cursor.execute(MATCH_TABLE)
            uploaded, upload_params = "unnest(%s::text[]) AS u(v)", [values]
        else:
            cursor.execute(SQLITE_MATCH_TABLE)
            uploaded, upload_params = "(SELECT value AS v FROM json_each(%s)) AS u", [json.dumps(values)]
        cursor.execute(
            f"""INSERT INTO segment_match (customer_id)
                SELECT DISTINCT c.id FROM customers_customer c JOIN {uploaded} ON {join}
                WHERE {active}""",
            upload_params,
        )
        cursor.execute(
            f"""SELECT u.v FROM {uploaded}
                WHERE NOT EXISTS (SELECT 1 FROM customers_customer c WHERE {join} AND {active})
                ORDER BY u.v""",
            upload_params,
        )
        unmatched = [row[0] for row in cursor.fetchall()]
        report.unmatched_count = len(unmatched)
        report.unmatched = unmatched[:UNMATCHED_SHOWN]
        report.matched = report.received - report.unmatched_count
        if mode == "remove":
            cursor.execute(
                f"""UPDATE {MEMBERSHIP} AS m SET exited_at = %s
                    WHERE m.segment_id = %s AND m.exited_at IS NULL
                      AND EXISTS (SELECT 1 FROM segment_match s WHERE s.customer_id = m.customer_id)""",
                [_db_time(now), segment.pk],
            )
            report.exited = cursor.rowcount
        else:
            report.entered, report.exited = _apply_diff(
                cursor, segment_id=segment.pk, now=now, scope=None, leave=mode == "replace"
            )
        report.member_count = _current_count(cursor, segment.pk)
        Segment.objects.filter(pk=segment.pk).update(
            member_count=report.member_count, refreshed_at=now, refresh_state=Segment.RefreshState.IDLE
        )
        cursor.execute("DROP TABLE IF EXISTS segment_match")
    return report
