"""Prometheus metrics at `/metrics`: the state of the work, read from its source of truth.

Every gauge is computed when Prometheus scrapes, from the database (campaigns, the send ledger's
open rows, the webhook outbox backlog, segment refresh and model states) and the broker (queue
lengths), so the numbers are the same whichever web process answers and no worker has to push
anything. The queries touch only partial indexes or small tables; the ledger is never counted
in full.

Access: with `METRICS_TOKEN` set, a scrape must send `Authorization: Bearer <token>`; without
one, only loopback and private addresses may scrape (the usual in-cluster Prometheus).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Iterator

from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

#: Where an unauthenticated scrape may come from: loopback and the RFC 1918 / unique-local ranges.
INTERNAL_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in ("127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)


def _count_by(queryset, field: str) -> dict[str, int]:
    return {row[field]: row["n"] for row in queryset.values(field).annotate(n=Count("pk")).order_by()}


def _broker_queue_lengths() -> dict[str, int] | None:
    """Messages waiting per Celery queue on a Redis broker; None for other brokers."""
    url = settings.CELERY_BROKER_URL or ""
    if not url.startswith(("redis://", "rediss://")):
        return None
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        return {queue.name: int(client.llen(queue.name)) for queue in settings.CELERY_TASK_QUEUES}
    finally:
        client.close()


class ReachlyCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        from campaigns.models import Campaign, CampaignRun, RunState, Send, SendState
        from customers.models import Customer
        from recommender.models import ModelVersion
        from segments.models import Segment
        from webhooks.models import OutboxMessage

        up = GaugeMetricFamily("reachly_database_up", "1 when the database answered the scrape")
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
        except Exception:  # noqa: BLE001 - a down database is a metric, not a 500
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up

        customers = GaugeMetricFamily("reachly_customers", "Customers that are neither deleted nor erased")
        customers.add_metric(
            [], Customer.objects.filter(deleted_at__isnull=True, erased_at__isnull=True).count()
        )
        yield customers

        campaigns = GaugeMetricFamily("reachly_campaigns", "Campaigns by status", labels=["status"])
        for status, n in sorted(_count_by(Campaign.objects.all(), "status").items()):
            campaigns.add_metric([status], n)
        yield campaigns

        open_runs = CampaignRun.objects.filter(state__in=[RunState.PENDING, RunState.WRITING, RunState.READY])
        runs = GaugeMetricFamily(
            "reachly_campaign_runs_open", "Runs not finished, by state", labels=["state"]
        )
        for state, n in sorted(_count_by(open_runs, "state").items()):
            runs.add_metric([state], n)
        yield runs

        now = timezone.now()
        backlog = GaugeMetricFamily(
            "reachly_sends_open", "Ledger rows still to be sent, by state", labels=["state"]
        )
        claimable = Send.objects.filter(state__in=[SendState.QUEUED, SendState.DEFERRED])
        backlog.add_metric(["due"], claimable.filter(not_before__lte=now).count())
        backlog.add_metric(["waiting"], claimable.filter(not_before__gt=now).count())
        backlog.add_metric(["sending"], Send.objects.filter(state=SendState.SENDING).count())
        yield backlog

        expired = GaugeMetricFamily(
            "reachly_sends_lease_expired", "Rows held by a worker whose lease ran out (the reconciler's work)"
        )
        expired.add_metric([], Send.objects.filter(state=SendState.SENDING, lease_expires_at__lt=now).count())
        yield expired

        outbox = GaugeMetricFamily("reachly_webhook_outbox_pending", "Outbox messages not fanned out yet")
        outbox.add_metric([], OutboxMessage.objects.filter(fanned_out_at__isnull=True).count())
        yield outbox

        segments = GaugeMetricFamily("reachly_segments", "Segments by refresh state", labels=["state"])
        for state, n in sorted(_count_by(Segment.objects.all(), "refresh_state").items()):
            segments.add_metric([state], n)
        yield segments

        models = GaugeMetricFamily(
            "reachly_model_versions", "Recommender model versions by status", labels=["status"]
        )
        for status, n in sorted(_count_by(ModelVersion.objects.all(), "status").items()):
            models.add_metric([status], n)
        yield models

        try:
            lengths = _broker_queue_lengths()
        except Exception as exc:  # noqa: BLE001 - an unreachable broker is reported, not raised
            logger.warning("metrics: broker unreachable (%s)", type(exc).__name__)
            lengths = None
            broker_up = 0
        else:
            broker_up = 1
        broker = GaugeMetricFamily("reachly_broker_up", "1 when the broker answered the scrape")
        broker.add_metric([], broker_up)
        yield broker
        if lengths is not None:
            queues = GaugeMetricFamily("reachly_queue_length", "Celery messages waiting", labels=["queue"])
            for name, n in sorted(lengths.items()):
                queues.add_metric([name], n)
            yield queues


def _allowed(request: HttpRequest) -> bool:
    token = getattr(settings, "METRICS_TOKEN", "")
    if token:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode())
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in network for network in INTERNAL_NETWORKS if network.version == address.version)


def metrics(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        return HttpResponse("metrics need a bearer token or a private address\n", status=403)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReachlyCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
