# ruff: noqa: S608 - the SQL below interpolates only constants (table names, fixed join clauses).
"""Touched customers and their drain: ingest notes the customers whose events, orders or profile
changed (`segments_touchedcustomer`, the queue that survives a lost task), and `refresh_touched`
refreshes every dynamic segment for them only, batch by batch (the incremental refresh)."""

from __future__ import annotations

import json
import logging
from datetime import datetime

from django.db import connection
from django.utils import timezone

from segments import rollups
from segments.models import Segment, TouchedCustomer
from segments.rules.validation import refresh_order
from segments.services import (
    DRAIN_LOCK,
    TOUCHED_BATCH,
    _db_time,
    _id_list,
    _postgres,
    _try_session_lock,
    _unlock,
    refresh_segment,
)

logger = logging.getLogger(__name__)


def _upsert_touched(cursor, select_ids: str, params: list) -> int:
    """Note customers as touched now; `select_ids` is a query for their ids."""
    stamp = "clock_timestamp()" if _postgres() else "%s"
    stamp_params = [] if _postgres() else [_db_time(timezone.now())]
    cursor.execute(
        f"""INSERT INTO segments_touchedcustomer (customer_id, touched_at)
            SELECT t.customer_id, {stamp} FROM ({select_ids}) t WHERE true
            ON CONFLICT (customer_id) DO UPDATE SET touched_at = excluded.touched_at""",
        [*stamp_params, *params],
    )
    return cursor.rowcount


def record_touched(*, event_ids: list[int] = (), order_ids: list[int] = ()) -> int:
    """Note the customers of these events/orders as touched (one statement per kind)."""
    touched = 0
    with connection.cursor() as cursor:
        for table, ids in (("customers_event", event_ids), ("customers_order", order_ids)):
            if ids:
                condition, params = _id_list("id", list(ids))
                touched += _upsert_touched(
                    cursor, f"SELECT DISTINCT customer_id FROM {table} WHERE {condition}", params
                )
    return touched


def touch_customers(*, customer_ids: list[int]) -> None:
    if not customer_ids:
        return
    with connection.cursor() as cursor:
        if _postgres():
            _upsert_touched(
                cursor, "SELECT DISTINCT unnest(%s::bigint[]) AS customer_id", [list(customer_ids)]
            )
        else:
            _upsert_touched(
                cursor,
                "SELECT DISTINCT value AS customer_id FROM json_each(%s)",
                [json.dumps([int(i) for i in customer_ids])],
            )


def refresh_touched(
    *, batch: int = TOUCHED_BATCH, max_batches: int = 50, now: datetime | None = None
) -> dict[str, int] | None:
    """Drain touched customers: refresh every dynamic segment for them, batch by batch.

    Rows are deleted only after their refresh committed, and only if not touched again
    meanwhile, so a crash or a concurrent ingest never loses a touch. None: another drain runs.
    """
    if not _try_session_lock(DRAIN_LOCK):
        return None
    totals = {"customers": 0, "entered": 0, "exited": 0, "batches": 0}
    try:
        order = None
        for _ in range(max_batches):
            rows = list(
                TouchedCustomer.objects.order_by("touched_at").values_list("customer_id", "touched_at")[
                    :batch
                ]
            )
            if not rows:
                break
            ids = [r[0] for r in rows]
            newest = max(r[1] for r in rows)
            # Before the touched rows go: from then on the compiler reads these customers' rollups.
            rollups.refresh_rollups(customer_ids=ids)
            if order is None:
                active = set(
                    Segment.objects.filter(kind=Segment.Kind.DYNAMIC, active=True).values_list(
                        "pk", flat=True
                    )
                )
                order = [pk for pk in refresh_order() if pk in active]
            for pk in order:
                try:
                    result = refresh_segment(segment_id=pk, customer_ids=ids, now=now)
                except Exception:  # noqa: BLE001 - recorded on the segment; others go on
                    logger.exception("incremental refresh of segment %s failed", pk)
                    continue
                totals["entered"] += result.entered
                totals["exited"] += result.exited
            TouchedCustomer.objects.filter(customer_id__in=ids, touched_at__lte=newest).delete()
            totals["customers"] += len(ids)
            totals["batches"] += 1
            if len(rows) < batch:
                break
    finally:
        _unlock(DRAIN_LOCK)
    return totals
