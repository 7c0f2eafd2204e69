"""generate_synthetic on the real PostgreSQL: binary COPY, constraints rebuilt, determinism, refusal."""

from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from core.synthetic import SyntheticConfig, collect
from customers.models import Channel, ConsentStatus, Customer, CustomerConsent, Order
from customers.selectors import customers_with_consent
from customers.synthetic_loader import TABLE_MODELS, load_synthetic, synthetic_models

pytestmark = pytest.mark.django_db

ARGS = {"customers": 400, "products": 80, "orders": 2500, "events": 1500, "seed": 5}
CONFIG = SyntheticConfig(
    customers=ARGS["customers"], products=ARGS["products"], orders=ARGS["orders"],
    browse_events=ARGS["events"], seed=ARGS["seed"],
)  # fmt: skip


def generate(*extra: str, **overrides) -> str:
    out, err = StringIO(), StringIO()
    arguments = [f"--{k}={v}" for k, v in (ARGS | overrides).items()]
    call_command("generate_synthetic", *arguments, "--no-progress", *extra, stdout=out, stderr=err)
    return out.getvalue()


def tables() -> list[str]:
    return [m._meta.db_table for m in synthetic_models()]


def fetch(sql: str, params=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def fingerprints() -> dict[str, str]:
    """One digest of every row of every synthetic table, in id order."""
    return {
        t: fetch(f"SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x.id), '')) FROM {t} x")[0][0]  # noqa: S608
        for t in tables()
    }


def schema_snapshot() -> set[tuple]:
    indexes = fetch(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
        "WHERE indrelid = ANY(%s::regclass[])",
        [tables()],
    )
    constraints = fetch(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint "
        "WHERE conrelid = ANY(%s::regclass[])",
        [tables()],
    )
    return set(indexes) | set(constraints)


def test_loads_every_table_with_the_generated_rows():
    expected = collect(CONFIG)
    before = schema_snapshot()
    output = generate()
    assert "Loaded" in output and "customers_customer" in output
    for name, label in TABLE_MODELS.items():
        db_table = label.replace(".", "_").lower()
        assert fetch(f"SELECT count(*) FROM {db_table}")[0][0] == len(expected[name]), name  # noqa: S608
    total = fetch("SELECT sum(total) * 100 FROM customers_order")[0][0]
    assert int(total) == int(expected["orders"].columns["total"].sum())
    emails = [e for (e,) in fetch("SELECT email FROM customers_customer ORDER BY id")]
    assert emails == [e.decode() for e in expected["customers"].columns["email"]]
    placed = fetch("SELECT placed_at FROM customers_order ORDER BY id LIMIT 1")[0][0]
    assert np.datetime64(placed.replace(tzinfo=None), "us") == expected["orders"].columns["placed_at"][0]
    # Foreign keys, unique constraints and indexes are back, exactly as the migrations made them.
    assert schema_snapshot() == before


def test_stored_ledgers_agree_with_their_derived_state():
    generate()
    mismatched_balances = fetch(
        """
        SELECT count(*) FROM loyalty_membership m
        LEFT JOIN (SELECT membership_id, sum(points) AS points,
                          sum(CASE WHEN kind = 'earn' THEN points ELSE 0 END) AS earned
                   FROM loyalty_pointstransaction GROUP BY membership_id) t ON t.membership_id = m.id
        WHERE m.balance <> coalesce(t.points, 0) OR m.lifetime_points <> coalesce(t.earned, 0)
        """
    )[0][0]
    assert mismatched_balances == 0
    lots_vs_balance = fetch(
        """
        SELECT count(*) FROM loyalty_membership m
        LEFT JOIN (SELECT membership_id, sum(remaining) AS left_over FROM loyalty_pointslot GROUP BY 1) l
               ON l.membership_id = m.id
        WHERE m.balance <> coalesce(l.left_over, 0)
        """
    )[0][0]
    assert lots_vs_balance == 0
    stale_states = fetch(
        """
        SELECT count(*) FROM customers_customerconsent s
        JOIN (SELECT DISTINCT ON (customer_id, channel) customer_id, channel, action, occurred_at
              FROM customers_consentrecord ORDER BY customer_id, channel, occurred_at DESC, id DESC) r
          ON r.customer_id = s.customer_id AND r.channel = s.channel
        WHERE s.changed_at <> r.occurred_at
           OR s.status <> CASE r.action WHEN 'withdrawn' THEN 'withdrawn' WHEN 'requested' THEN 'pending'
                                        ELSE 'granted' END
        """
    )[0][0]
    assert stale_states == 0
    granted = CustomerConsent.objects.filter(
        channel=Channel.EMAIL, status=ConsentStatus.GRANTED, customer__deleted_at__isnull=True
    ).count()
    assert customers_with_consent(channel=Channel.EMAIL).count() == granted > 0
    wrong_totals = fetch(
        """
        SELECT count(*) FROM customers_order o
        JOIN (SELECT order_id, sum(quantity * unit_price) AS amount FROM customers_orderline GROUP BY 1) l
          ON l.order_id = o.id
        WHERE o.total <> l.amount
        """
    )[0][0]
    assert wrong_totals == 0


def test_the_same_command_twice_gives_identical_rows():
    generate()
    first = fingerprints()
    generate("--truncate")
    assert fingerprints() == first
    generate("--truncate", seed=6)
    assert fingerprints()["customers_order"] != first["customers_order"]


def test_refuses_to_mix_with_existing_customers_and_truncate_clears_them():
    Customer.objects.create(external_id="real-1", email="real@example.com")
    with pytest.raises(CommandError, match="--truncate") as refused:
        generate()
    assert "customers_customer (1 row)" in str(refused.value)
    assert not Order.objects.exists() and Customer.objects.count() == 1
    generate("--truncate")
    assert not Customer.objects.filter(external_id="real-1").exists()
    assert Customer.all_objects.count() == ARGS["customers"]


def test_truncate_also_empties_tables_that_reference_customers():
    customer = Customer.objects.create(external_id="real-2", email="real2@example.com")
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE synthetic_probe_note (id bigserial PRIMARY KEY, "
            "customer_id bigint NOT NULL REFERENCES customers_customer(id) DEFERRABLE INITIALLY DEFERRED)"
        )
        cursor.execute("INSERT INTO synthetic_probe_note (customer_id) VALUES (%s)", [customer.pk])
    output = generate("--truncate")
    assert "synthetic_probe_note" in output.splitlines()[0]
    assert fetch("SELECT count(*) FROM synthetic_probe_note")[0][0] == 0


def test_new_rows_after_the_load_get_fresh_ids():
    generate()
    created = Customer.objects.create(external_id="after-load", email="after@example.com")
    assert created.pk == ARGS["customers"] + 1


def test_tables_are_analyzed_for_the_planner():
    generate()
    reltuples = fetch("SELECT reltuples FROM pg_class WHERE relname = 'customers_order'")[0][0]
    assert reltuples == pytest.approx(ARGS["orders"], rel=0.05)


def test_a_load_that_fails_midway_leaves_nothing_behind():
    before = schema_snapshot()
    config = SyntheticConfig(customers=10_200, products=50, orders=11_000, browse_events=0, seed=1)
    seen = []

    def interrupt(done: int, total: int) -> None:
        seen.append((done, total))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        load_synthetic(config=config, on_batch=interrupt)
    assert seen == [(1, 2)]
    assert not Customer.all_objects.exists() and not Order.objects.exists()
    assert schema_snapshot() == before


def test_bad_arguments_are_command_errors():
    with pytest.raises(CommandError, match="not reserved"):
        generate(**{"email-domain": "gmail.com"})
    with pytest.raises(CommandError, match="customers must be at least 1"):
        generate(customers=0)


def test_json_summary():
    import json

    summary = json.loads(generate("--json"))
    assert summary["database"] == "postgresql"
    assert summary["rows"]["customers_order"] == ARGS["orders"]
    assert summary["config"]["seed"] == ARGS["seed"]
    assert {"copy", "indexes", "analyze", "total"} <= summary["seconds"].keys()
