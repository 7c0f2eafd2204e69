"""Sending one claimed chunk on one channel: check, render, deliver over one connection, record.

Everything the chunk needs is read once (customers with their consent, suppressions, push
subscriptions, frequency-cap usage, loyalty and recommendation parts); each row that passes the
checks is composed and delivered, and every row's outcome is written in one statement
(`claims.record_results`). One bad message never sinks the chunk.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from django.utils import timezone

from campaigns.composition import Composer, TemplateError, ledger_key
from campaigns.delivery import push as push_delivery
from campaigns.delivery.email import EmailDelivery, provider_name
from campaigns.delivery.outcomes import RETRY, Outcome
from campaigns.delivery.throttle import Throttle, rate_for
from campaigns.models import Campaign, Channel, SendState, TrackedLink
from campaigns.services import context as message_context
from campaigns.services import eligibility
from campaigns.services.claims import (
    Claimed,
    Result,
    _setting,
    record_results,
    renew_lease,
    result_from_outcome,
)
from campaigns.tracking.tokens import url_digest
from customers.models import Customer

logger = logging.getLogger(__name__)

CONSECUTIVE_CONNECTION_FAILURES = 3


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
