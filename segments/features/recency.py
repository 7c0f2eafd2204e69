# ruff: noqa: S608 - the SQL below interpolates only table names and enum constants.
"""Recency, derived when read: whole days from the day of a customer's last purchase to the day of
the features run that scored them (both in the shop's time zone).

Not stored, because it changes for every customer every day: storing it made each nightly run
rewrite every features row (a new row version each in PostgreSQL) when only a few customers'
purchases or scores had changed. The RFM recency score is stored; it is computed from the same
day difference by the run (`segments.features.sql`).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models.expressions import RawSQL

from segments.features.models import AnalyticsRun
from segments.features.sql import recency_sql


def scored_as_of() -> datetime | None:
    """`as_of` of the latest successful features run: the day recency is counted to."""
    return (
        AnalyticsRun.objects.filter(kind=AnalyticsRun.Kind.FEATURES, state=AnalyticsRun.State.SUCCEEDED)
        .order_by("-finished_at", "-pk")
        .values_list("as_of", flat=True)
        .first()
    )


def recency_days(last_purchase_at: datetime | None, as_of: datetime | None) -> int | None:
    """Days from the day of the last purchase to the day of `as_of` (None without either)."""
    if last_purchase_at is None or as_of is None:
        return None
    zone = ZoneInfo(settings.TIME_ZONE)
    return (as_of.astimezone(zone).date() - last_purchase_at.astimezone(zone).date()).days


def recency_expression(*, as_of: datetime | None = None, column: str = "last_order_at") -> RawSQL:
    """The same, as an expression over `segments_customerfeatures` for querysets (the rules):
    counted to `as_of`, or (None) to the latest successful features run's, read by the query itself
    so that compiling a rule touches no database.

    The column is left unqualified: the rules query the table under an alias, inside a subquery
    where the name resolves to it first."""
    sql = recency_sql(column)
    params = {"tz": settings.TIME_ZONE}
    if as_of is None:
        runs = AnalyticsRun._meta.db_table
        latest = (
            f"(SELECT as_of FROM {runs} WHERE kind = '{AnalyticsRun.Kind.FEATURES.value}' "
            f"AND state = '{AnalyticsRun.State.SUCCEEDED.value}' ORDER BY finished_at DESC, id DESC LIMIT 1)"
        )
        sql = sql.replace("%(as_of)s", latest)
    else:
        params["as_of"] = connection.ops.adapt_datetimefield_value(as_of)
    # RawSQL takes positional parameters: rewrite the named ones in order of appearance.
    ordered: list = []
    while "%(" in sql:
        start = sql.index("%(")
        end = sql.index(")s", start)
        ordered.append(params[sql[start + 2 : end]])
        sql = sql[:start] + "%s" + sql[end + 2 :]
    return RawSQL(sql, ordered)  # noqa: S611 - the SQL is this module's; values are parameters
