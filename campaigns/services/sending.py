"""Sending: claim a chunk of the ledger, check, render, deliver over one connection, record.

The ledger is the only coordination between workers. A worker takes a chunk with
`UPDATE ... SET state='sending', lease ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)`,
so two workers never hold the same row; it records every row's outcome with one UPDATE that
only touches rows it still leases. A worker that dies leaves rows whose lease expires; the
reconciler (run by the dispatcher every minute) puts them back in the queue and counts the
kill, and after three kills the rows fail with the reason instead of killing more workers.
A message in flight at a crash can reach the provider twice (same Message-ID, so receivers
can drop it); a message is never lost and never recorded as sent twice.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from campaigns.composition import Composer, TemplateError, ledger_key
from campaigns.delivery import push as push_delivery
from campaigns.delivery.email import EmailDelivery, provider_name
from campaigns.delivery.outcomes import RETRY, SENT, Outcome
from campaigns.delivery.throttle import Throttle, rate_for
from campaigns.models import (
    CLAIMABLE_STATES,
    Campaign,
    CampaignRun,
    CampaignStatus,
    Channel,
    RunState,
    Send,
    SendState,
    TrackedLink,
)
from campaigns.services import context as message_context
from campaigns.services import eligibility
from campaigns.services.lifecycle import SENDABLE, TransitionError, move
from campaigns.tracking.tokens import url_digest
from customers.models import Customer

logger = logging.getLogger(__name__)

CONSECUTIVE_CONNECTION_FAILURES = 3


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


# --------------------------------------------------------------------------------------------
# Claiming and recording


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


# --------------------------------------------------------------------------------------------
# One chunk


def _verdict_result(verdict: eligibility.Verdict) -> Result:
    return Result(verdict.state, verdict.reason, verdict.not_before)


def store_links(destinations: dict[int, set[str]]) -> None:
    """Upsert the destinations the chunk's messages link to (variant id -> URLs), one query."""
    rows = [
        TrackedLink(variant_id=variant_id, url_hash=url_digest(url), url=url)
        for variant_id, urls in destinations.items()
        for url in urls
    ]
    if rows:
        TrackedLink.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)


class ChunkSender:
    """Everything one chunk needs, read once: the campaign, its variants, the composer, the provider.

    One sender per channel: a campaign whose variants go out on different channels (an experiment)
    has its claimed rows split by the ledger's channel column (`send_claimed`).
    """

    def __init__(self, campaign: Campaign, owner: str, channel: str | None = None):
        self.campaign = campaign
        self.owner = owner
        self.channel = channel or campaign.channel
        self.variants = {v.pk: v for v in campaign.variants.select_related("recommender")}
        self.composer = Composer(campaign)
        # A variant on another channel than the campaign's is tagged with its own medium.
        self.composer.utm["utm_medium"] = campaign.utm_medium or self.channel
        self.lease_seconds = _setting("CAMPAIGN_LEASE_SECONDS", 120)
        provider = provider_name() if self.channel == Channel.EMAIL else "push"
        key = f"{provider}:campaign:{campaign.pk}" if campaign.send_rate else provider
        self.throttle = Throttle(key, rate_for(provider, campaign.send_rate))
        self.throttle_batch = max(1, min(50, int(self.throttle.rate // 10))) if self.throttle.enabled else 0

    def send(self, claimed: list[Claimed]) -> dict[str, int]:
        started = time.monotonic()
        now = timezone.now()
        results: dict[int, Result] = {}
        ids = [c.customer_id for c in claimed]
        customers = {
            row["id"]: row
            for row in Customer.all_objects.filter(pk__in=ids)
            .annotate(consent_status=eligibility.consent_subquery(self.channel))
            .values(*message_context.CUSTOMER_FIELDS, "deleted_at", "erased_at", "consent_status")
        }
        suppressed = (
            eligibility.suppressed_addresses(c["email"] for c in customers.values())
            if self.channel == Channel.EMAIL
            else {}
        )
        subscriptions = push_delivery.subscriptions_for(ids) if self.channel == Channel.PUSH else {}
        usage = eligibility.cap_usage(campaign=self.campaign, customer_ids=ids, now=now, channel=self.channel)

        ready: list[Claimed] = []
        for row in claimed:
            verdict = self._gate(row, customers.get(row.customer_id), suppressed, subscriptions, usage, now)
            if verdict is not None:
                results[row.id] = _verdict_result(verdict)
            else:
                ready.append(row)

        ready_ids = [r.customer_id for r in ready]
        loyalty = message_context.loyalty_parts(ready_ids, now=now) if ready else {}
        recommendations = self._recommendations(ready) if ready else {}

        composed = []
        destinations: dict[int, set[str]] = {}
        for row in ready:
            customer = customers[row.customer_id]
            variant = self.variants.get(row.variant_id)
            if variant is None:
                results[row.id] = Result(SendState.FAILED, "its variant no longer exists")
                continue
            context = message_context.message_context(
                customer=customer,
                loyalty=loyalty.get(row.customer_id),
                recommendations=recommendations.get(variant.recommender_id, {}).get(row.customer_id, []),
                campaign=self.campaign,
                variant=variant,
                unsubscribe_url=self.composer.unsubscribe_url(row.id),
                now=now,
            )
            key = ledger_key(
                run_id=row.run_id,
                variant_id=row.variant_id,
                customer_id=row.customer_id,
                channel=self.channel,
            )
            try:
                if self.channel == Channel.EMAIL:
                    message = self.composer.email(
                        send_id=row.id,
                        key=key,
                        variant=variant,
                        context=context,
                        to=customer["email"],
                        to_name=" ".join(filter(None, (customer["first_name"], customer["last_name"])))
                        or None,
                    )
                else:
                    message = self.composer.push(send_id=row.id, key=key, variant=variant, context=context)
            except TemplateError as exc:
                results[row.id] = Result(SendState.FAILED, f"template error: {exc}"[:255])
                continue
            except ValueError as exc:  # the customer's data cannot go into a message (an address, a header)
                results[row.id] = Result(SendState.FAILED, f"could not build the message: {exc}"[:255])
                continue
            except Exception as exc:  # noqa: BLE001 - one bad message never sinks the chunk
                logger.exception("campaign %s send %s: could not build the message", self.campaign.pk, row.id)
                results[row.id] = Result(
                    SendState.FAILED, f"could not build the message: {type(exc).__name__}: {exc}"[:255]
                )
                continue
            destinations.setdefault(variant.pk, set()).update(message.destinations)
            composed.append((row, message))

        store_links(destinations)
        dead_subscriptions = self._deliver(composed, subscriptions, results, started)
        record_results(owner=self.owner, results=results)
        push_delivery.deactivate(dead_subscriptions)
        counts: dict[str, int] = {}
        for result in results.values():
            counts[result.state] = counts.get(result.state, 0) + 1
        return counts

    def _recommendations(self, ready: list[Claimed]) -> dict[int | None, dict[int, list[dict]]]:
        """Cards per recommender (None: the default), one selector call per recommender in the chunk."""
        by_recommender: dict[int | None, list[int]] = {}
        for row in ready:
            variant = self.variants.get(row.variant_id)
            key = variant.recommender_id if variant is not None else None
            by_recommender.setdefault(key, []).append(row.customer_id)
        configs = {v.recommender_id: v.recommender for v in self.variants.values() if v.recommender_id}
        return {
            key: message_context.recommendation_parts(ids, campaign=self.campaign, config=configs.get(key))
            for key, ids in by_recommender.items()
        }

    def _gate(self, row, customer, suppressed, subscriptions, usage, now) -> eligibility.Verdict | None:
        """The send-time check: anything that changed since the ledger was written wins."""
        if customer is None:
            return eligibility.Verdict(SendState.SUPPRESSED, "customer no longer exists")
        if customer["erased_at"] is not None:
            return eligibility.Verdict(SendState.SUPPRESSED, "customer erased")
        if customer["deleted_at"] is not None:
            return eligibility.Verdict(SendState.SUPPRESSED, "customer deleted")
        return (
            eligibility.consent_verdict(customer["consent_status"], self.channel)
            or eligibility.address_verdict(
                channel=self.channel,
                email=customer["email"] or "",
                suppressed=suppressed,
                has_push=bool(subscriptions.get(row.customer_id)),
            )
            or eligibility.cap_verdict(campaign=self.campaign, usage=usage.get(row.customer_id))
            or _quiet_now(self.campaign, customer["timezone"], now)
        )

    def _deliver(self, composed, subscriptions, results: dict[int, Result], started: float) -> list[int]:
        dead: list[int] = []
        if not composed:
            return dead
        renew_every = self.lease_seconds / 3
        last_renewal = started
        delivery = EmailDelivery() if self.channel == Channel.EMAIL else push_delivery.PushDelivery()
        connection_failures = 0
        with delivery:
            for position, (row, message) in enumerate(composed):
                if self.throttle_batch and position % self.throttle_batch == 0:
                    self.throttle.wait(min(self.throttle_batch, len(composed) - position))
                if time.monotonic() - last_renewal > renew_every:
                    renew_lease(owner=self.owner, lease_seconds=self.lease_seconds)
                    last_renewal = time.monotonic()
                if connection_failures >= CONSECUTIVE_CONNECTION_FAILURES:
                    outcome = Outcome.retry("provider unreachable; the rest of the chunk waits")
                elif self.channel == Channel.EMAIL:
                    outcome = delivery.deliver(message.message, send_id=row.id)
                else:
                    outcome = delivery.deliver(message.message, subscriptions.get(row.customer_id, []))
                if outcome.kind == RETRY and "connection problem" in outcome.detail:
                    connection_failures += 1
                elif outcome.kind != RETRY:
                    connection_failures = 0
                dead.extend(outcome.dead_subscriptions)
                results[row.id] = result_from_outcome(outcome, row, timezone.now())
                results[row.id].message_id = message.message_id
        return dead


def _quiet_now(campaign: Campaign, customer_timezone: str, now: datetime) -> eligibility.Verdict | None:
    verdict = eligibility.timing_verdict(
        campaign=campaign, due=now, customer_timezone=customer_timezone or "", now=now
    )
    return verdict if verdict.state == SendState.DEFERRED else None


# --------------------------------------------------------------------------------------------
# The worker loop, the reconciler, the dispatcher


def _beat(campaign_id: int) -> str | None:
    """Mark that a sender is alive for the campaign and read its status, in one statement."""
    now = timezone.now()
    updated = Campaign.objects.filter(pk=campaign_id).update(heartbeat_at=now)
    if not updated:
        return None
    return Campaign.objects.filter(pk=campaign_id).values_list("status", flat=True).first()


def send_campaign_chunks(*, campaign_id: int, budget_seconds: float | None = None) -> dict[str, int]:
    """Send chunks until nothing is due, the campaign stops being sendable, or the budget is spent.

    Returns counts by resulting state plus `more` = 1 when it stopped on the budget with work left
    (the task then continues in a fresh task rather than holding one message for hours).
    """
    owner = worker_identity()
    size = _setting("CAMPAIGN_CHUNK_SIZE", 200)
    lease = _setting("CAMPAIGN_LEASE_SECONDS", 120)
    budget = budget_seconds if budget_seconds is not None else _setting("CAMPAIGN_TASK_BUDGET_SECONDS", 55)
    deadline = time.monotonic() + budget
    totals: dict[str, int] = {}
    while True:
        status = _beat(campaign_id)
        if status not in SENDABLE:
            return totals
        claimed = claim_chunk(campaign_id=campaign_id, owner=owner, size=size, lease_seconds=lease)
        if not claimed:
            Campaign.objects.filter(pk=campaign_id).update(heartbeat_at=None)
            finish_if_done(campaign_id=campaign_id)
            return totals
        campaign = Campaign.objects.get(pk=campaign_id)
        for state, count in send_claimed(campaign, owner, claimed).items():
            totals[state] = totals.get(state, 0) + count
        if time.monotonic() > deadline:
            totals["more"] = 1
            return totals


def send_claimed(campaign: Campaign, owner: str, claimed: list[Claimed]) -> dict[str, int]:
    """Send a claimed chunk, split by the channel each row goes out on (one sender per channel)."""
    by_channel: dict[str, list[Claimed]] = {}
    for row in claimed:
        by_channel.setdefault(row.channel or campaign.channel, []).append(row)
    totals: dict[str, int] = {}
    for channel, rows in by_channel.items():
        for state, count in ChunkSender(campaign, owner, channel).send(rows).items():
            totals[state] = totals.get(state, 0) + count
    return totals


def finish_if_done(*, campaign_id: int) -> bool:
    """Close runs with nothing left to send; a one-off whose runs are all closed is sent."""
    now = timezone.now()
    open_rows = Send.objects.filter(run=OuterRef("pk"), state__in=[*CLAIMABLE_STATES, SendState.SENDING])
    CampaignRun.objects.filter(campaign_id=campaign_id, state=RunState.READY).exclude(
        Exists(open_rows)
    ).update(state=RunState.DONE, finished_at=now)
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None or campaign.is_ongoing or campaign.status != CampaignStatus.SENDING:
        return False
    if CampaignRun.objects.filter(
        campaign_id=campaign_id, state__in=[RunState.PENDING, RunState.WRITING, RunState.READY]
    ).exists():
        return False
    try:
        move(campaign=campaign, to=CampaignStatus.SENT, extra={"finished_at": now})
    except TransitionError:
        return False
    return True


def reclaim_expired_leases() -> dict[str, int]:
    """Rows whose worker died go back to the queue (at its end); the third loss fails them."""
    now = timezone.now()
    kill_limit = _setting("CAMPAIGN_KILL_LIMIT", 3)
    table = Send._meta.db_table
    if connection.vendor == "postgresql":
        sql = f"""
            UPDATE {table}
               SET kills = kills + 1,
                   state = CASE WHEN kills + 1 >= %s THEN 'failed' ELSE 'queued' END,
                   reason = CASE WHEN kills + 1 >= %s
                                 THEN 'its chunk killed the sending worker ' || (kills + 1) || ' times'
                                 ELSE 'worker lost mid-chunk; queued again' END,
                   not_before = %s, lease_owner = '', lease_expires_at = NULL, updated_at = %s
             WHERE state = 'sending' AND lease_expires_at < %s
            RETURNING state
        """  # noqa: S608
        with connection.cursor() as cursor:
            cursor.execute(sql, [kill_limit, kill_limit, now, now, now])
            states = [row[0] for row in cursor.fetchall()]
        return {"requeued": states.count("queued"), "failed": states.count("failed")}
    expired = list(Send.objects.filter(state=SendState.SENDING, lease_expires_at__lt=now))
    counts = {"requeued": 0, "failed": 0}
    for send in expired:
        kills = send.kills + 1
        failed = kills >= kill_limit
        Send.objects.filter(pk=send.pk).update(
            kills=kills,
            state=SendState.FAILED if failed else SendState.QUEUED,
            reason=f"its chunk killed the sending worker {kills} times"
            if failed
            else "worker lost mid-chunk; queued again",
            not_before=now,
            lease_owner="",
            lease_expires_at=None,
        )
        counts["failed" if failed else "requeued"] += 1
    return counts


def enqueue_senders(*, campaign_id: int, parallel: int | None = None) -> int:
    """Start senders for a campaign; extra ones find nothing to claim and stop at once."""
    from campaigns.tasks import send_batch

    count = parallel or _setting("CAMPAIGN_SEND_PARALLELISM", 1)
    Campaign.objects.filter(pk=campaign_id).update(heartbeat_at=timezone.now())
    for _ in range(count):
        send_batch.delay(campaign_id)
    return count


def campaigns_needing_senders(*, now: datetime) -> list[int]:
    """Sendable campaigns with due rows and no sender heard from recently (its task was lost or ended)."""
    stale = now - timedelta(seconds=_setting("CAMPAIGN_SENDER_STALE_SECONDS", 90))
    due_rows = Send.objects.filter(campaign=OuterRef("pk"), state__in=CLAIMABLE_STATES, not_before__lte=now)
    return list(
        Campaign.objects.filter(status__in=SENDABLE)
        .filter(Q(heartbeat_at__isnull=True) | Q(heartbeat_at__lt=stale))
        .filter(Exists(due_rows))
        .values_list("pk", flat=True)
    )


class _AdvisoryLock:
    """A PostgreSQL session lock so two beats (or a slow and a new dispatcher) never overlap."""

    KEY = 0x5EAC_0001

    def __enter__(self) -> bool:
        if connection.vendor != "postgresql":
            return True
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [self.KEY])
            self.held = bool(cursor.fetchone()[0])
        return self.held

    def __exit__(self, *exc_info) -> None:
        if connection.vendor == "postgresql" and getattr(self, "held", False):
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [self.KEY])


def dispatch_due() -> dict[str, int]:
    """The minute job: reclaim dead leases, start due runs, wake senders, close finished work."""
    from campaigns.services.launch import open_due_occurrences
    from campaigns.tasks import prepare_run, write_trigger_ledgers

    with _AdvisoryLock() as held:
        if not held:
            return {"skipped": 1}
        now = timezone.now()
        report = reclaim_expired_leases()
        report["occurrences"] = len(open_due_occurrences(now=now))
        due_runs = list(
            CampaignRun.objects.filter(
                trigger_customer__isnull=True,
                scheduled_for__lte=now,
                campaign__status__in=SENDABLE,
            )
            .filter(Q(state=RunState.PENDING) | Q(state=RunState.WRITING, lease_expires_at__lt=now))
            .values_list("pk", flat=True)
        )
        for run_id in due_runs:
            prepare_run.delay(run_id)
        report["runs_started"] = len(due_runs)
        if (
            CampaignRun.objects.filter(trigger_customer__isnull=False)
            .filter(Q(state=RunState.PENDING) | Q(state=RunState.WRITING, lease_expires_at__lt=now))
            .exists()
        ):
            write_trigger_ledgers.delay()
        woken = campaigns_needing_senders(now=now)
        for campaign_id in woken:
            enqueue_senders(campaign_id=campaign_id)
        report["senders_started"] = len(woken)
        finished = 0
        with_open_runs = Campaign.objects.filter(status__in=SENDABLE, runs__state=RunState.READY).distinct()
        for campaign_id in with_open_runs.values_list("pk", flat=True):
            finished += finish_if_done(campaign_id=campaign_id)
        report["finished"] = finished
        return report


def rows_in_states(campaign_id: int, states: Iterable[str]) -> int:
    return Send.objects.filter(campaign_id=campaign_id, state__in=list(states)).count()
