"""Hostile input at the edges: header injection, encoded words, deep and oversized bodies, unicode
addresses and names, and a large import with bad rows. Real PostgreSQL, Redis and SMTP sink.

Already covered elsewhere (not repeated here): CR/LF in names and subjects over SMTP
(tests/integration/campaigns/test_send_pipeline.py), open redirects and tampered click and
unsubscribe tokens, forged, stale and replayed delivery webhooks (test_tracking.py), template
injection (tests/reliability/campaigns/test_template_injection.py), a body over the limit on the
customers bulk call (tests/api/test_customers_api.py).
"""

from __future__ import annotations

import base64
import io
import json
import time

import pytest
from django.db import connection

from campaigns.models import Send, SendState
from campaigns.services.launch import launch_campaign, write_run_ledger
from campaigns.services.sending import send_campaign_chunks
from customers.importers import import_file
from customers.models import Customer
from tests.integration.campaigns import scenario

pytestmark = pytest.mark.django_db


def send_to(customers, **fields):
    campaign = launch_campaign(campaign=scenario.make_campaign(scenario.make_segment(customers), **fields))
    write_run_ledger(run_id=campaign.runs.get().pk)
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    return campaign


# ---------------------------------------------------------------------------------------------
# Header injection through encoded words and unicode line breaks

INJECTED_NAMES = [
    "=?utf-8?q?Eve=0D=0ABcc:_victim@evil.example?=",
    "=?utf-8?b?RXZlDQpCY2M6IHZpY3RpbUBldmlsLmV4YW1wbGU=?=",
    "Eve\u2028Bcc: victim@evil.example",
    "Eve\u0085Bcc: victim@evil.example",
    'Eve" <victim@evil.example>, "x',
    "Eve\tBcc: victim@evil.example",
]


def test_encoded_words_and_unicode_breaks_in_names_and_subjects_stay_text(send_settings, smtp_sink):
    customers = scenario.make_customers(len(INJECTED_NAMES), prefix="inj")
    for customer, name in zip(customers, INJECTED_NAMES, strict=True):
        Customer.objects.filter(pk=customer.pk).update(first_name=name)
    campaign = send_to(
        customers,
        subject="=?utf-8?q?X-Injected:_yes?= {{ customer.first_name }}\u2028X-Also: yes",
        from_name="Shop =?utf-8?q?=0D=0ABcc:_a@evil.example?=",
    )
    assert Send.objects.filter(campaign=campaign, state=SendState.SENT).count() == len(customers)
    by_address = {m.rcpt_tos[0]: m for m in smtp_sink.messages}
    assert len(smtp_sink.messages) == len(customers)
    for customer, name in zip(customers, INJECTED_NAMES, strict=True):
        message = by_address[customer.email]
        assert message.rcpt_tos == [customer.email]  # one envelope recipient, never the injected one
        head = message.raw.split(b"\r\n\r\n", 1)[0]
        for header in (b"Bcc:", b"X-Injected:", b"X-Also:"):
            assert b"\r\n" + header not in head and not head.startswith(header)
        parsed = message.parsed()
        assert parsed["Bcc"] is None and parsed["X-Injected"] is None and parsed["X-Also"] is None
        assert [a.addr_spec for a in parsed["To"].addresses] == [customer.email]
        # An encoded word written by the customer decodes back to the same literal text, not to
        # what it spells: the literal "=?" was encoded, never passed through as an encoded word.
        subject = str(parsed["Subject"])
        assert "\n" not in subject and "\r" not in subject
        assert "=?utf-8?q?X-Injected:_yes?=" in subject
        display = parsed["To"].addresses[0].display_name
        assert "\r" not in display and "\n" not in display
        # The same characters come back (line breaks folded to spaces), not what they would spell.
        assert "".join(display.split()) == "".join(name.split()), (name, display)
        expected_subject = f"=?utf-8?q?X-Injected:_yes?= {name}\u2028X-Also: yes"
        assert "".join(subject.split()) == "".join(expected_subject.split()), (expected_subject, subject)
        assert [a.addr_spec for a in parsed["From"].addresses] == ["news@shop.example.com"]


# ---------------------------------------------------------------------------------------------
# Deep and oversized bodies: 4xx with a message, never 500

DEPTHS = [200, 900, 100_000]
ESP_AUTH = "Basic " + base64.b64encode(b"esp-user:esp-pass").decode()


def deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def deep_attributes(depth: int) -> bytes:
    return b'{"rows":[{"external_id":"deep","attributes":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}]}"


@pytest.mark.parametrize("depth", DEPTHS)
def test_deeply_nested_json_is_refused_everywhere(api, client, settings, depth):
    settings.DELIVERY_WEBHOOK_SECRET = "hook-secret"
    settings.ANYMAIL = {"WEBHOOK_SECRET": "esp-user:esp-pass"}
    from campaigns.delivery.push import signature_header

    targets = [
        (api, "/api/v1/customers/bulk/", deep(depth), {}),
        (api, "/api/v1/customers/bulk/", deep_attributes(depth), {}),
        (api, "/api/v1/events/batch/", b'{"rows":' + deep(depth) + b"}", {}),
        (api, "/api/v1/templates/preview/", deep(depth), {}),
        (client, "/t/webhooks/delivery/", deep(depth), {}),
        (
            client,
            "/t/webhooks/delivery/",
            deep(depth),
            {"HTTP_X_REACHLY_SIGNATURE": signature_header("hook-secret", int(time.time()), deep(depth))},
        ),
        (client, "/t/esp/postmark/tracking/", deep(depth), {}),
        (client, "/t/esp/postmark/tracking/", deep(depth), {"HTTP_AUTHORIZATION": ESP_AUTH}),
        (client, "/t/esp/sendgrid/tracking/", deep(depth), {"HTTP_AUTHORIZATION": ESP_AUTH}),
        (client, "/t/esp/postmark/tracking/", b"[1, 2]", {"HTTP_AUTHORIZATION": ESP_AUTH}),
    ]
    for http, path, body, headers in targets:
        response = http.generic("POST", path, body, content_type="application/json", **headers)
        assert 400 <= response.status_code < 500, (path, depth, response.status_code, response.content[:300])
        assert response.content  # a message, not an empty page
    assert not Customer.objects.filter(external_id="deep").exists() or depth < 900


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/events/batch/",
        "/api/v1/templates/preview/",
        "/t/webhooks/delivery/",
        "/t/esp/postmark/tracking/",
    ],
)
def test_oversized_bodies_are_413_before_anything_reads_them(api, settings, path):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    settings.ANYMAIL = {"WEBHOOK_SECRET": "esp-user:esp-pass"}
    response = api.generic("POST", path, b"[" + b'"x",' * 40_000 + b'"x"]', content_type="application/json")
    assert response.status_code == 413, (path, response.status_code, response.content[:200])
    assert json.loads(response.content)["code"] == "request_too_large"


# ---------------------------------------------------------------------------------------------
# Forged provider (ESP) webhooks


def postmark_bounce(send) -> bytes:
    return json.dumps(
        {
            "RecordType": "Bounce",
            "ID": 4711,
            "Type": "HardBounce",
            "TypeCode": 1,
            "MessageID": "00000000-0000-0000-0000-000000000000",
            "Email": send.customer.email,
            "Metadata": {"send_id": str(send.pk)},
            "BouncedAt": "2026-01-01T10:00:00Z",
            "Description": "forged",
        }
    ).encode()


def test_forged_esp_webhooks_are_refused(client, settings, send_settings, smtp_sink):
    """Send ids are sequential: an unauthenticated bounce naming one must not suppress anybody."""
    from customers.selectors import is_suppressed

    customers = scenario.make_customers(2, prefix="esp")
    campaign = send_to(customers)
    send = Send.objects.filter(campaign=campaign).select_related("customer").first()
    body = postmark_bounce(send)
    url = "/t/esp/postmark/tracking/"

    settings.ANYMAIL = {}  # no secret configured: the door is shut, not open to anyone
    assert client.post(url, body, content_type="application/json").status_code == 503
    settings.ANYMAIL = {"WEBHOOK_SECRET": "esp-user:esp-pass"}
    assert client.post(url, body, content_type="application/json").status_code in (400, 401, 403)
    wrong = "Basic " + base64.b64encode(b"esp-user:guess").decode()
    assert client.post(url, body, content_type="application/json", HTTP_AUTHORIZATION=wrong).status_code in (
        400,
        401,
        403,
    )
    assert not is_suppressed(address=send.customer.email)

    genuine = client.post(url, body, content_type="application/json", HTTP_AUTHORIZATION=ESP_AUTH)
    assert genuine.status_code == 200, genuine.content
    assert is_suppressed(address=send.customer.email)  # the same event, authenticated, is honoured


# ---------------------------------------------------------------------------------------------
# Unicode: IDN addresses, right-to-left and bidi-control names


def test_idn_addresses_and_rtl_names_go_through_api_send_and_export(api, send_settings, smtp_sink):
    rows = [
        {"external_id": "u-idn", "email": "anna@bücher.example", "first_name": "Anna"},
        {"external_id": "u-puny", "email": "bert@xn--bcher-kva.example", "first_name": "Bert"},
        {"external_id": "u-rtl", "email": "dana@example.org", "first_name": "דנה", "last_name": "כהן"},
        {
            "external_id": "u-bidi",
            "email": "eve@example.org",
            "first_name": "\u202eevE\u202c",
            "last_name": "ﷺ𝔘",
        },
    ]
    response = api.post("/api/v1/customers/bulk/", {"rows": rows}, format="json")
    assert response.status_code in (200, 201), response.content
    # A local part outside ASCII needs SMTPUTF8, which most providers refuse: a field error, 400.
    refused = api.post(
        "/api/v1/customers/bulk/",
        {"rows": [{"external_id": "u-utf8", "email": "דנה@example.org"}]},
        format="json",
    )
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "email"

    customers = list(Customer.objects.filter(external_id__startswith="u-"))
    scenario.grant(customers)
    campaign = send_to(customers, subject="שלום {{ customer.first_name }}")
    outcome = list(
        Send.objects.filter(campaign=campaign).values_list("customer__external_id", "state", "reason")
    )
    assert Send.objects.filter(campaign=campaign, state=SendState.SENT).count() == 4, outcome
    recipients = {address for m in smtp_sink.messages for address in m.rcpt_tos}
    assert all(address.isascii() for address in recipients), recipients  # IDN domains as punycode
    assert "anna@xn--bcher-kva.example" in {a.lower() for a in recipients}
    texts = {m.rcpt_tos[0]: m.parsed() for m in smtp_sink.messages}
    rtl = texts["dana@example.org"]
    assert str(rtl["Subject"]) == "שלום דנה"
    assert "דנה" in rtl.get_body(("html",)).get_content()

    exported = api.get("/api/v1/customers/u-bidi/export/").json()
    assert exported["profile"]["first_name"] == "\u202eevE\u202c" and exported["profile"]["last_name"] == "ﷺ𝔘"


# ---------------------------------------------------------------------------------------------
# A 10,000-row import with 5 % bad rows


def ten_thousand_rows() -> tuple[bytes, list[int]]:
    lines = ["external_id,email,first_name,country,consent_email"]
    bad_lines = []
    for i in range(10_000):
        line_number = i + 2
        if i % 20 == 7:  # 5 %: a rotating set of mistakes
            mistake = i // 20 % 4
            row = [
                f"big{i},not-an-address,Name{i},GB,granted",
                f"big{i},big{i}@example.com,Name{i},Atlantis,granted",
                f"big{i},big{i}@example.com,Name{i},GB,perhaps",
                f",big{i}@example.com,Name{i},GB,granted",
            ][mistake]
            bad_lines.append(line_number)
        else:
            row = f"big{i},big{i}@example.com,Náme{i},GB,granted"
        lines.append(row)
    return ("\n".join(lines) + "\n").encode(), bad_lines


def count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{table}"')  # noqa: S608
        return cursor.fetchone()[0]


def test_ten_thousand_rows_with_five_percent_bad_all_or_nothing_then_partial():
    data, bad_lines = ten_thousand_rows()
    assert len(bad_lines) == 500
    tables = [
        "customers_customer",
        "customers_consentrecord",
        "customers_customerconsent",
        "webhooks_outboxmessage",
    ]
    before = {t: count(t) for t in tables}

    report = import_file(io.BytesIO(data), kind="customers")
    body = report.as_dict()
    assert not body["committed"] and body["rows_read"] == 10_000
    assert sorted({e["line"] for e in body["errors"]}) == bad_lines  # every bad row reported by line
    assert all(e["field"] and e["message"] for e in body["errors"])
    assert {t: count(t) for t in tables} == before  # nothing half-written

    partial = import_file(io.BytesIO(data), kind="customers", partial=True)
    body = partial.as_dict()
    assert body["committed"] and body["customers"]["created"] == 9_500
    assert sorted({e["line"] for e in body["errors"]}) == bad_lines
    assert Customer.objects.filter(external_id__startswith="big").count() == 9_500
    bad_ids = {f"big{line - 2}" for line in bad_lines}
    assert not Customer.objects.filter(external_id__in=bad_ids).exists()


def test_an_address_smtp_cannot_carry_fails_alone_and_does_not_poison_the_connection(
    send_settings, smtp_sink
):
    """A non-ASCII local part (written before validation existed, or by hand) cannot go over plain
    SMTP: that row fails with the reason; the next message on the same connection still goes out."""
    customers = scenario.make_customers(4, prefix="poison")
    Customer.objects.filter(pk=customers[1].pk).update(email="dänа@example.org")
    campaign = send_to(customers)
    outcome = {s.customer_id: (s.state, s.reason) for s in Send.objects.filter(campaign=campaign)}
    assert outcome[customers[1].pk][0] == SendState.FAILED
    assert all(outcome[c.pk] == (SendState.SENT, "") for c in customers if c.pk != customers[1].pk), outcome
    assert smtp_sink.count() == 3
