# ruff: noqa: S608 - the SQL below interpolates only constants (table names, fixed join clauses).
"""Writes of segments: rule checks, materialised refreshes, static uploads, touched customers.

A refresh is one transaction under a PostgreSQL advisory lock keyed by the segment:
    1. the rule's customers go into a temporary table (one CREATE TABLE AS of the compiled query,
       which PostgreSQL runs with parallel workers; INSERT ... SELECT on SQLite),
    2. one full join of it with the current members gives both sides of the diff: members no
       longer matched get `exited_at`, matches without a current row get a new membership row
       (one statement on PostgreSQL; an UPDATE ... NOT EXISTS and an INSERT ... NOT EXISTS on
       SQLite).
A failed or killed refresh rolls back whole, so the previous membership stays as it was; a
re-entry is a new row, which is what campaign triggers key on.

Each refresh is counted on the segment (`refresh_interruptions`) before its transaction starts and
uncounted when it ends; a refresh whose worker is killed on every run (a rule whose query exhausts
the worker's memory) is thus seen after SEGMENTS_REFRESH_MAX_INTERRUPTIONS runs, and failed with
the reason instead of killing the next worker: Celery puts a killed task's message back at once.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, OperationalError, connection, transaction
from django.db.models import F
from django.utils import timezone

from segments import rollups
from segments.models import Segment
from segments.rules.compiler import matching_customers, matching_ids
from segments.rules.errors import RuleValidationError
from segments.rules.validation import check_rule, refresh_order

logger = logging.getLogger(__name__)

LOCK_NAMESPACE = 510_501  # pg_advisory_xact_lock(namespace, segment id)
DRAIN_LOCK = (510_502, 0)
REFRESH_ALL_LOCK = (510_502, 1)
# Longer than any one statement of a full refresh (the rollup rebuild, about a minute on 1M
# customers), far shorter than beat's hour between full refreshes.
REFRESH_ALL_WAIT = timedelta(minutes=5)
LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of a lock wait cut short by lock_timeout
TOUCHED_BATCH = 10_000
ANALYZE_MIN_CHANGES = 10_000  # membership rows a refresh moves before it refreshes the statistics
WORK_MEM = "128MB"
MEMBERSHIP = "segments_segmentmembership"
# For static uploads (which insert into it): the key dedupes and serves the anti-joins.
MATCH_TABLE = "CREATE TEMPORARY TABLE segment_match (customer_id bigint PRIMARY KEY) ON COMMIT DROP"
# The embedded default (SQLite: the demo, `make run` without PostgreSQL) runs the same statements
# in its dialect: one writer at a time makes the advisory locks unnecessary there.
SQLITE_MATCH_TABLE = "CREATE TEMPORARY TABLE segment_match (customer_id integer PRIMARY KEY)"


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def _xact_lock(cursor, segment_id: int) -> None:
    if _postgres():
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, segment_id])


def _id_list(column: str, ids: list[int]) -> tuple[str, list]:
    """`column` is one of `ids`: a bigint[] parameter on PostgreSQL, a JSON array on SQLite."""
    if _postgres():
        # bigint[]: against a bigint column an int[] array is compared element by element (a
        # linear scan of 10k ids for every row) instead of by hash or index.
        return f"{column} = ANY(%s::bigint[])", [list(ids)]
    return f"{column} IN (SELECT value FROM json_each(%s))", [json.dumps([int(i) for i in ids])]


def _db_time(value: datetime) -> Any:
    return value if _postgres() else connection.ops.adapt_datetimefield_value(value)


@dataclass
class RefreshResult:
    segment_id: int
    entered: int = 0
    exited: int = 0
    member_count: int = 0
    seconds: float = 0.0
    incremental: bool = False
    skipped: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- rules --------------------------------------------------------------------------------------


def clean_rules(*, rules: Any, segment_id: int | None = None) -> None:
    """Raise a field error on `rules` listing every problem with its JSON path."""
    errors = check_rule(rules, segment_id=segment_id).errors
    if errors:
        raise ValidationError({"rules": [str(e) for e in errors]})


def dependents_of(*, segment_id: int) -> list[int]:
    """Ids of dynamic segments whose rules refer to this one directly."""
    from segments.rules.validation import dependency_graph

    return sorted(pk for pk, refs in dependency_graph().items() if segment_id in refs and pk != segment_id)


def check_can_delete(*, segment: Segment) -> list[int]:
    """Ids of dynamic segments whose rules refer to this one (it cannot be deleted while any do)."""
    return dependents_of(segment_id=segment.pk)


# --- refresh ------------------------------------------------------------------------------------


def _fill_match_table(cursor, ids) -> int:
    """The customers a rule matches (`ids`: a queryset of distinct `pk` values) into segment_match."""
    sql, params = ids.query.sql_with_params()
    cursor.execute("DROP TABLE IF EXISTS segment_match")
    if _postgres():
        # CREATE TABLE AS, not INSERT ... SELECT: PostgreSQL runs the SELECT of the former with
        # parallel workers (a rule over the raw order lines in about half the time on two cores),
        # never that of the latter. The ids are distinct (one row per customer); no key is built:
        # the diff is one hash full join, planned on fresh statistics of both sides.
        cursor.execute(f"CREATE TEMPORARY TABLE segment_match (customer_id) ON COMMIT DROP AS {sql}", params)
        matched = cursor.rowcount
    else:
        cursor.execute(SQLITE_MATCH_TABLE)
        cursor.execute(f"INSERT OR IGNORE INTO segment_match (customer_id) {sql}", params)
        matched = cursor.rowcount
    cursor.execute("ANALYZE segment_match")
    return matched


def _apply_diff(
    cursor, *, segment_id: int, now: datetime, scope: list[int] | None, enter: bool = True, leave: bool = True
) -> tuple[int, int]:
    """Close stays of members not in segment_match, open stays for new matches; set-wise."""
    scope_sql, scope_params = "", []
    if scope is not None:
        scope_sql, scope_params = _id_list("m.customer_id", scope)
        scope_sql = "AND " + scope_sql
    casts = ("::timestamptz", "::timestamptz") if _postgres() else ("", "")
    now = _db_time(now)
    if enter and leave and _postgres():
        # Both sides from one full join of the matches and the current members (one pass over
        # each instead of an anti-join in each direction), written by one statement.
        cursor.execute(
            f"""WITH current AS (
                    SELECT m.customer_id FROM {MEMBERSHIP} AS m
                    WHERE m.segment_id = %s AND m.exited_at IS NULL {scope_sql}),
                diff AS MATERIALIZED (
                    SELECT coalesce(s.customer_id, c.customer_id) AS customer_id,
                           s.customer_id IS NULL AS leaving
                    FROM segment_match s FULL JOIN current c ON c.customer_id = s.customer_id
                    WHERE s.customer_id IS NULL OR c.customer_id IS NULL),
                gone AS (
                    UPDATE {MEMBERSHIP} AS m SET exited_at = %s FROM diff d
                    WHERE d.leaving AND m.segment_id = %s AND m.exited_at IS NULL
                      AND m.customer_id = d.customer_id
                    RETURNING 1),
                came AS (
                    INSERT INTO {MEMBERSHIP} (segment_id, customer_id, entered_at, exited_at)
                    SELECT %s, d.customer_id, %s::timestamptz, NULL::timestamptz FROM diff d
                    WHERE NOT d.leaving ORDER BY d.customer_id
                    RETURNING 1)
                SELECT (SELECT count(*) FROM came), (SELECT count(*) FROM gone)""",
            [segment_id, *scope_params, now, segment_id, segment_id, now],
        )
        entered, exited = cursor.fetchone()
        return entered, exited
    exited = 0
    if leave:
        cursor.execute(
            f"""UPDATE {MEMBERSHIP} AS m SET exited_at = %s
                WHERE m.segment_id = %s AND m.exited_at IS NULL {scope_sql}
                  AND NOT EXISTS (SELECT 1 FROM segment_match s WHERE s.customer_id = m.customer_id)""",
            [now, segment_id, *scope_params],
        )
        exited = cursor.rowcount
    entered = 0
    if enter:
        cursor.execute(
            f"""INSERT INTO {MEMBERSHIP} (segment_id, customer_id, entered_at, exited_at)
                SELECT DISTINCT %s, s.customer_id, %s{casts[0]}, NULL{casts[1]} FROM segment_match s
                WHERE NOT EXISTS (
                    SELECT 1 FROM {MEMBERSHIP} m
                    WHERE m.segment_id = %s AND m.customer_id = s.customer_id AND m.exited_at IS NULL)
                ORDER BY s.customer_id""",
            [segment_id, now, segment_id],
        )
        entered = cursor.rowcount
    return entered, exited


def _current_count(cursor, segment_id: int) -> int:
    cursor.execute(
        f"SELECT count(*) FROM {MEMBERSHIP} WHERE segment_id = %s AND exited_at IS NULL", [segment_id]
    )
    return cursor.fetchone()[0]


MAX_REFRESH_INTERRUPTIONS = 3  # settings.SEGMENTS_REFRESH_MAX_INTERRUPTIONS overrides


def max_refresh_interruptions() -> int:
    return int(getattr(settings, "SEGMENTS_REFRESH_MAX_INTERRUPTIONS", MAX_REFRESH_INTERRUPTIONS))


def interrupted_error(times: int) -> str:
    return (
        f"refresh interrupted {times} times in a row (worker killed, e.g. out of memory); "
        "fix the rule or raise the worker's memory, then refresh again"
    )


def _start_attempt(segment_id: int, *, incremental: bool) -> bool:
    """Count this refresh as started (committed before its work), unless the count says to give up.

    Called under the segment's session lock, so the count is of this segment's refreshes one after
    another: one that is still counted when the next starts never finished. At the limit the
    refresh is not run (its query may be what kills the worker) and the segment is failed with the
    reason; False then. A deleted segment is left to the refresh to notice.
    """
    limit = max_refresh_interruptions()
    counted = Segment.objects.filter(pk=segment_id, refresh_interruptions__lt=limit).update(
        refresh_interruptions=F("refresh_interruptions") + 1
    )
    if counted or not Segment.objects.filter(pk=segment_id).exists():
        return True
    message = interrupted_error(limit)
    gave_up = (
        Segment.objects.filter(pk=segment_id)
        .exclude(refresh_state=Segment.RefreshState.FAILED, refresh_error=message)
        .update(refresh_state=Segment.RefreshState.FAILED, refresh_error=message)
    )
    if gave_up or not incremental:
        logger.error("segment %s: %s; not run", segment_id, message)
    return False


def refresh_segment(
    *, segment_id: int, customer_ids: list[int] | None = None, now: datetime | None = None
) -> RefreshResult:
    """Bring a dynamic segment's membership up to date (only for `customer_ids` when given).

    Raises RuleValidationError for a rule that no longer validates (the state says so too).
    A segment whose refreshes were interrupted SEGMENTS_REFRESH_MAX_INTERRUPTIONS times in a row
    is not refreshed (skipped "interrupted", the state `failed` with the reason) until an explicit
    request (`request_refresh`) resets the count.
    """
    started = time.perf_counter()
    incremental = customer_ids is not None
    result = RefreshResult(segment_id=segment_id, incremental=incremental)
    if not incremental:
        Segment.objects.filter(pk=segment_id).update(
            refresh_state=Segment.RefreshState.RUNNING, refresh_started_at=timezone.now()
        )
    # A session lock, not only the transaction's: the attempt is counted, and committed, under it
    # before the transaction that may never end. A killed worker's session lets go of it when
    # PostgreSQL ends the session.
    key = (LOCK_NAMESPACE, segment_id)
    _wait_for_lock(key)
    try:
        if not _start_attempt(segment_id, incremental=incremental):
            result.skipped = "interrupted"
            return result
        try:
            _refresh_locked(
                segment_id=segment_id, customer_ids=customer_ids, now=now, result=result, started=started
            )
        except Exception as exc:
            message = (
                "; ".join(exc.messages())
                if isinstance(exc, RuleValidationError)
                else f"{type(exc).__name__}: {exc}"
            )
            logger.warning("segment %s refresh failed: %s", segment_id, message)
            Segment.objects.filter(pk=segment_id).update(
                refresh_state=Segment.RefreshState.FAILED,
                refresh_error=message[:2000],
                refresh_interruptions=0,  # it ended, if badly: not an interruption
            )
            raise
    finally:
        _let_go(key)
    _analyze_after(result)
    return result


def _refresh_locked(
    *,
    segment_id: int,
    customer_ids: list[int] | None,
    now: datetime | None,
    result: RefreshResult,
    started: float,
) -> None:
    """The refresh's one transaction (the caller holds the segment's lock); ends the attempt's count."""
    incremental = customer_ids is not None
    with transaction.atomic(), connection.cursor() as cursor:
        _xact_lock(cursor, segment_id)  # re-entrant: taken by this session already
        segment = Segment.objects.filter(pk=segment_id).first()
        if segment is None:
            result.skipped = "deleted"
            return
        if segment.kind != Segment.Kind.DYNAMIC or not segment.active:
            result.skipped = "static" if segment.kind != Segment.Kind.DYNAMIC else "inactive"
            changes: dict[str, Any] = {"refresh_interruptions": 0}
            if not incremental:
                changes["refresh_state"] = Segment.RefreshState.IDLE
            Segment.objects.filter(pk=segment_id).update(**changes)
            return
        now = now or timezone.now()
        if _postgres():
            cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
            cursor.execute("SET LOCAL jit = off")  # compiling costs more than it saves here
        matched = _fill_match_table(
            cursor,
            matching_ids(segment.rules, now=now)
            if customer_ids is None
            else matching_customers(segment.rules, now=now, scope=customer_ids).values("pk"),
        )
        result.entered, result.exited = _apply_diff(
            cursor, segment_id=segment_id, now=now, scope=customer_ids
        )
        # Incremental: the count moves by the diff (exact, under the lock) instead of a count(*)
        # over every current member of a large segment.
        result.member_count = (
            max(0, segment.member_count + result.entered - result.exited) if incremental else matched
        )
        result.seconds = round(time.perf_counter() - started, 4)
        changes = {"member_count": result.member_count, "refresh_interruptions": 0}
        if not incremental:
            changes.update(
                refreshed_at=now,
                refresh_state=Segment.RefreshState.IDLE,
                refresh_error="",
                refresh_seconds=result.seconds,
            )
        Segment.objects.filter(pk=segment_id).update(**changes)
        cursor.execute("DROP TABLE IF EXISTS segment_match")


def _analyze_after(result: RefreshResult) -> None:
    """Fresh statistics on the membership table after a refresh that moved many rows.

    Rules that refer to other segments (and the diffs) are planned on them: with the counts of
    before a first big refresh, the planner takes a segment of 500,000 members for 100 rows and
    walks it by nested loops (9 s against 1.9 s). Autovacuum would get there, but it may be off
    or behind; a refresh that changed little leaves it to autovacuum."""
    changed = result.entered + result.exited
    if _postgres() and changed >= max(ANALYZE_MIN_CHANGES, result.member_count // 10):
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {MEMBERSHIP}")


def refresh_segments(
    *, segment_ids: list[int] | None = None, customer_ids: list[int] | None = None
) -> list[RefreshResult]:
    """Refresh dynamic segments in dependency order; a failing one does not stop the others."""
    results = []
    for pk in refresh_order(segment_ids):
        try:
            results.append(refresh_segment(segment_id=pk, customer_ids=customer_ids))
        except Exception:  # noqa: BLE001 - recorded on the segment; the rest still refresh
            results.append(
                RefreshResult(segment_id=pk, incremental=customer_ids is not None, skipped="failed")
            )
    return results


def _wait_for_lock(key: tuple[int, int]) -> None:
    """Take a session-level advisory lock, waiting as long as its holder keeps it."""
    if _postgres():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", list(key))


def _let_go(key: tuple[int, int]) -> None:
    """Release a session lock; if the connection cannot, close it (which releases it) rather than
    leave a pooled connection holding the segment's lock."""
    try:
        _unlock(key)
    except DatabaseError:
        logger.warning("could not release the advisory lock %s; closing the connection", key, exc_info=True)
        connection.close()


def _try_session_lock(key: tuple[int, int]) -> bool:
    if not _postgres():
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", list(key))
        return bool(cursor.fetchone()[0])


def _session_lock(key: tuple[int, int], *, wait: timedelta) -> bool:
    """Take a session-level advisory lock, waiting up to `wait` for its holder to let it go."""
    if not _postgres() or wait <= timedelta(0):
        return _try_session_lock(key)
    timeout = f"{max(1, round(wait.total_seconds() * 1000))}ms"
    with connection.cursor() as cursor:
        try:
            # A timeout local to this (sub)transaction, put back once the lock is ours: the
            # session lock outlives the transaction, the timeout must not.
            with transaction.atomic():
                cursor.execute("SELECT current_setting('lock_timeout')")
                previous = cursor.fetchone()[0]
                cursor.execute("SELECT set_config('lock_timeout', %s, true)", [timeout])
                cursor.execute("SELECT pg_advisory_lock(%s, %s)", list(key))
                cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])
        except OperationalError as exc:
            if getattr(exc.__cause__, "pgcode", None) == LOCK_NOT_AVAILABLE:
                return False
            raise
    return True


def _unlock(key: tuple[int, int]) -> None:
    if not _postgres():
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", list(key))


def refresh_all_segments(*, wait: timedelta = REFRESH_ALL_WAIT) -> list[RefreshResult] | None:
    """Full refresh of every active dynamic segment; None when another one is still running after `wait`.

    The wait is for a dead run's session: when the out-of-memory killer takes the pool child of a
    full refresh, Celery puts the message back at once (`reject_on_worker_lost`), but PostgreSQL
    ends the dead child's session, and lets go of this lock, only when its running statement
    finishes. Skipping then would lose the hour's refresh of every segment after the one it was in.
    """
    if not _session_lock(REFRESH_ALL_LOCK, wait=wait):
        return None
    try:
        active = list(
            Segment.objects.filter(kind=Segment.Kind.DYNAMIC, active=True).values_list("pk", flat=True)
        )
        if active and rollups.rebuild_due():
            try:
                rollups.rebuild_rollups()
            except Exception:  # noqa: BLE001 - the previous rollups stay exact (as of their as_of)
                logger.exception("rebuilding the segment rollups failed")
        return refresh_segments(segment_ids=active)
    finally:
        _unlock(REFRESH_ALL_LOCK)


def request_refresh(*, segment_ids: list[int]) -> None:
    """An explicit refresh (the API, the admin, a rule saved): queued, and a segment given up on
    after its refreshes were interrupted again and again gets another round of attempts."""
    Segment.objects.filter(pk__in=segment_ids, refresh_interruptions__gte=max_refresh_interruptions()).update(
        refresh_interruptions=0
    )
    mark_queued(segment_ids=segment_ids)


def mark_queued(*, segment_ids: list[int]) -> None:
    Segment.objects.filter(pk__in=segment_ids).exclude(refresh_state=Segment.RefreshState.RUNNING).update(
        refresh_state=Segment.RefreshState.QUEUED, refresh_queued_at=timezone.now()
    )
