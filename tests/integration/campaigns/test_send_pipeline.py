"""Launch and send in-process over real SMTP (aiosmtpd): the ledger, the messages, the send-time checks."""

from __future__ import annotations

from collections import Counter
from datetime import time, timedelta

import pytest
from django.utils import timezone

from campaigns.models import Arm, Campaign, CampaignStatus, CapOverflow, Send, SendState, TrackedLink
from campaigns.services import lifecycle
from campaigns.services.launch import launch_campaign, write_run_ledger
from campaigns.services.sending import send_campaign_chunks
from customers.models import ConsentAction, Customer, SuppressionReason
from customers.services import record_consent, suppress_address
from tests.integration.campaigns import scenario

pytestmark = pytest.mark.django_db


def launch_and_write(campaign):
    campaign = launch_campaign(campaign=campaign)
    write_run_ledger(run_id=campaign.runs.get().pk)
    return campaign


def states(campaign) -> Counter:
    return Counter(Send.objects.filter(campaign=campaign).values_list("state", flat=True))


def test_every_consenting_customer_gets_one_message(send_settings, smtp_sink):
    customers = scenario.make_customers(120)
    refused = scenario.make_customers(5, prefix="nope", consent=False)
    segment = scenario.make_segment(customers + refused)
    products = scenario.make_products()
    scenario.store_recommendations(customers, products)
    campaign = launch_and_write(scenario.make_campaign(segment))

    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=60)

    assert states(campaign) == {SendState.SENT: 120, SendState.SUPPRESSED: 5}
    assert set(Send.objects.filter(state=SendState.SUPPRESSED).values_list("reason", flat=True)) == {
        "no email consent on record"
    }
    assert smtp_sink.count() == 120
    assert len(set(smtp_sink.message_ids())) == 120
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENT
    mail = smtp_sink.messages[0].parsed()
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "/t/u/" in mail["List-Unsubscribe"]
    assert mail["From"] == "Example Shop <news@shop.example.com>"
    html = mail.get_body(("html",)).get_content()
    assert "/t/c/" in html and "/t/o/" in html
    assert "https://shop.example.com/p/" not in html  # product links go through click tracking
    # Each product and the sale link are stored server-side once per variant, UTM parameters added.
    stored = list(TrackedLink.objects.values_list("url", flat=True))
    assert any(url.startswith("https://shop.example.com/p/") for url in stored)
    assert all("utm_source=reachly" in url for url in stored)
    assert len(stored) == 13  # 12 products + the sale page


def test_message_id_is_derived_from_the_ledger_row(send_settings, smtp_sink):
    customers = scenario.make_customers(3)
    campaign = launch_and_write(scenario.make_campaign(scenario.make_segment(customers)))
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    first = {m.rcpt_tos[0]: m.message_id for m in smtp_sink.messages}
    # A crash after the SMTP handover puts rows back in the queue: the resend carries the same id.
    Send.objects.filter(campaign=campaign).update(state=SendState.QUEUED, not_before=timezone.now())
    Campaign.objects.filter(pk=campaign.pk).update(status=CampaignStatus.SENDING)
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    second = {m.rcpt_tos[0]: m.message_id for m in smtp_sink.messages[3:]}
    assert first == second
    from campaigns.composition import ledger_key
    from campaigns.rendering import message_id

    for send in Send.objects.filter(campaign=campaign):
        key = ledger_key(
            run_id=send.run_id, variant_id=send.variant_id, customer_id=send.customer_id, channel="email"
        )
        assert first[send.customer.email] == message_id(key, "shop.example.com") == send.message_id


def test_unsubscribe_bounce_and_erasure_between_launch_and_send_are_honoured(send_settings, smtp_sink):
    customers = scenario.make_customers(10)
    campaign = launch_and_write(scenario.make_campaign(scenario.make_segment(customers)))
    assert states(campaign) == {SendState.QUEUED: 10}

    record_consent(
        customer=customers[0], channel="email", action=ConsentAction.WITHDRAWN, source="unsubscribe_link"
    )
    suppress_address(address=customers[1].email, reason=SuppressionReason.BOUNCED)
    Customer.all_objects.filter(pk=customers[2].pk).update(erased_at=timezone.now(), email="")
    Customer.all_objects.filter(pk=customers[3].pk).update(deleted_at=timezone.now())

    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)

    reasons = dict(Send.objects.filter(campaign=campaign).values_list("customer_id", "reason"))
    assert reasons[customers[0].pk] == "email consent withdrawn"
    assert reasons[customers[1].pk] == "address on the suppression list (bounced)"
    assert reasons[customers[2].pk] == "customer erased"
    assert reasons[customers[3].pk] == "customer deleted"
    assert states(campaign) == {SendState.SENT: 6, SendState.SUPPRESSED: 4}
    received = {m.rcpt_tos[0] for m in smtp_sink.messages}
    assert received == {c.email for c in customers[4:]}


def test_quiet_hours_defer_and_the_rows_go_out_when_they_end(send_settings, smtp_sink):
    now = timezone.now().astimezone(timezone.get_fixed_timezone(0))
    start = (now - timedelta(hours=1)).time().replace(second=0, microsecond=0)
    end = (now + timedelta(hours=2)).time().replace(second=0, microsecond=0)
    customers = scenario.make_customers(8, timezone_name="UTC")
    campaign = scenario.make_campaign(
        scenario.make_segment(customers), quiet_hours_start=start, quiet_hours_end=end
    )
    campaign = launch_and_write(campaign)

    rows = list(Send.objects.filter(campaign=campaign))
    assert {r.state for r in rows} == {SendState.DEFERRED}
    assert {r.reason for r in rows} == {"quiet hours in UTC"}
    expected_end = now.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    if expected_end <= now:
        expected_end += timedelta(days=1)
    assert {r.not_before for r in rows} == {expected_end}
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    assert smtp_sink.count() == 0  # nothing is due yet, nothing is dropped

    # The quiet hours end (the clock moves past not_before): every row is sent.
    campaign.quiet_hours_start = campaign.quiet_hours_end = None
    campaign.save()
    Send.objects.filter(campaign=campaign).update(not_before=timezone.now() - timedelta(seconds=1))
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    assert states(campaign) == {SendState.SENT: 8}
    assert smtp_sink.count() == 8


def test_quiet_hours_are_the_customers_own_local_time(send_settings):
    now = timezone.now()
    customers = scenario.make_customers(2, timezone_name="Asia/Tokyo") + scenario.make_customers(
        2, prefix="ny", timezone_name="America/New_York"
    )
    tokyo_hour = now.astimezone(timezone.get_fixed_timezone(9 * 60)).hour
    start, end = time((tokyo_hour - 1) % 24, 0), time((tokyo_hour + 1) % 24, 0)
    campaign = launch_and_write(
        scenario.make_campaign(scenario.make_segment(customers), quiet_hours_start=start, quiet_hours_end=end)
    )
    by_zone = {
        send.customer.timezone: send.state
        for send in Send.objects.filter(campaign=campaign).select_related("customer")
    }
    assert by_zone["Asia/Tokyo"] == SendState.DEFERRED
    assert by_zone["America/New_York"] == SendState.QUEUED  # 13-14 hours behind: outside its quiet hours


def test_frequency_cap_defers_by_default_and_drops_when_asked(send_settings, smtp_sink):
    customers = scenario.make_customers(6)
    segment = scenario.make_segment(customers)
    earlier = launch_and_write(scenario.make_campaign(segment, name="Earlier"))
    send_campaign_chunks(campaign_id=earlier.pk, budget_seconds=30)
    first_sent = Send.objects.filter(campaign=earlier).order_by("sent_at").first().sent_at

    deferred = launch_and_write(
        scenario.make_campaign(segment, name="Capped", cap_messages=1, cap_period_hours=24)
    )
    dropped = launch_and_write(
        scenario.make_campaign(
            segment, name="Dropped", cap_messages=1, cap_period_hours=24, cap_overflow=CapOverflow.DROP
        )
    )
    rows = list(Send.objects.filter(campaign=deferred))
    assert {r.state for r in rows} == {SendState.DEFERRED}
    assert {r.reason for r in rows} == {"frequency cap: 1 messages in 24 h"}
    assert all(r.not_before >= first_sent + timedelta(hours=24) for r in rows)
    assert states(dropped) == {SendState.CAPPED: 6}

    # When the window has passed the deferred rows are sent, not lost.
    Send.objects.filter(campaign=earlier).update(sent_at=timezone.now() - timedelta(hours=25))
    Send.objects.filter(campaign=deferred).update(not_before=timezone.now() - timedelta(seconds=1))
    send_campaign_chunks(campaign_id=deferred.pk, budget_seconds=30)
    assert states(deferred) == {SendState.SENT: 6}


def test_frequency_cap_is_checked_again_at_send_time(send_settings, smtp_sink):
    customers = scenario.make_customers(4)
    segment = scenario.make_segment(customers)
    capped = launch_and_write(
        scenario.make_campaign(segment, name="Capped", cap_messages=1, cap_period_hours=24)
    )
    assert states(capped) == {SendState.QUEUED: 4}
    other = launch_and_write(scenario.make_campaign(segment, name="Other"))
    send_campaign_chunks(campaign_id=other.pk, budget_seconds=30)  # sent in between
    send_campaign_chunks(campaign_id=capped.pk, budget_seconds=30)
    assert states(capped) == {SendState.DEFERRED: 4}


def test_a_template_error_fails_only_that_customers_row(send_settings, smtp_sink):
    customers = scenario.make_customers(30)
    Customer.objects.filter(pk__in=[customers[3].pk, customers[17].pk]).update(attributes={"divisor": 0})
    Customer.objects.exclude(pk__in=[customers[3].pk, customers[17].pk]).update(attributes={"divisor": 2})
    html = "<p>Hi</p>\n<p>{{ 10 // customer.attributes.divisor }}</p>"
    campaign = launch_and_write(scenario.make_campaign(scenario.make_segment(customers), html=html))
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    assert states(campaign) == {SendState.SENT: 28, SendState.FAILED: 2}
    failed = Send.objects.get(campaign=campaign, customer=customers[3])
    assert failed.reason.startswith("template error: html")
    assert "line 2" in failed.reason
    assert smtp_sink.count() == 28


def test_header_injection_in_subject_and_names_goes_nowhere(send_settings, smtp_sink):
    customers = scenario.make_customers(2)
    Customer.objects.filter(pk=customers[0].pk).update(first_name="Eve\r\nBcc: victim@evil.example")
    subject = "Hi {{ customer.first_name }}\r\nX-Injected: yes"
    campaign = launch_and_write(scenario.make_campaign(scenario.make_segment(customers), subject=subject))
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    assert states(campaign) == {SendState.SENT: 2}
    for message in smtp_sink.messages:
        assert message.rcpt_tos == [message.rcpt_tos[0]] and "evil" not in message.rcpt_tos[0]
        parsed = message.parsed()
        assert parsed["Bcc"] is None and parsed["X-Injected"] is None
        assert "\n" not in str(parsed["Subject"]) and "\r" not in str(parsed["Subject"])
        header_block = message.raw.split(b"\r\n\r\n", 1)[0]
        assert b"\r\nBcc:" not in header_block and b"\r\nX-Injected:" not in header_block


def test_smtp_temporary_and_permanent_refusals(send_settings, smtp_sink):
    customers = scenario.make_customers(6)
    smtp_sink.reject_containing = {"c1@": "550 5.1.1 No such user", "c2@": "451 4.2.0 Mailbox busy"}
    campaign = launch_and_write(scenario.make_campaign(scenario.make_segment(customers)))
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)

    rejected = Send.objects.get(campaign=campaign, customer=customers[1])
    busy = Send.objects.get(campaign=campaign, customer=customers[2])
    assert rejected.state == SendState.FAILED and rejected.reason.startswith("SMTP 550")
    assert busy.state == SendState.QUEUED and busy.reason.startswith("retrying: SMTP 451")
    assert busy.not_before > timezone.now() and busy.attempts == 1
    assert states(campaign)[SendState.SENT] == 4

    smtp_sink.reject_containing = {}
    Send.objects.filter(pk=busy.pk).update(not_before=timezone.now())
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    busy.refresh_from_db()
    assert busy.state == SendState.SENT and busy.attempts == 2
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENT


def test_an_unreachable_server_retries_the_chunk_later(send_settings, smtp_sink):
    customers = scenario.make_customers(10)
    campaign = launch_and_write(scenario.make_campaign(scenario.make_segment(customers)))
    send_settings.EMAIL_PORT = (
        smtp_sink.port + 1 if smtp_sink.port < 65535 else smtp_sink.port - 1
    )  # nobody there
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    rows = list(Send.objects.filter(campaign=campaign))
    assert {r.state for r in rows} == {SendState.QUEUED}
    assert all(r.reason.startswith("retrying:") and r.not_before > timezone.now() for r in rows)


def test_pause_resume_and_cancel_between_chunks(send_settings, smtp_sink):
    send_settings.CAMPAIGN_CHUNK_SIZE = 10
    customers = scenario.make_customers(40)
    campaign = launch_and_write(scenario.make_campaign(scenario.make_segment(customers)))
    lifecycle.pause_campaign(campaign=campaign)
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    assert smtp_sink.count() == 0 and states(campaign) == {SendState.QUEUED: 40}

    campaign = lifecycle.resume_campaign(campaign=campaign)
    assert campaign.status == CampaignStatus.SENDING
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=0)  # one chunk, then the budget is spent
    assert states(campaign) == {SendState.SENT: 10, SendState.QUEUED: 30}

    lifecycle.cancel_campaign(campaign=campaign, reason="wrong price")
    send_campaign_chunks(campaign_id=campaign.pk, budget_seconds=30)
    assert states(campaign) == {SendState.SENT: 10, SendState.FAILED: 30}
    assert set(Send.objects.filter(state=SendState.FAILED).values_list("reason", flat=True)) == {
        "campaign cancelled: wrong price"
    }
    with pytest.raises(lifecycle.TransitionError):
        lifecycle.resume_campaign(campaign=campaign)


def test_variants_control_and_global_holdout_are_recorded_and_stable(send_settings):
    send_settings.CAMPAIGN_GLOBAL_HOLDOUT_PERCENT = 5
    customers = scenario.make_customers(4000)
    campaign = scenario.make_campaign(scenario.make_segment(customers), variants=2, control_percent=10)
    campaign.variants.filter(name="B").update(weight=3)
    campaign = launch_and_write(campaign)
    rows = list(
        Send.objects.filter(campaign=campaign).values_list(
            "customer_id", "arm", "variant__name", "state", "reason"
        )
    )
    arms = Counter(arm for _, arm, _, _, _ in rows)
    assert 150 < arms[Arm.HOLDOUT] < 250  # 5 % of 4000
    assert 300 < arms[Arm.CONTROL] < 460  # 10 % of the rest
    variants = Counter(name for _, arm, name, _, _ in rows if arm == Arm.VARIANT)
    assert 2.6 < variants["B"] / variants["A"] < 3.4
    held = [r for r in rows if r[1] != Arm.VARIANT]
    assert {r[3] for r in held} == {SendState.HELD_OUT}
    assert {r[4] for r in held} == {"global holdout", "control group"}

    # Writing the ledger again (a crashed writer's retry) adds nothing and changes no decision.
    from campaigns.models import CampaignRun, RunState

    run = campaign.runs.get()
    CampaignRun.objects.filter(pk=run.pk).update(state=RunState.PENDING)
    write_run_ledger(run_id=run.pk)
    assert sorted(rows) == sorted(
        Send.objects.filter(campaign=campaign).values_list(
            "customer_id", "arm", "variant__name", "state", "reason"
        )
    )

    # The global holdout is global: another campaign holds out the very same customers.
    other = launch_and_write(
        scenario.make_campaign(scenario.make_segment(customers, name="Again"), name="Other")
    )
    held_here = {r[0] for r in rows if r[1] == Arm.HOLDOUT}
    held_there = set(
        Send.objects.filter(campaign=other, arm=Arm.HOLDOUT).values_list("customer_id", flat=True)
    )
    assert held_here == held_there


def test_local_time_schedule_defers_each_customer_to_their_own_clock(send_settings):
    tomorrow = (timezone.now() + timedelta(days=1)).date()
    customers = scenario.make_customers(
        1, prefix="tokyo", timezone_name="Asia/Tokyo"
    ) + scenario.make_customers(1, prefix="paris", timezone_name="Europe/Paris")
    customers += scenario.make_customers(1, prefix="nowhere", timezone_name="Not/AZone")
    from campaigns.models import ScheduleKind

    campaign = scenario.make_campaign(
        scenario.make_segment(customers),
        schedule_kind=ScheduleKind.LOCAL_TIME,
        local_send_date=tomorrow,
        local_send_time=time(9, 0),
        schedule_timezone="Europe/London",
    )
    campaign = launch_campaign(campaign=campaign)
    assert campaign.status == CampaignStatus.SCHEDULED
    run = campaign.runs.get()
    from campaigns.models import CampaignRun

    CampaignRun.objects.filter(pk=run.pk).update(
        scheduled_for=timezone.now()
    )  # the earliest zone's 09:00 came
    write_run_ledger(run_id=run.pk)
    from zoneinfo import ZoneInfo

    due = {
        s.customer.external_id: s.not_before
        for s in Send.objects.filter(campaign=campaign).select_related("customer")
    }
    assert due["tokyo0"].astimezone(ZoneInfo("Asia/Tokyo")).hour == 9
    assert due["paris0"].astimezone(ZoneInfo("Europe/Paris")).hour == 9
    assert due["nowhere0"].astimezone(ZoneInfo("Europe/London")).hour == 9  # unknown zone: the campaign's
    assert due["tokyo0"] < due["paris0"] < due["nowhere0"]
    assert set(Send.objects.filter(campaign=campaign).values_list("state", flat=True)) == {SendState.DEFERRED}
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENDING


def test_sending_a_chunk_takes_the_same_queries_for_10_or_50_rows(
    send_settings, smtp_sink, django_assert_max_num_queries
):
    customers = scenario.make_customers(60)
    products = scenario.make_products()
    scenario.store_recommendations(customers, products)
    campaign = launch_and_write(scenario.make_campaign(scenario.make_segment(customers)))
    from campaigns.services.sending import ChunkSender, claim_chunk

    campaign.refresh_from_db()
    for size in (10, 50):
        claimed = claim_chunk(campaign_id=campaign.pk, owner=f"test-{size}", size=size, lease_seconds=60)
        assert len(claimed) == size
        with django_assert_max_num_queries(16):
            ChunkSender(campaign, f"test-{size}").send(claimed)
