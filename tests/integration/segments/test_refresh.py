"""Materialised membership on PostgreSQL: set-wise diffs, re-entry rows, incremental == full,
failures leave the previous membership, dependency order, advisory locks, static uploads."""

from __future__ import annotations

import random
import threading
import time
from datetime import timedelta

import psycopg2
import pytest
from django.db import connection
from django.utils import timezone

from customers.models import Customer
from customers.services import ingest_events
from segments import drain, services, static_upload
from segments.models import Segment, SegmentMembership, TouchedCustomer
from segments.rules import RuleValidationError
from tests.factories.catalog import ProductFactory
from tests.factories.customers import CustomerFactory, EventFactory

NOW = timezone.now()


def current(segment) -> set[str]:
    return set(
        SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True).values_list(
            "customer__external_id", flat=True
        )
    )


def dynamic(name: str, rules: dict) -> Segment:
    return Segment.objects.create(name=name, kind=Segment.Kind.DYNAMIC, rules=rules)


GB = {"field": "customer.country", "op": "eq", "value": "GB"}


def another_session(settings):
    """A second connection to the test database (autocommit), to hold locks the code under test meets."""
    db = settings.DATABASES["default"]
    other = psycopg2.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432
    )
    other.autocommit = True
    return other


@pytest.mark.django_db
def test_enter_exit_and_reenter_make_new_rows(django_assert_max_num_queries):
    ann, bob = (
        CustomerFactory(external_id="ann", country="GB"),
        CustomerFactory(external_id="bob", country="FR"),
    )
    segment = dynamic("UK", GB)
    with django_assert_max_num_queries(20):  # set-wise: a fixed number of statements, whatever the size
        result = services.refresh_segment(segment_id=segment.pk)
    assert (result.entered, result.exited, result.member_count) == (1, 0, 1)
    assert current(segment) == {"ann"}
    Customer.objects.filter(pk=ann.pk).update(country="FR")
    Customer.objects.filter(pk=bob.pk).update(country="GB")
    result = services.refresh_segment(segment_id=segment.pk)
    assert (result.entered, result.exited) == (1, 1)
    assert current(segment) == {"bob"}
    again = services.refresh_segment(segment_id=segment.pk)
    assert (again.entered, again.exited) == (0, 0)  # idempotent
    Customer.objects.filter(pk=ann.pk).update(country="GB")
    services.refresh_segment(segment_id=segment.pk)
    stays = list(SegmentMembership.objects.filter(segment=segment, customer=ann).order_by("id"))
    assert len(stays) == 2
    assert stays[0].exited_at is not None and stays[1].exited_at is None
    segment.refresh_from_db()
    assert segment.member_count == 2 and segment.refresh_state == "idle" and segment.refreshed_at


@pytest.mark.django_db
def test_deleted_customers_leave():
    ann = CustomerFactory(external_id="ann", country="GB")
    segment = dynamic("UK", GB)
    services.refresh_segment(segment_id=segment.pk)
    Customer.all_objects.filter(pk=ann.pk).update(deleted_at=NOW)
    assert services.refresh_segment(segment_id=segment.pk).exited == 1


@pytest.mark.django_db
def test_incremental_refresh_equals_full_refresh(django_capture_on_commit_callbacks):
    rng = random.Random(5)
    people = [CustomerFactory(country=rng.choice(["GB", "FR"])) for _ in range(60)]
    product = ProductFactory(sku="MUG", category_path="Home > Mugs")
    for person in people[:30]:
        for _ in range(rng.randint(0, 4)):
            EventFactory(
                customer=person,
                type="view",
                product=product,
                occurred_at=NOW - timedelta(days=rng.randint(0, 60)),
            )
    rules = {
        "all": [
            {"field": "event.count", "where": {"type": "view", "within_days": 30}, "op": "gte", "value": 2},
            {"any": [GB, {"field": "event.last_at", "op": "within_last_days", "value": 1}]},
        ]
    }
    incremental = dynamic("Incremental", rules)
    services.refresh_segment(segment_id=incremental.pk)
    # New events through the real ingest path: its signal notes the touched customers and the
    # (eager, in tests) drain refreshes the segment for them only.
    rows = [
        {
            "idempotency_key": f"new-{i}",
            "customer": people[rng.randrange(60)].external_id,
            "type": "view",
            "product": "MUG",
            "occurred_at": (NOW - timedelta(hours=rng.randint(0, 100))).isoformat(),
        }
        for i in range(80)
    ]
    with django_capture_on_commit_callbacks(execute=True):
        result = ingest_events(rows=rows)
    assert result.created == 80
    assert not TouchedCustomer.objects.exists()  # drained
    full = dynamic("Full", rules)
    services.refresh_segment(segment_id=full.pk)
    assert current(incremental) == current(full)
    assert current(full)  # the comparison is not vacuous
    incremental.refresh_from_db()
    assert incremental.member_count == len(current(full))


@pytest.mark.django_db
def test_refresh_touched_only_reads_touched_customers():
    ann, _bob = (
        CustomerFactory(external_id="ann", country="GB"),
        CustomerFactory(external_id="bob", country="GB"),
    )
    segment = dynamic("UK", GB)
    drain.touch_customers(customer_ids=[ann.pk])
    totals = drain.refresh_touched()
    assert totals["customers"] == 1 and totals["entered"] == 1
    assert current(segment) == {"ann"}  # bob was not touched, so not looked at
    services.refresh_segment(segment_id=segment.pk)
    assert current(segment) == {"ann", "bob"}


@pytest.mark.django_db
def test_invalid_rule_fails_visibly_and_keeps_members():
    CustomerFactory(external_id="ann", country="GB")
    segment = dynamic("UK", GB)
    services.refresh_segment(segment_id=segment.pk)
    Segment.objects.filter(pk=segment.pk).update(rules={"field": "customer.country", "op": "gt", "value": 3})
    with pytest.raises(RuleValidationError):
        services.refresh_segment(segment_id=segment.pk)
    segment.refresh_from_db()
    assert segment.refresh_state == "failed" and "$.op" in segment.refresh_error
    assert current(segment) == {"ann"}


@pytest.mark.django_db
def test_a_failure_midway_rolls_back_the_whole_diff():
    """The leavers' UPDATE has run when the INSERT of entries fails: nothing of it may stay."""
    ann, bob = (
        CustomerFactory(external_id="ann", country="GB"),
        CustomerFactory(external_id="bob", country="FR"),
    )
    segment = dynamic("UK", GB)
    services.refresh_segment(segment_id=segment.pk)
    with connection.cursor() as cursor:
        cursor.execute(
            """CREATE FUNCTION refuse_bob() RETURNS trigger AS $$
               BEGIN IF NEW.customer_id = %s THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END
               $$ LANGUAGE plpgsql""",
            [bob.pk],
        )
        cursor.execute(
            "CREATE TRIGGER refuse_bob BEFORE INSERT ON segments_segmentmembership "
            "FOR EACH ROW EXECUTE FUNCTION refuse_bob()"
        )
    Customer.objects.filter(pk=ann.pk).update(country="FR")
    Customer.objects.filter(pk=bob.pk).update(country="GB")
    with pytest.raises(Exception, match="refused"):
        services.refresh_segment(segment_id=segment.pk)
    assert current(segment) == {"ann"}  # ann's exit was rolled back with bob's failed entry
    segment.refresh_from_db()
    assert segment.refresh_state == "failed" and "refused" in segment.refresh_error


@pytest.mark.django_db
def test_references_refresh_in_dependency_order():
    CustomerFactory(external_id="ann", country="GB")
    CustomerFactory(external_id="bob", country="FR")
    # Created in reverse so id order alone would be wrong.
    later = dynamic("Not UK", {"all": []})
    uk = dynamic("UK", GB)
    Segment.objects.filter(pk=later.pk).update(rules={"field": "segment", "op": "not_in", "value": [uk.pk]})
    results = services.refresh_all_segments()
    assert [r.segment_id for r in results] == [uk.pk, later.pk]
    assert current(uk) == {"ann"} and current(later) == {"bob"}


@pytest.mark.django_db(transaction=True)
def test_two_refreshes_of_one_segment_do_not_interleave(settings):
    CustomerFactory(external_id="ann", country="GB")
    segment = dynamic("UK", GB)
    other = another_session(settings)
    with other.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [services.LOCK_NAMESPACE, segment.pk])
    finished = threading.Event()

    def run():
        from django.db import connection as thread_connection

        services.refresh_segment(segment_id=segment.pk)
        thread_connection.close()
        finished.set()

    worker = threading.Thread(target=run)
    worker.start()
    time.sleep(1.0)
    assert not finished.is_set(), "the refresh must wait for the lock holder"
    assert current(segment) == set()
    with other.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [services.LOCK_NAMESPACE, segment.pk])
    worker.join(timeout=30)
    other.close()
    assert finished.is_set() and current(segment) == {"ann"}


@pytest.mark.django_db(transaction=True)
def test_a_full_refresh_waits_a_while_for_the_previous_one_then_gives_up(settings):
    """A full refresh redelivered while a dead run's session still holds the lock waits for it;
    one still held after the wait is a live run, and this one is skipped."""
    CustomerFactory(external_id="ann", country="GB")
    segment = dynamic("UK", GB)
    other = another_session(settings)
    with other.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", list(services.REFRESH_ALL_LOCK))
    try:
        started = time.monotonic()
        assert services.refresh_all_segments(wait=timedelta(seconds=0.5)) is None
        assert 0.4 < time.monotonic() - started < 5
        assert services.refresh_all_segments(wait=timedelta(0)) is None  # no wait: a try
        with connection.cursor() as cursor:
            cursor.execute("SHOW lock_timeout")
            assert cursor.fetchone()[0] == "0"  # the wait's timeout is not left on the session
        assert current(segment) == set()

        threading.Timer(1.0, other.close).start()  # the holder's session ends, as a dead one's does
        results = services.refresh_all_segments(wait=timedelta(seconds=30))
    finally:
        other.close()
    assert [r.segment_id for r in results] == [segment.pk]
    assert current(segment) == {"ann"}
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "0"
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", list(services.REFRESH_ALL_LOCK))
        assert cursor.fetchone()[0] is False  # refresh_all_segments let go of it


@pytest.mark.django_db
def test_static_upload_reports_unmatched_and_supports_modes():
    CustomerFactory(external_id="ann", email="Ann@Example.com")
    CustomerFactory(external_id="bob", email="bob@example.com")
    CustomerFactory(external_id="cat", email="cat@example.com")
    static = Segment.objects.create(name="List", kind=Segment.Kind.STATIC)
    report = static_upload.upload_static_members(
        segment=static, identifiers=["ann", "bob", "zed", " ", "ann"]
    )
    assert (report.received, report.matched, report.unmatched, report.entered) == (3, 2, ["zed"], 2)
    report = static_upload.upload_static_members(
        segment=static, identifiers=["ANN@example.com", "nobody@example.com"], match_on="email"
    )
    assert (report.matched, report.unmatched, report.exited, report.member_count) == (
        1,
        ["nobody@example.com"],
        1,
        1,
    )
    assert current(static) == {"ann"}
    report = static_upload.upload_static_members(segment=static, identifiers=["cat"], mode="add")
    assert current(static) == {"ann", "cat"} and report.member_count == 2
    static_upload.upload_static_members(segment=static, identifiers=["ann"], mode="remove")
    assert current(static) == {"cat"}
    dynamic_segment = dynamic("UK", GB)
    with pytest.raises(Exception, match="static"):
        static_upload.upload_static_members(segment=dynamic_segment, identifiers=["ann"])
    assert services.refresh_segment(segment_id=static.pk).skipped == "static"


@pytest.mark.django_db
def test_refreshing_a_segment_cascades_to_the_segments_built_on_it():
    from segments.tasks import refresh

    CustomerFactory(external_id="ann", country="GB")
    uk = dynamic("UK", GB)
    built_on = dynamic("In UK", {"field": "segment", "op": "in", "value": [uk.pk]})
    refresh.delay(uk.pk)  # eager in tests: the dependent's refresh runs too
    assert current(uk) == {"ann"} and current(built_on) == {"ann"}
