"""Personal data stays where it belongs: not in logs, task arguments or URLs, and gone after erasure.

Real parts: PostgreSQL, Redis, an aiosmtpd sink the campaign sends to over SMTP. The customer
carries values distinctive enough that a substring scan cannot hit anything else.
"""

from __future__ import annotations

import io
import logging
import re

import pytest
from celery.signals import task_prerun
from django.db import connection

from access.models import AuditEntry
from campaigns.models import Send, SendState
from campaigns.services.launch import launch_campaign, write_run_ledger
from campaigns.services.sending import send_campaign_chunks
from customers.importers import import_file
from customers.models import Customer, Suppression
from customers.services import erase_customer, record_consent
from tests.integration.campaigns import scenario

pytestmark = pytest.mark.django_db

EMAIL = "zorbalina.quexwood@example.org"
FIRST, LAST = "Zorbalina", "Quexwood"
PHONE = "+447700900123"
IP = "203.0.113.77"
SECRETS = [EMAIL, FIRST, LAST, PHONE, IP, "zorbalina.quexwood"]
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")


def ingest_the_customer(api) -> Customer:
    """Through the public API, as a CRM would: profile, consent with an IP, events, an order."""
    scenario.make_products(3)
    response = api.post(
        "/api/v1/customers/bulk/",
        {
            "rows": [
                {
                    "external_id": "crm-4711",
                    "email": EMAIL,
                    "first_name": FIRST,
                    "last_name": LAST,
                    "phone": PHONE,
                    "attributes": {"nickname": FIRST, "note": f"call {PHONE}"},
                }
            ]
        },
        format="json",
    )
    assert response.status_code in (200, 201), response.content
    customer = Customer.objects.get(external_id="crm-4711")
    record_consent(customer=customer, channel="email", action="granted", source="form", ip=IP)
    events = api.post(
        "/api/v1/events/batch/",
        {
            "rows": [
                {
                    "idempotency_key": "ev-1",
                    "customer": "crm-4711",
                    "type": "view",
                    "product": "SKU1",
                    "occurred_at": "2026-01-02T10:00:00Z",
                    "properties": {"search": f"{FIRST} {LAST}", "contact": EMAIL},
                }
            ]
        },
        format="json",
    )
    assert events.status_code in (200, 201), events.content
    orders = api.post(
        "/api/v1/orders/batch/",
        {
            "rows": [
                {
                    "external_id": "o-1",
                    "customer": "crm-4711",
                    "placed_at": "2026-01-03T10:00:00Z",
                    "attributes": {"ship_to": f"{FIRST} {LAST}", "phone": PHONE},
                    "lines": [{"sku": "SKU1", "quantity": 1, "unit_price": "9.99"}],
                }
            ]
        },
        format="json",
    )
    assert orders.status_code in (200, 201), orders.content
    export = api.get("/api/v1/customers/crm-4711/export/")  # leaves an audit entry about the customer
    assert export.status_code == 200 and export.json()["profile"]["email"] == EMAIL
    return customer


def send_to(customers, name="Spring sale") -> int:
    campaign = launch_campaign(campaign=scenario.make_campaign(scenario.make_segment(customers), name=name))
    write_run_ledger(run_id=campaign.runs.get().pk)
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    return campaign.pk


def text_columns() -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT table_name, column_name FROM information_schema.columns
            WHERE table_schema = 'public'
              AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'inet')
            ORDER BY table_name, column_name
            """
        )
        return cursor.fetchall()


def find_everywhere(needles: list[str]) -> dict[str, list[str]]:
    """Every (table.column) whose text holds one of the needles, case-insensitively: a database-wide scan."""
    hits: dict[str, list[str]] = {}
    with connection.cursor() as cursor:
        for table, column in text_columns():
            for needle in needles:
                cursor.execute(
                    f'SELECT count(*) FROM "{table}" WHERE "{column}"::text ILIKE %s',  # noqa: S608
                    [f"%{needle}%"],
                )
                if cursor.fetchone()[0]:
                    hits.setdefault(f"{table}.{column}", []).append(needle)
    return hits


def test_erasure_leaves_no_personal_data_anywhere_but_the_suppression_hash(
    api, admin_user, send_settings, smtp_sink
):
    customer = ingest_the_customer(api)
    # The provider refuses this address with a reply that quotes it: the ledger keeps a reason.
    smtp_sink.reject_containing["zorbalina"] = f"550 5.1.1 <{EMAIL}>: mailbox of {FIRST} {LAST} unavailable"
    send_to([customer])
    assert Send.objects.get(customer=customer).state == SendState.FAILED

    assert find_everywhere(SECRETS)  # the scan does see the data before the erasure
    erase_customer(customer=customer, actor=admin_user)

    hits = find_everywhere(SECRETS)
    assert hits == {}, f"personal data left after erasure: {hits}"
    # What stays: a keyed hash of the address, the erased shell of the row, the audit trail by id.
    suppression = Suppression.objects.get(channel="email", reason="erased")
    assert EMAIL not in suppression.address_hash and len(suppression.address_hash) >= 32
    assert AuditEntry.objects.filter(action="customer.erased", target_id=str(customer.pk)).exists()
    assert AuditEntry.objects.filter(action="customer.exported", target_id=str(customer.pk)).exists()


def test_an_erased_customer_reimported_is_never_mailed_again(api, admin_user, send_settings, smtp_sink):
    customer = ingest_the_customer(api)
    erase_customer(customer=customer, actor=admin_user)
    # The CRM still has them: a CSV import brings the address back, under the old external id and
    # a new one, with a consent column saying yes.
    report = import_file(
        io.BytesIO(
            (
                "external_id,email,first_name,consent_email\n"
                f"crm-4711,{EMAIL},{FIRST},granted\n"
                f"crm-9999,{EMAIL.upper()},{FIRST},granted\n"
                "crm-5000,someone.else@example.org,Other,granted\n"
            ).encode()
        ),
        kind="customers",
    )
    assert report.committed, report.as_dict()
    back = list(Customer.objects.filter(external_id__in=["crm-4711", "crm-9999", "crm-5000"]))
    assert {c.external_id for c in back} == {"crm-4711", "crm-9999", "crm-5000"}
    assert Customer.all_objects.get(pk=customer.pk).email == ""  # the erased row stays empty

    send_to(back, name="After the erasure")

    received = {address.lower() for m in smtp_sink.messages for address in m.rcpt_tos}
    assert received == {"someone.else@example.org"}
    reasons = dict(
        Send.objects.filter(customer__external_id__in=["crm-4711", "crm-9999"]).values_list("state", "reason")
    )
    assert reasons == {SendState.SUPPRESSED: "address on the suppression list (erased)"}


def test_no_personal_data_in_logs_task_arguments_or_links(
    api, send_settings, smtp_sink, caplog, django_capture_on_commit_callbacks
):
    """Ingest, consent, a campaign send and an unsubscribe, with every logger at DEBUG and every
    task's arguments recorded: none of it names the customer; the links they get do not either."""
    task_arguments: list[str] = []

    def record(sender=None, args=None, kwargs=None, **_):
        task_arguments.append(f"{sender.name} {args!r} {kwargs!r}")

    task_prerun.connect(record, weak=False)
    caplog.set_level(logging.DEBUG)
    try:
        # Tasks run eagerly here, on commit, as the ingest hooks and the launch enqueue them.
        with django_capture_on_commit_callbacks(execute=True):
            customer = ingest_the_customer(api)
            others = scenario.make_customers(4, prefix="pii-other")
            campaign = scenario.make_campaign(scenario.make_segment([customer, *others]))
        with django_capture_on_commit_callbacks(execute=True):
            campaign = launch_campaign(campaign=campaign)
        campaign_id = campaign.pk
    finally:
        task_prerun.disconnect(record)

    assert Send.objects.filter(campaign_id=campaign_id, state=SendState.SENT).count() == 5
    assert any(entry.startswith("campaigns.") for entry in task_arguments), task_arguments
    for entry in task_arguments:
        assert not EMAIL_RE.search(entry), entry
        assert not any(secret.lower() in entry.lower() for secret in SECRETS), entry
    # The SMTP sink (aiosmtpd, logger "mail.log") runs in this process and logs what it receives:
    # it stands for the provider, so its records are not the product's.
    ours = [r for r in caplog.records if not r.name.startswith(("mail.", "asyncio"))]
    logged = "\n".join(f"{r.name} {r.getMessage()}" for r in ours)
    assert ours, "nothing logged at all: the capture is not working"
    for secret in SECRETS:
        assert secret.lower() not in logged.lower(), f"{secret} logged:\n{logged[-2000:]}"
    assert not EMAIL_RE.search(logged.replace("@example.com", "")), logged[-2000:]

    mail = next(m for m in smtp_sink.messages if EMAIL in m.rcpt_tos)
    parsed = mail.parsed()
    html = parsed.get_body(("html",)).get_content()
    urls = re.findall(r'href="([^"]+)"', html) + re.findall(r"<([^>]+)>", parsed["List-Unsubscribe"])
    assert urls
    for url in urls:
        lowered = url.lower()
        assert "zorbalina" not in lowered and "quexwood" not in lowered and "%40" not in lowered, url
        assert "@" not in url or url.startswith("mailto:"), url
