"""Reads of segment membership: the one way campaigns learn who is in an audience."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Exists, OuterRef, QuerySet

from customers.models import Customer
from segments.models import Segment, SegmentMembership


def _current_members(segment_ids: list[int]):
    return SegmentMembership.objects.filter(
        customer=OuterRef("pk"), segment_id__in=segment_ids, exited_at__isnull=True
    )


def customers_in_segment(*, segment: Segment) -> QuerySet[Customer]:
    return Customer.objects.filter(Exists(_current_members([segment.pk])))


def audience(*, include: Iterable[Segment], exclude: Iterable[Segment] = ()) -> QuerySet[Customer]:
    """Customers in any included segment and in none of the excluded ones, as one query."""
    include_ids = [s.pk for s in include]
    exclude_ids = [s.pk for s in exclude]
    queryset = (
        Customer.objects.filter(Exists(_current_members(include_ids)))
        if include_ids
        else Customer.objects.none()
    )
    if exclude_ids:
        queryset = queryset.exclude(Exists(_current_members(exclude_ids)))
    return queryset


# --- rule previews --------------------------------------------------------------------------------

PREVIEW_SAMPLE = 20
PREVIEW_TIMEOUT_MS = 15_000
SAMPLE_FIELDS = ("id", "external_id", "email", "first_name", "last_name", "country")


class PreviewTooSlow(Exception):
    """The rule's count did not finish within PREVIEW_TIMEOUT_MS."""


def preview_rule(*, rule, sample_size: int = PREVIEW_SAMPLE, now=None, use_rollups: bool = True) -> dict:
    """Count and a sample of the customers a rule matches now (raises RuleValidationError)."""
    from django.db import OperationalError, connection, transaction

    from segments.rules.compiler import matching_customers, matching_ids
    from segments.services import WORK_MEM

    size = max(0, min(sample_size, 100))
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            # Compiled inside the transaction: the rollups it reads stay those it was compiled for.
            if connection.vendor != "postgresql":  # the embedded default: small data, two queries
                queryset = matching_customers(rule, now=now, use_rollups=use_rollups)
                count = queryset.count()
                sample = list(queryset.order_by("pk").values(*SAMPLE_FIELDS)[:size])
                return {"count": count, "sample": sample}
            cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
            cursor.execute("SET LOCAL jit = off")  # compiling costs more than it saves here
            cursor.execute(f"SET LOCAL statement_timeout = {int(PREVIEW_TIMEOUT_MS)}")
            # The rule is evaluated once: its ids are counted and the lowest ones are the sample.
            ids = matching_ids(rule, now=now, use_rollups=use_rollups)
            sql, params = ids.query.sql_with_params()
            cursor.execute(
                f"WITH m (id) AS MATERIALIZED ({sql}) "  # noqa: S608 - the compiled rule; values are parameters
                "SELECT (SELECT count(*) FROM m), ARRAY(SELECT id FROM m ORDER BY id LIMIT %s)",
                [*params, size],
            )
            count, ids = cursor.fetchone()
            sample = list(Customer.objects.filter(pk__in=ids).order_by("pk").values(*SAMPLE_FIELDS))
    except OperationalError as exc:
        if "statement timeout" in str(exc):
            raise PreviewTooSlow(f"The preview took longer than {PREVIEW_TIMEOUT_MS // 1000} s.") from None
        raise
    return {"count": count, "sample": sample}


def segment_members(*, segment: Segment):
    """Current memberships of a segment with their customers, newest entry first."""
    return (
        SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True)
        .select_related("customer")
        .order_by("-id")
    )
