from datetime import UTC, datetime

import pytest
from django.db import connection

from customers.models import ConsentRecord, Customer, CustomerConsent
from customers.services import upsert_customers
from webhooks.models import OutboxMessage

pytestmark = pytest.mark.django_db


def rows(n, **extra):
    return [
        {
            "external_id": f"c{i}",
            "email": f"c{i}@Example.COM",
            "first_name": f"N{i}",
            "country": "GB",
            **extra,
        }
        for i in range(n)
    ]


def test_creates_then_replay_changes_nothing(django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        first = upsert_customers(rows=rows(50))
    assert (first.created, first.updated, first.unchanged, first.errors) == (50, 0, 0, [])
    assert Customer.objects.count() == 50
    assert Customer.objects.get(external_id="c3").email == "c3@example.com"
    assert OutboxMessage.objects.filter(topic="customer.created").count() == 50
    stamp = Customer.objects.get(external_id="c3").updated_at

    again = upsert_customers(rows=rows(50))
    assert (again.created, again.updated, again.unchanged) == (0, 0, 50)
    assert Customer.objects.get(external_id="c3").updated_at == stamp
    assert OutboxMessage.objects.count() == 50


def test_query_count_does_not_grow_with_rows(django_assert_max_num_queries):
    upsert_customers(rows=rows(10))
    with django_assert_max_num_queries(12):
        result = upsert_customers(rows=rows(2000, last_name="Changed"))
    assert (result.created, result.updated) == (1990, 10)


def test_updates_only_fields_sent_and_emits_updated():
    upsert_customers(
        rows=[{"external_id": "x", "email": "x@example.com", "first_name": "Ann", "phone": "123"}]
    )
    result = upsert_customers(rows=[{"external_id": "x", "first_name": "Anne"}])
    assert (result.created, result.updated) == (0, 1)
    customer = Customer.objects.get(external_id="x")
    assert (customer.first_name, customer.phone, customer.email) == ("Anne", "123", "x@example.com")
    message = OutboxMessage.objects.get(topic="customer.updated")
    assert message.payload == {"id": customer.pk, "external_id": "x", "fields": ["first_name"]}


def test_atomic_by_default_and_partial_on_request():
    bad = rows(3) + [{"external_id": "bad", "email": "not-an-email"}, {"external_id": "c0"}]
    result = upsert_customers(rows=bad)
    assert result.rejected and Customer.objects.count() == 0
    assert [e.as_dict() for e in result.errors] == [
        {"index": 3, "field": "email", "message": "Enter a valid email address.", "code": "invalid"},
        {
            "index": 4,
            "field": "external_id",
            "message": "Duplicate external_id in this call (first at index 0).",
            "code": "duplicate",
        },
    ]
    assert result.as_dict()["committed"] is False

    partial = upsert_customers(rows=bad, partial=True)
    assert (partial.created, partial.failed) == (3, 2)
    assert Customer.objects.count() == 3


@pytest.mark.parametrize(
    ("row", "field", "message"),
    [
        ({"external_id": "a", "colour": "red"}, "colour", "Unknown field."),
        ({"email": "a@example.com"}, "external_id", "This field is required."),
        ({"external_id": "a", "timezone": "Mars/Olympus"}, "timezone", "Unknown time zone"),
        ({"external_id": "a", "country": "Atlantis"}, "country", "Unknown country"),
        ({"external_id": "a", "first_name": 12}, "first_name", "Must be a string."),
        ({"external_id": "a/b"}, "external_id", "Must not contain '/'"),
        (
            {"external_id": "a", "attributes": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}},
            "attributes",
            "deeper",
        ),
        ({"external_id": "a", "attributes": {"k": "x" * 20000}}, "attributes", "Larger than"),
        ({"external_id": "a", "attributes": [1]}, "attributes", "JSON object"),
        ({"external_id": "a", "locale": "english please"}, "locale", "language tag"),
        (
            {"external_id": "a", "consent": [{"channel": "fax", "action": "granted"}]},
            "consent[0].channel",
            "one of",
        ),
        ("not an object", "non_field_errors", "JSON object"),
    ],
)
def test_bad_rows_are_reported_by_field(row, field, message):
    result = upsert_customers(rows=[row])
    assert result.rejected
    assert result.errors[0].field == field
    assert message in result.errors[0].message


def test_inline_consent_goes_through_the_ledger_and_is_idempotent():
    payload = [
        {
            "external_id": "k",
            "email": "k@example.com",
            "consent": [
                {
                    "channel": "email",
                    "action": "granted",
                    "source": "crm",
                    "occurred_at": "2024-05-01T10:00:00Z",
                }
            ],
        }
    ]
    upsert_customers(rows=payload)
    state = CustomerConsent.objects.get(customer__external_id="k", channel="email")
    assert (state.status, state.source, state.changed_at) == (
        "granted",
        "crm",
        datetime(2024, 5, 1, 10, tzinfo=UTC),
    )
    assert ConsentRecord.objects.count() == 1
    again = upsert_customers(rows=payload)
    assert again.unchanged == 1 and ConsentRecord.objects.count() == 1

    withdraw = [{"external_id": "k", "consent": [{"channel": "email", "action": "withdrawn"}]}]
    result = upsert_customers(rows=withdraw)
    assert result.updated == 1
    assert CustomerConsent.objects.get(customer__external_id="k").status == "withdrawn"
    assert OutboxMessage.objects.filter(topic="customer.unsubscribed").count() == 1


def test_soft_deleted_customer_sent_again_is_restored():
    upsert_customers(rows=rows(1))
    Customer.objects.filter(external_id="c0").update(deleted_at=datetime(2024, 1, 1, tzinfo=UTC))
    assert not Customer.objects.filter(external_id="c0").exists()
    result = upsert_customers(rows=rows(1))
    assert result.updated == 1 and Customer.objects.filter(external_id="c0").exists()


def test_portable_path_matches(monkeypatch):
    """The SQLite fallback (bulk_create/bulk_update) gives the same counts as the PostgreSQL path."""
    monkeypatch.setattr(connection, "vendor", "sqlite")
    first = upsert_customers(rows=rows(20))
    again = upsert_customers(rows=rows(20))
    changed = upsert_customers(rows=rows(20, last_name="X"))
    assert (first.created, again.unchanged, changed.updated) == (20, 20, 20)
    assert OutboxMessage.objects.filter(topic="customer.updated").count() == 20


@pytest.mark.django_db(transaction=True)
def test_concurrent_insert_of_the_same_id_falls_back_to_on_conflict():
    """Another transaction inserts the same new external id first: the plain INSERT waits on the
    unique index, fails when that one commits, and the ON CONFLICT statement finishes the call."""
    import threading

    from django.db import connection as main_connection
    from django.db import transaction as tx

    inserted = threading.Event()
    release = threading.Event()

    def other_writer():
        try:
            with tx.atomic():
                Customer.objects.create(external_id="race", email="first@example.com")
                inserted.set()
                release.wait(10)
        finally:
            main_connection.close()

    thread = threading.Thread(target=other_writer)
    thread.start()
    inserted.wait(10)
    timer = threading.Timer(0.5, release.set)
    timer.start()
    result = upsert_customers(
        rows=[{"external_id": "race", "email": "second@example.com"}, {"external_id": "new"}]
    )
    thread.join(10)
    assert (result.created, result.updated, result.errors) == (1, 1, [])
    assert Customer.objects.get(external_id="race").email == "second@example.com"
