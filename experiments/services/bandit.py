"""Thompson sampling for recurring and triggered campaigns: each run's shares from the results so far.

Called by the ledger writer once per run (each occurrence of a recurring campaign, each batch of
trigger runs). The shares are the posterior chance that each variant has the best rate, lifted to
the experiment's floor, and go through the ordinary stable-hash split. They are recorded on the
experiment (and in the log) so that a marketer can see what the bandit is doing. The counts are
cheap set-wise aggregates over the ledger and the tracking events of every run so far.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from campaigns.models import Arm, Send, SendState, TrackingEvent, TrackingKind, Variant
from customers.models import Order
from experiments.models import Experiment, Metric
from experiments.stats import ConversionCounts, thompson_allocation

logger = logging.getLogger(__name__)


def rate_counts(*, experiment: Experiment, variants: Sequence[Variant]) -> dict[int, tuple[int, int]]:
    """(recipients, successes) per variant id, for the experiment's rate metric."""
    campaign = experiment.campaign
    sends = Send.objects.filter(campaign=campaign, arm=Arm.VARIANT, state=SendState.SENT)
    if experiment.metric == Metric.CONVERSION_RATE:
        window = timedelta(hours=campaign.conversion_window_hours)
        success = Exists(
            Order.objects.filter(
                customer=OuterRef("customer_id"),
                placed_at__gte=OuterRef("sent_at"),
                placed_at__lt=OuterRef("sent_at") + window,
                total__gt=0,
            ).exclude(status=Order.Status.CANCELLED)
        )
    else:
        kind = TrackingKind.OPEN if experiment.metric == Metric.OPEN_RATE else TrackingKind.CLICK
        success = Exists(TrackingEvent.objects.filter(send=OuterRef("pk"), kind=kind, machine=False))
    rows = (
        sends.annotate(success=success)
        .values("variant_id")
        .annotate(n=Count("id"), wins=Count("id", filter=Q(success=True)))
        .values_list("variant_id", "n", "wins")
    )
    counts = {v.pk: (0, 0) for v in variants}
    for variant_id, n, wins in rows:
        if variant_id in counts:
            counts[variant_id] = (n, wins)
    return counts


def allocate(*, experiment: Experiment, variants: Sequence[Variant]) -> list[float]:
    """This run's share for each variant (in the order given); records them on the experiment."""
    counts = rate_counts(experiment=experiment, variants=variants)
    floor = float(experiment.bandit_floor)
    if any(n == 0 for n, _ in counts.values()):
        # Explore first: until every variant has been sent, split by the configured weights.
        total = sum(v.weight for v in variants)
        shares = [v.weight / total for v in variants]
    else:
        seed = int(timezone.now().timestamp()) ^ experiment.pk
        shares = [
            float(s)
            for s in thompson_allocation(
                [ConversionCounts(n=counts[v.pk][0], conversions=counts[v.pk][1]) for v in variants],
                floor=floor,
                seed=seed,
            )
        ]
    allocation = {
        "at": timezone.now().isoformat(),
        "shares": {str(v.pk): round(s, 6) for v, s in zip(variants, shares, strict=True)},
        "counts": {str(v.pk): list(counts[v.pk]) for v in variants},
    }
    Experiment.objects.filter(pk=experiment.pk).update(allocation=allocation, updated_at=timezone.now())
    logger.info("experiment %s: bandit shares %s", experiment.pk, allocation["shares"])
    # A zero share cannot go through the weighted split; the floor keeps every share positive.
    return [max(s, 1e-9) for s in shares]
