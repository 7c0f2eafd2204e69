# ruff: noqa: S608 - the SQL below interpolates only this module's constants (table and column names).
"""The SQL of the customer analytics: RFM scores and features, the benchmark's hand-written
baseline, the purchase summary the churn/CLV models read, and recency derived from the last
purchase.

Per-customer aggregates and RFM quintiles are computed by the database: one SELECT with
`NTILE(5)` window functions over the per-customer aggregate of the purchases. That aggregate is
read from one of two sources, with the same result:
- the orders themselves (`source="orders"`): every order up to `as_of` grouped by customer;
- the per-customer rollups (`source="rollups"`, PostgreSQL): the purchase columns the rollups
  keep (`segments.rollups`), except for customers with unprocessed changes
  (`segments_touchedcustomer`), whose orders are grouped as above. Exact when no order is dated
  after `as_of` (`services` checks it) by the rollups' invariant: every committed order is in its
  customer's rollup row or the customer is still touched.

Recency is not stored: it is the whole days from the day of the last purchase to the day of the
run's `as_of` (both in the shop's time zone), derived when read (`recency_sql`,
`segments.features.recency`), so a nightly run rewrites only the customers whose purchases or
scores changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from customers.models import Customer, Order
from segments.analytics import RFMMapping
from segments.models import CustomerRollup, TouchedCustomer
from segments.rollups import net_spend_sql, purchase_sql

#: Columns of `CustomerFeatures` the features run writes, in the order `rfm_select_sql` selects them.
FEATURE_COLUMNS = (
    "customer_id",
    "frequency",
    "monetary",
    "average_order_value",
    "first_order_at",
    "last_order_at",
    "rfm_r",
    "rfm_f",
    "rfm_m",
    "rfm_group",
    "computed_at",
)


def order_day(column: str) -> str:
    """The calendar day of a timestamp column in the shop's time zone, as a date."""
    if connection.vendor == "postgresql":
        return f"({column} AT TIME ZONE %(tz)s)::date"
    return f"date({column})"


def days_between(later: str, earlier: str) -> str:
    """Whole days from the day of `earlier` to the day of `later` (both date expressions)."""
    if connection.vendor == "postgresql":
        return f"({later} - {earlier})"
    return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"


def as_of_day() -> str:
    if connection.vendor == "postgresql":
        return "(%(as_of)s::timestamptz AT TIME ZONE %(tz)s)::date"
    return "date(%(as_of)s)"


def recency_sql(column: str) -> str:
    """Whole days from the day of the purchase in `column` to the day of `%(as_of)s`."""
    return days_between(as_of_day(), order_day(column))


def _cents(amount: str) -> str:
    """An amount of two decimals as a whole number of cents: the same order as the amount, and a
    sort key PostgreSQL compares faster than a numeric."""
    if connection.vendor == "postgresql":
        return f"({amount} * 100)::bigint"
    return f"CAST(ROUND({amount} * 100) AS INTEGER)"


def base_params(as_of: datetime) -> dict[str, Any]:
    return {"as_of": connection.ops.adapt_datetimefield_value(as_of), "tz": settings.TIME_ZONE}


def _group_case(mapping: RFMMapping, params: dict[str, Any]) -> str:
    """The mapping's ordered rules as one SQL CASE: the first matching WHEN wins, as in the table."""
    value = "(f + m) / 2.0" if mapping.value_score == "frequency_monetary" else "f"
    whens = []
    for index, rule in enumerate(mapping.rules):
        params[f"g{index}"] = rule.group
        whens.append(
            f"WHEN r BETWEEN {int(rule.recency[0])} AND {int(rule.recency[1])} "
            f"AND {value} BETWEEN {float(rule.value[0])!r} AND {float(rule.value[1])!r} THEN %(g{index})s"
        )
    return "CASE WHEN r IS NULL THEN '' " + " ".join(whens) + " ELSE '' END"


def _orders_per_customer(scope: str = "") -> str:
    """Per customer with an order up to as_of: purchases, net spend, first and last purchase."""
    purchase = purchase_sql("o")
    return f"""
        SELECT o.customer_id,
               COUNT(*) FILTER (WHERE {purchase}) AS frequency,
               SUM({net_spend_sql("o")}) AS monetary,
               MIN(o.placed_at) FILTER (WHERE {purchase}) AS first_order_at,
               MAX(o.placed_at) FILTER (WHERE {purchase}) AS last_order_at
        FROM {Order._meta.db_table} o
        WHERE o.placed_at <= %(as_of)s{scope}
        GROUP BY o.customer_id
    """


def _rollups_per_customer() -> str:
    """The same aggregate from the rollup rows, the touched customers' from their orders."""
    touched = TouchedCustomer._meta.db_table
    return f"""
        SELECT r.customer_id, COALESCE(r.purchases, 0), r.net_spend,
               r.first_purchase_at, r.last_purchase_at
        FROM {CustomerRollup._meta.db_table} r
        WHERE NOT EXISTS (SELECT 1 FROM {touched} t WHERE t.customer_id = r.customer_id)
        UNION ALL
        {_orders_per_customer(f" AND o.customer_id IN (SELECT customer_id FROM {touched})")}
    """


def rfm_select_sql(
    *, mapping: RFMMapping, as_of: datetime, source: str = "orders"
) -> tuple[str, dict[str, Any]]:
    """One SELECT of every customer's features, RFM scores and group (columns of `FEATURE_COLUMNS`).

    Scores are ``NTILE(5)`` over the customers with at least one purchase, ties broken by
    customer id, exactly as `segments.analytics.quintile_scores` computes them (recency: the
    later the last purchase day, the higher); customers without a purchase get no scores and no
    group. `source` is "orders" or "rollups" (see the module's docstring).
    """
    params = base_params(as_of)
    params["now"] = connection.ops.adapt_datetimefield_value(timezone.now())
    per_customer = _rollups_per_customer() if source == "rollups" else _orders_per_customer()
    sql = f"""
        WITH per_customer (customer_id, frequency, monetary, first_order_at, last_order_at) AS (
            {per_customer}
        ),
        base AS (
            SELECT c.id AS customer_id,
                   COALESCE(p.frequency, 0) AS frequency,
                   COALESCE(p.monetary, 0) AS monetary,
                   p.first_order_at, p.last_order_at,
                   {recency_sql("p.last_order_at")} AS recency_days,
                   {_cents("COALESCE(p.monetary, 0)")} AS monetary_cents
            FROM {Customer._meta.db_table} c
            LEFT JOIN per_customer p ON p.customer_id = c.id
        ),
        scored AS (
            -- Three plain sorts of the purchasers (a partition key in front of each sort key
            -- made PostgreSQL compare whole keys instead of their abbreviations: 5x slower).
            SELECT base.*,
                   NTILE(5) OVER (ORDER BY recency_days DESC, customer_id) AS r,
                   NTILE(5) OVER (ORDER BY frequency, customer_id) AS f,
                   NTILE(5) OVER (ORDER BY monetary_cents, customer_id) AS m
            FROM base WHERE frequency > 0
            UNION ALL
            SELECT base.*, NULL, NULL, NULL FROM base WHERE frequency = 0
        )
        SELECT customer_id,
               frequency,
               monetary,
               CASE WHEN frequency > 0 THEN ROUND(monetary / frequency, 2) END AS average_order_value,
               first_order_at,
               last_order_at,
               r AS rfm_r, f AS rfm_f, m AS rfm_m,
               {_group_case(mapping, params)} AS rfm_group,
               %(now)s AS computed_at
        FROM scored
    """
    return sql, params


def hand_written_rfm_sql(*, as_of: datetime) -> tuple[str, dict[str, Any]]:
    """The baseline of the benchmark: the same RFM aggregate a person would write, not stored.

    Per-customer aggregates of the orders, NTILE(5) quintiles over them, counted per R x F x M
    cell: the work `compute_features` does, without writing anything or naming groups.
    """
    purchase = purchase_sql("o")
    sql = f"""
        WITH per_customer AS (
            SELECT o.customer_id,
                   COUNT(*) FILTER (WHERE {purchase}) AS frequency,
                   SUM({net_spend_sql("o")}) AS monetary,
                   MAX(o.placed_at) FILTER (WHERE {purchase}) AS last_order_at
            FROM {Order._meta.db_table} o
            WHERE o.placed_at <= %(as_of)s
            GROUP BY o.customer_id
        ),
        scored AS (
            SELECT monetary,
                   NTILE(5) OVER (ORDER BY {recency_sql("last_order_at")} DESC, customer_id) AS r,
                   NTILE(5) OVER (ORDER BY frequency, customer_id) AS f,
                   NTILE(5) OVER (ORDER BY monetary, customer_id) AS m
            FROM per_customer WHERE frequency > 0
        )
        SELECT r, f, m, COUNT(*), SUM(monetary) FROM scored GROUP BY r, f, m ORDER BY r, f, m
    """
    return sql, base_params(as_of)


def purchase_summary_sql(*, as_of: datetime) -> tuple[str, dict[str, Any]]:
    """Per customer: repeat purchase days x, days to the last purchase t_x, days observed T, and
    the mean value of the repeat purchase days, computed in SQL exactly as
    `segments.analytics.build_customer_summary` does from the purchases (the tests check it)."""
    day = order_day("o.placed_at")
    sql = f"""
        WITH days AS (
            SELECT o.customer_id, {day} AS day, SUM(o.total) AS value
            FROM {Order._meta.db_table} o
            WHERE {purchase_sql("o")} AND o.placed_at <= %(as_of)s
            GROUP BY o.customer_id, {day}
        ),
        per_customer AS (
            SELECT customer_id, COUNT(*) - 1 AS x, MIN(day) AS first_day, MAX(day) AS last_day,
                   SUM(value) AS total
            FROM days GROUP BY customer_id
        )
        SELECT p.customer_id, p.x,
               {days_between("p.last_day", "p.first_day")},
               {days_between(as_of_day(), "p.first_day")},
               CASE WHEN p.x > 0 THEN CAST(p.total - d.value AS FLOAT) / p.x ELSE 0 END
        FROM per_customer p
        JOIN days d ON d.customer_id = p.customer_id AND d.day = p.first_day
        ORDER BY p.customer_id
    """
    if connection.vendor == "postgresql":
        sql = sql.replace("AS FLOAT", "AS double precision")
    return sql, base_params(as_of)
