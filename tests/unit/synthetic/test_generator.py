"""Determinism, exact sizes, keys and configuration of the synthetic shop."""

from datetime import UTC, datetime

import numpy as np
import pytest

from core.synthetic import (
    COUNTRIES,
    CUSTOMERS_PER_BATCH,
    SyntheticConfig,
    SyntheticShop,
    Table,
    check_email_domain,
    collect,
)

SMALL = SyntheticConfig(customers=700, products=150, orders=3500, seed=11)


def assert_same(a: dict[str, Table], b: dict[str, Table]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].columns.keys() == b[name].columns.keys(), name
        for column in a[name].columns:
            assert np.array_equal(a[name].columns[column], b[name].columns[column]), (name, column)
            assert np.array_equal(a[name].is_null(column), b[name].is_null(column)), (name, column)


def test_the_same_config_gives_identical_tables():
    assert_same(collect(SMALL), collect(SMALL))


def test_another_seed_gives_other_customers_and_orders():
    other = collect(SyntheticConfig(customers=700, products=150, orders=3500, seed=12))
    mine = collect(SMALL)
    assert not np.array_equal(mine["customers"].columns["email"], other["customers"].columns["email"])
    assert not np.array_equal(mine["orders"].columns["placed_at"], other["orders"].columns["placed_at"])


def test_catalog_tables_can_be_asked_for_twice():
    shop = SyntheticShop(SMALL)
    first, second = shop.catalog_tables(), shop.catalog_tables()
    for a, b in zip(first, second, strict=True):
        for column in a.columns:
            assert np.array_equal(a.columns[column], b.columns[column])


@pytest.fixture(scope="module")
def two_batches():
    config = SyntheticConfig(
        customers=CUSTOMERS_PER_BATCH + 501, products=90, orders=20_003, browse_events=7_001, seed=4
    )
    return config, collect(config)


def test_sizes_are_exactly_as_asked_across_batches(two_batches):
    config, data = two_batches
    assert len(data["customers"]) == config.customers
    assert len(data["products"]) == config.products
    assert len(data["orders"]) == config.orders
    events = data["events"].columns["type"]
    assert (events != b"purchase").sum() == config.browse_events
    assert np.array_equal(data["customers"].columns["id"], np.arange(1, config.customers + 1))


def test_ids_and_business_keys_are_unique(two_batches):
    _, data = two_batches
    for name, table in data.items():
        ids = table.columns["id"]
        assert np.array_equal(ids, np.arange(1, len(ids) + 1)), name
    for name, column in [
        ("customers", "external_id"),
        ("customers", "email"),
        ("products", "sku"),
        ("orders", "external_id"),
        ("events", "idempotency_key"),
        ("categories", "path"),
    ]:
        values = data[name].columns[column]
        assert len(np.unique(values)) == len(values), (name, column)
    lines = data["order_lines"].columns
    pairs = lines["order_id"] * 1000 + lines["line_no"]
    assert len(np.unique(pairs)) == len(pairs)
    points = data["points_transactions"].columns
    keys = np.char.add(points["membership_id"].astype("S"), points["idempotency_key"])
    assert len(np.unique(keys)) == len(keys)
    consents = data["consents"].columns
    assert len(np.unique(np.char.add(consents["customer_id"].astype("S"), consents["channel"]))) == len(
        consents["channel"]
    )


def test_every_reference_points_at_an_existing_row(two_batches):
    _, data = two_batches
    n_customers, n_products = len(data["customers"]), len(data["products"])
    for name in ("consent_records", "consents", "push_subscriptions", "orders", "events"):
        ids = data[name].columns["customer_id"]
        assert ids.min() >= 1 and ids.max() <= n_customers, name
    for name in ("order_lines", "events"):
        table = data[name]
        ids = table.columns["product_id"][~table.is_null("product_id")]
        assert ids.min() >= 1 and ids.max() <= n_products, name
    assert data["order_lines"].columns["order_id"].max() == len(data["orders"])
    memberships = len(data["memberships"])
    for name in ("points_transactions", "points_lots", "redemptions"):
        assert data[name].columns["membership_id"].max() <= memberships
    products = data["products"].columns
    skus = dict(zip(products["id"].tolist(), products["sku"].tolist(), strict=True))
    lines = data["order_lines"].columns
    assert all(skus[p] == s for p, s in zip(lines["product_id"].tolist(), lines["sku"].tolist(), strict=True))


def test_everything_happens_inside_the_history(two_batches):
    config, data = two_batches
    start, end = np.datetime64(config.start_us, "us"), np.datetime64(config.end_us, "us")
    placed = data["orders"].columns["placed_at"]
    assert placed.min() >= start and placed.max() < end
    occurred = data["events"].columns["occurred_at"]
    assert occurred.min() >= start and occurred.max() < end
    created = data["customers"].columns["created_at"]
    customer_of_order = data["orders"].columns["customer_id"] - 1
    assert (placed >= created[customer_of_order]).all()
    assert (data["consent_records"].columns["occurred_at"] < end).all()
    assert (data["points_transactions"].columns["occurred_at"] < end).all()


def test_addresses_only_at_the_reserved_domain():
    data = collect(
        SyntheticConfig(customers=300, products=20, orders=600, seed=2, email_domain="shop.example.org")
    )
    emails = data["customers"].columns["email"]
    assert np.char.endswith(emails, b"@shop.example.org").all()
    assert all(b" " not in e and e.count(b"@") == 1 for e in emails.tolist())


@pytest.mark.parametrize(
    "domain", ["example.com", "EXAMPLE.net", "mail.example.org", "shop.test", "a.invalid"]
)
def test_reserved_domains_are_accepted(domain):
    assert check_email_domain(domain) == domain.lower()


@pytest.mark.parametrize(
    "domain", ["gmail.com", "example.co.uk", "notexample.com", "test", "example.com.evil.io"]
)
def test_real_domains_are_refused(domain):
    with pytest.raises(ValueError, match="not reserved"):
        check_email_domain(domain)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"customers": 0}, "customers must be at least 1"),
        ({"products": 0}, "products must be at least 1"),
        ({"orders": -1}, "orders must not be negative"),
        ({"seed": -3}, "seed must not be negative"),
        ({"days": 0}, "days must be at least 1"),
        ({"end": datetime(2025, 1, 1)}, "timezone-aware"),
        ({"zipf_exponent": 0}, "zipf_exponent must be positive"),
        ({"return_rate": 1.5}, "return_rate must be between 0 and 1"),
        ({"email_domain": "gmail.com"}, "not reserved"),
    ],
)
def test_bad_configuration_is_refused_with_the_reason(changes, message):
    arguments = {"customers": 10, "products": 5, "orders": 10} | changes
    with pytest.raises(ValueError, match=message):
        SyntheticConfig(**arguments)


def test_no_orders_still_gives_customers_consent_and_browsing():
    data = collect(SyntheticConfig(customers=200, products=30, orders=0, browse_events=400, seed=1))
    assert len(data["orders"]) == 0 and len(data["order_lines"]) == 0
    assert len(data["customers"]) == 200 and len(data["consents"]) > 0
    assert len(data["events"]) == 400
    assert len(data["points_transactions"]) == 0


def test_countries_time_zones_and_locales_belong_together(two_batches):
    _, data = two_batches
    customers = data["customers"].columns
    allowed = {
        country.encode(): ({z[0].encode() for z in zones}, {loc[0].encode() for loc in locales})
        for country, _, zones, locales in COUNTRIES
    }
    for country, zone, locale in zip(
        customers["country"].tolist(),
        customers["timezone"].tolist(),
        customers["locale"].tolist(),
        strict=True,
    ):
        zones, locales = allowed[country]
        assert zone in zones and locale in locales
    countries, counts = np.unique(customers["country"], return_counts=True)
    assert countries[np.argmax(counts)] == b"United Kingdom"
    assert len(countries) >= 12


def test_table_rejects_ragged_columns_and_bad_masks():
    with pytest.raises(ValueError, match="differ in length"):
        Table("t", {"a": np.zeros(2), "b": np.zeros(3)})
    with pytest.raises(ValueError, match="bad null mask"):
        Table("t", {"a": np.zeros(2)}, nulls={"a": np.zeros(3, dtype=bool)})
    with pytest.raises(ValueError, match="must hold integers"):
        Table("t", {"a": np.zeros(2)}, scales={"a": 2})


def test_end_date_moves_the_whole_history():
    end = datetime(2024, 7, 1, tzinfo=UTC)
    data = collect(SyntheticConfig(customers=100, products=10, orders=300, seed=1, end=end, days=30))
    placed = data["orders"].columns["placed_at"]
    assert placed.max() < np.datetime64("2024-07-01T00:00:00", "us")
    assert placed.min() >= np.datetime64("2024-06-01T00:00:00", "us")
