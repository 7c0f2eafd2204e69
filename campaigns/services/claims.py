"""Claiming a chunk of the ledger under a lease, and recording its outcomes.

The ledger is the only coordination between workers. A worker takes a chunk with
`UPDATE ... SET state='sending', lease ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)`,
so two workers never hold the same row; it records every row's outcome with one UPDATE that
only touches rows it still leases.
"""

from __future__ import annotations

import os
import random
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from campaigns.delivery.outcomes import RETRY, SENT, Outcome
from campaigns.models import CLAIMABLE_STATES, Send, SendState


def _setting(name: str, default):
    return getattr(settings, name, default)


def worker_identity() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Claimed:
    id: int
    run_id: int
    variant_id: int | None
    customer_id: int
    attempts: int
    channel: str = ""


@dataclass
class Result:
    state: str
    reason: str = ""
    not_before: datetime | None = None
    sent_at: datetime | None = None
    provider_message_id: str = ""
    message_id: str = ""


def claim_chunk(*, campaign_id: int, owner: str, size: int, lease_seconds: int) -> list[Claimed]:
    """Move up to `size` due rows of the campaign to `sending` under our lease; rows others hold are skipped."""
    now = timezone.now()
    expires = now + timedelta(seconds=lease_seconds)
    table = Send._meta.db_table
    if connection.vendor == "postgresql":
        sql = f"""
            UPDATE {table} AS s
               SET state = 'sending', lease_owner = %s, lease_expires_at = %s,
                   attempts = s.attempts + 1, updated_at = %s
             WHERE s.id IN (
                   SELECT id FROM {table}
                    WHERE campaign_id = %s AND state IN ('queued', 'deferred') AND not_before <= %s
                    ORDER BY not_before, id
                    LIMIT %s
                    FOR UPDATE SKIP LOCKED)
            RETURNING s.id, s.run_id, s.variant_id, s.customer_id, s.attempts, s.channel
        """  # noqa: S608 - table name from the model, values bound
        with connection.cursor() as cursor:
            cursor.execute(sql, [owner, expires, now, campaign_id, now, size])
            rows = cursor.fetchall()
        return sorted((Claimed(*row) for row in rows), key=lambda c: c.id)
    # SQLite (the embedded demo runs one eager worker): select then update.
    with transaction.atomic():
        ids = list(
            Send.objects.filter(campaign_id=campaign_id, state__in=CLAIMABLE_STATES, not_before__lte=now)
            .order_by("not_before", "id")
            .values_list("id", flat=True)[:size]
        )
        for send in Send.objects.filter(pk__in=ids):
            Send.objects.filter(pk=send.pk).update(
                state=SendState.SENDING,
                lease_owner=owner,
                lease_expires_at=expires,
                attempts=send.attempts + 1,
                updated_at=now,
            )
    return [
        Claimed(*row)
        for row in Send.objects.filter(pk__in=ids, lease_owner=owner)
        .order_by("id")
        .values_list("id", "run_id", "variant_id", "customer_id", "attempts", "channel")
    ]


def record_results(*, owner: str, results: dict[int, Result]) -> int:
    """Write every row's outcome in one statement; rows whose lease we lost are left alone."""
    if not results:
        return 0
    now = timezone.now()
    ids = list(results)
    table = Send._meta.db_table
    if connection.vendor == "postgresql":
        sql = f"""
            UPDATE {table} AS s
               SET state = v.state, reason = v.reason, not_before = v.not_before, sent_at = v.sent_at,
                   provider_message_id = v.pid, message_id = CASE WHEN v.mid = '' THEN s.message_id ELSE v.mid END,
                   lease_owner = '', lease_expires_at = NULL, updated_at = %s
              FROM unnest(%s::bigint[], %s::varchar[], %s::varchar[], %s::timestamptz[], %s::timestamptz[],
                          %s::varchar[], %s::varchar[]) AS v(id, state, reason, not_before, sent_at, pid, mid)
             WHERE s.id = v.id AND s.lease_owner = %s AND s.state = 'sending'
        """  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(
                sql,
                [
                    now,
                    ids,
                    [results[i].state for i in ids],
                    [results[i].reason[:255] for i in ids],
                    [results[i].not_before for i in ids],
                    [results[i].sent_at for i in ids],
                    [results[i].provider_message_id[:255] for i in ids],
                    [results[i].message_id[:255] for i in ids],
                    owner,
                ],
            )
            return cursor.rowcount
    updated = 0
    for send_id, result in results.items():
        updated += Send.objects.filter(pk=send_id, lease_owner=owner, state=SendState.SENDING).update(
            state=result.state,
            reason=result.reason[:255],
            not_before=result.not_before,
            sent_at=result.sent_at,
            provider_message_id=result.provider_message_id[:255],
            **({"message_id": result.message_id[:255]} if result.message_id else {}),
            lease_owner="",
            lease_expires_at=None,
            updated_at=now,
        )
    return updated


def renew_lease(*, owner: str, lease_seconds: int) -> None:
    Send.objects.filter(lease_owner=owner, state=SendState.SENDING).update(
        lease_expires_at=timezone.now() + timedelta(seconds=lease_seconds)
    )


def retry_delay(attempts: int) -> timedelta:
    base = _setting("CAMPAIGN_RETRY_BASE_SECONDS", 60)
    ceiling = _setting("CAMPAIGN_RETRY_MAX_SECONDS", 3600)
    seconds = min(base * (2 ** max(attempts - 1, 0)), ceiling)
    return timedelta(seconds=seconds * random.uniform(0.9, 1.1))


def result_from_outcome(outcome: Outcome, claimed: Claimed, now: datetime) -> Result:
    if outcome.kind == SENT:
        return Result(SendState.SENT, "", None, now, outcome.provider_message_id)
    if outcome.kind == RETRY:
        max_attempts = _setting("CAMPAIGN_MAX_ATTEMPTS", 6)
        if claimed.attempts >= max_attempts:
            return Result(SendState.FAILED, f"gave up after {claimed.attempts} attempts: {outcome.detail}")
        return Result(SendState.QUEUED, f"retrying: {outcome.detail}", now + retry_delay(claimed.attempts))
    return Result(SendState.FAILED, outcome.detail or "provider refused the message")
