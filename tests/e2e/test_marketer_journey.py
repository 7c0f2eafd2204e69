"""A marketer's day in the admin, in headless Chromium, against real parts.

The admin is served by a real HTTP server (pytest-django's live server) on the test PostgreSQL
database; a real Celery worker process sends through a local aiosmtpd sink; engagement is
simulated by fetching the tracking URLs found in the delivered messages. Screenshots of each step
go to out/e2e/ (the best ones are copied by hand into docs/screenshots/).

Chromium comes from Debian (`apt-get install -y chromium`, done by .ci/run when missing) and is
driven by Playwright for Python with `executable_path`: no browser is ever downloaded. The test
installs nothing: without Chromium it is skipped with the command to run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.campaigns import scenario
from tests.integration.campaigns.conftest import worker_env
from tests.integration.campaigns.real_parts import CeleryWorker, SmtpSink

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "out" / "e2e"
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
HUMAN_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
PASSWORD = "marketer-pass-2026"
AUDIENCE = 12

# Fixed ids (reset sequences) and a fixed assignment salt make the A/B split the same every run.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, reset_sequences=True),
]

HTML = """<html><body>
<h1 style="font-family: sans-serif">Hello {{ customer.first_name or "there" }}!</h1>
<p>Picked for you this week:</p>
<ul>{% for product in recommendations %}<li><a href="{{ product.url }}">{{ product.name }}</a>
 {{ product.price }} {{ product.currency }} <small>({{ product.explanation }})</small></li>{% endfor %}</ul>
<p><a href="https://shop.example.com/sale">See the whole sale</a></p>
<p><a href="{{ links.unsubscribe_url }}">Unsubscribe</a></p>
</body></html>"""


@pytest.fixture
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="pip install -e '.[dev]' installs playwright"
    )
    if not os.path.exists(CHROMIUM):
        pytest.skip("Chromium is missing: apt-get install -y chromium (the CI script does it)")
    # Playwright's sync API keeps an event loop in this thread; the ORM calls this test makes
    # between browser steps are ordinary blocking calls, which Django allows with this flag.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_api.sync_playwright().start()
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield chromium
    finally:
        chromium.close()
        playwright.stop()
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def smtp_sink():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def worker(live_server, settings, smtp_sink):
    """A real worker (both queues) on the test database, sending to the sink, linking to the live server."""
    from config.celery_app import app

    settings.SITE_URL = live_server.url
    settings.TRACKING_REQUIRE_HTTPS = False
    settings.CAMPAIGN_MACHINE_OPEN_SECONDS = 0
    settings.CAMPAIGN_GLOBAL_HOLDOUT_PERCENT = 0
    settings.CSRF_TRUSTED_ORIGINS = [live_server.url]
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    env = worker_env(
        settings,
        email_url=smtp_sink.url,
        SITE_URL=live_server.url,
        TRACKING_REQUIRE_HTTPS="0",
        CAMPAIGN_GLOBAL_HOLDOUT_PERCENT="0",
    )
    process = CeleryWorker(env, queues="sends,default,segments", concurrency=1).start()
    yield process
    process.cleanup()
    app.conf.task_always_eager = previous


@pytest.fixture
def shop(transactional_db, django_user_model):
    """What the shop's feeds would have loaded: customers with consent, products, recommendations."""
    from django.contrib.auth.models import Group

    from access.roles import ensure_roles
    from access.scopes import ROLE_MARKETER

    customers = scenario.make_customers(AUDIENCE, prefix="shopper")
    scenario.make_customers(5, prefix="newcomer")
    scenario.store_recommendations(customers, scenario.make_products(8))
    _history(customers[0])
    ensure_roles()
    marketer = django_user_model.objects.create_user("mara", "mara@example.com", PASSWORD, is_staff=True)
    marketer.groups.add(Group.objects.get(name=ROLE_MARKETER))
    return {"customers": customers}


def _history(customer) -> None:
    """A year of one customer's history for the 360 page: orders, points, model outputs."""
    import datetime as dt
    from decimal import Decimal

    from django.utils import timezone

    from loyalty.models import Membership
    from segments.models import CustomerFeatures
    from tests.factories.customers import make_order
    from tests.factories.loyalty import LoyaltyProgramFactory, TierFactory

    now = timezone.now()
    for days in (300, 200, 90, 30, 6):
        make_order(customer=customer, placed_at=now - dt.timedelta(days=days))
    program = LoyaltyProgramFactory(name="Mug Club")
    tier = TierFactory(program=program, name="Silver", threshold=100)
    Membership.objects.create(
        customer=customer, program=program, tier=tier, balance=340, lifetime_points=610, joined_at=now
    )
    CustomerFeatures.objects.create(
        customer=customer,
        last_order_at=now - dt.timedelta(days=6),
        frequency=5,
        monetary=Decimal("214.50"),
        rfm_r=5,
        rfm_f=4,
        rfm_m=4,
        rfm_group="Loyal",
        churn_probability=0.08,
        p_alive=0.93,
        predicted_clv=Decimal("182.40"),
    )


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def _tall_shot(page, name: str) -> None:
    """The whole page in one viewport: a full-page shot would leave the sandboxed preview frame
    blank (offscreen frames are not painted) and draw the sticky menu where the page is scrolled."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": page.evaluate("document.body.scrollHeight")})
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size(size)


def _wait_for(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _tracking_urls(mail, base: str) -> tuple[list[str], list[str]]:
    html = mail.parsed().get_body(("html",)).get_content()
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    opens = [u for u in urls if u.startswith(f"{base}/t/o/")]
    clicks = [u.replace("&amp;", "&") for u in urls if u.startswith(f"{base}/t/c/")]
    return opens, clicks


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _fetch(url: str) -> int:
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers={"User-Agent": HUMAN_AGENT})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:  # the click's 302 to the shop
        return exc.code


class _ShopApi:
    """The shop's order feed: POSTs to the orders API with an API key scoped to orders."""

    def __init__(self, base: str):
        from access.services import create_api_key

        _, secret = create_api_key(name="shop feed", scopes=["orders:write"])
        self.url = f"{base}/api/v1/orders/"
        self.headers = {"Authorization": f"Api-Key {secret}", "Content-Type": "application/json"}

    def order(self, external_id: str, customer, placed_at, lines) -> None:
        body = {
            "external_id": external_id,
            "customer": customer.external_id,
            "placed_at": placed_at.isoformat(),
            "currency": "GBP",
            "lines": [{"sku": sku, "quantity": qty, "unit_price": price} for sku, qty, price in lines],
        }
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers=self.headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=20) as response:
            assert response.status == 201, response.read()


def test_marketer_journey(browser, live_server, worker, smtp_sink, shop):
    import datetime as dt

    from django.utils import timezone

    from campaigns.models import Campaign, Conversion, Send, SendState, TrackingEvent
    from customers.models import Order
    from loyalty.models import Membership
    from segments.models import Segment, SegmentMembership

    base = live_server.url
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.set_default_timeout(20_000)

    # 1. Log in as a marketer and land on the dashboard.
    page.goto(f"{base}/admin/login/")
    _shot(page, "01-login")
    page.fill("#id_username", "mara")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("[data-kpi=customers]")
    assert page.inner_text("[data-kpi=customers]") == str(AUDIENCE + 5)
    assert page.inner_text("[data-kpi=reach-email]") == str(AUDIENCE + 5)
    _shot(page, "02-dashboard")

    # 2. Build the segment with the rule builder: the live preview counts as the rule is typed;
    #    saving queues its refresh, which the worker runs on the segments queue.
    page.goto(f"{base}/admin/segments/segment/add/")
    page.fill("#id_name", "Mug fans")
    page.select_option("#id_kind", "dynamic")
    rule = {"all": [{"field": "customer.external_id", "op": "starts_with", "value": "shopper"}]}
    page.fill("#id_rules", json.dumps(rule, indent=2))
    page.wait_for_function(
        f"document.querySelector('#segment-preview-status').textContent.startsWith('{AUDIENCE} customers match')"
    )
    assert page.locator("#segment-preview-sample tbody tr").count() > 0
    _shot(page, "03-segment-builder")
    page.click("input[name=_save]")
    segment = _wait_for(
        lambda: Segment.objects.filter(name="Mug fans", member_count=AUDIENCE, refresh_state="idle").first(),
        timeout=60,
        what="the segment's refresh on the worker",
    )
    assert SegmentMembership.objects.filter(segment=segment, exited_at__isnull=True).count() == AUDIENCE

    # 3. Build an A/B email campaign with recommendations; the audience count updates live.
    page.goto(f"{base}/admin/campaigns/campaign/add/")
    page.fill("#id_name", "Mugs for autumn")
    page.select_option("#id_channel", "email")
    page.check(f"input[name=include_segments][value='{segment.pk}']")
    page.wait_for_function(
        f"document.querySelector('[data-audience-count-url]').dataset.count === '{AUDIENCE}'"
    )
    assert f"{AUDIENCE} customers" in page.inner_text("[data-audience-count-url]")
    # Advanced sections start closed; the marketer opens the two this campaign needs.
    assert page.is_hidden("#id_from_name") and page.is_hidden("#id_recommendation_count")
    page.click("summary:has-text('Advanced · Sender')")
    page.click("summary:has-text('Advanced · Recommendations')")
    page.fill("#id_from_name", "Mug Shop")
    page.fill("#id_from_email", "news@shop.example.com")
    page.fill("#id_control_percent", "0")
    page.fill("#id_recommendation_count", "3")
    page.fill("#id_variants-0-name", "A")
    page.fill("#id_variants-0-subject", "{{ customer.first_name }}, mugs picked for you")
    page.fill("#id_variants-0-html", HTML)
    page.click("#variants-group .add-row a")
    page.fill("#id_variants-1-name", "B")
    page.fill("#id_variants-1-weight", "1")
    page.fill("#id_variants-1-subject", "New mugs for {{ customer.first_name }} this week")
    page.fill("#id_variants-1-html", HTML)
    # The builder's steps: weights show their share live, the schedule shows only its kind's fields.
    assert page.inner_text("#variants-0 .variant-share") == "= 50 % of the audience"
    page.fill("#id_variants-1-weight", "3")
    page.wait_for_function(
        "document.querySelector('#variants-1 .variant-share').textContent === '= 75 % of the audience'"
    )
    page.fill("#id_variants-1-weight", "1")
    assert page.is_hidden(".form-row.field-cron") and page.is_hidden(".form-row.field-send_at")
    page.select_option("#id_schedule_kind", "recurring")
    assert page.is_visible(".form-row.field-cron") and page.is_visible(".form-row.field-schedule_timezone")
    page.select_option("#id_schedule_kind", "triggered")
    page.select_option("#id_trigger_kind", "segment_entry")
    assert page.is_visible(".form-row.field-trigger_segment") and page.is_hidden(".form-row.field-cron")
    assert page.is_hidden(".form-row.field-trigger_event_type")
    page.select_option("#id_trigger_kind", "")
    page.select_option("#id_schedule_kind", "now")
    assert page.is_hidden(".form-row.field-trigger_segment")
    assert page.is_hidden("fieldset.channel-push") and page.is_visible("fieldset.channel-email")
    _shot(page, "04-campaign-builder")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    campaign = Campaign.objects.get(name="Mugs for autumn")
    assert campaign.variants.count() == 2 and list(campaign.include_segments.all()) == [segment]
    Campaign.objects.filter(pk=campaign.pk).update(assignment_salt="marketer-journey")  # not random
    # Saved: the status card offers launch and cancel, and the content step previews each
    # variant for a customer of the audience as the marketer types.
    assert [a.inner_text() for a in page.locator("#builder-actions a.transition:visible").all()] == [
        "Launch",
        "Cancel",
    ]
    page.wait_for_function(
        "document.getElementById('builder-preview-state').textContent.includes('up to date')"
    )
    first = shop["customers"][0]
    assert page.inner_text("#builder-preview-subject") == f"{first.first_name}, mugs picked for you"
    page.select_option("#builder-preview-variant", label="B")
    page.wait_for_function(
        "document.getElementById('builder-preview-subject').textContent.startsWith('New mugs for')"
    )
    assert "Product" in page.frame_locator("#builder-preview-html").locator("body").inner_text()
    # Typing in variant A brings the preview back to A, unsaved text rendered.
    page.fill("#id_variants-0-subject", "{{ customer.first_name }}, autumn mugs for you")
    page.wait_for_function(
        "document.getElementById('builder-preview-subject').textContent"
        f" === '{first.first_name}, autumn mugs for you'"
    )
    assert page.input_value("#builder-preview-variant") == "0"
    # Offscreen sandboxed frames are not painted until they scroll into view.
    page.locator("#content-preview").scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    page.locator(".builder-content").screenshot(path=str(SHOTS / "04c-campaign-builder-content.png"))
    _tall_shot(page, "04b-campaign-builder-saved")

    # 4. Preview variant B for a customer; edits re-render live, without saving.
    customer = shop["customers"][3]
    variant_b = campaign.variants.get(name="B")
    page.goto(f"{base}/admin/campaigns/campaign/{campaign.pk}/preview/?variant={variant_b.pk}")
    page.fill("#preview-customer", customer.external_id)
    page.fill("#part-subject", "Hi {{ customer.first_name }}, new mugs this week")
    page.wait_for_function(
        "document.getElementById('preview-subject').textContent"
        f" === 'Hi {customer.first_name}, new mugs this week'"
    )
    frame = page.frame_locator("#preview-html")
    assert "Product" in frame.locator("body").inner_text()
    assert page.get_attribute("#preview-html", "sandbox") == ""
    _shot(page, "05-preview")
    page.click("#template-editor input[type=submit]")  # save the new subject
    page.wait_for_selector(".messagelist .success")

    # 5. Test send through the real worker to the sink.
    page.goto(f"{base}/admin/campaigns/campaign/{campaign.pk}/test-send/")
    page.fill("textarea[name=addresses]", "qa@example.com")
    page.select_option("select[name=variant]", str(variant_b.pk))
    page.fill("input[name=customer]", customer.external_id)
    page.click("input[type=submit]")
    _wait_for(lambda: smtp_sink.count() >= 1, timeout=60, what="the test message")
    test_mail = smtp_sink.messages[0]
    assert test_mail.rcpt_tos == ["qa@example.com"] and "new mugs this week" in test_mail.subject

    def test_send_shown_sent():
        page.reload()
        return "sent" in page.inner_text("#recent-test-sends")

    _wait_for(test_send_shown_sent, timeout=20, what="the test send's state on the page")
    _shot(page, "06-test-send")

    # 6. Launch, after the confirmation page; the progress bar fills as the worker sends.
    page.goto(f"{base}/admin/campaigns/campaign/{campaign.pk}/change/")
    page.click("a.button:text('Launch')")
    page.wait_for_selector("input[value='Yes, launch']")
    assert f"{AUDIENCE}" in page.inner_text("#content")
    _shot(page, "07-launch-confirm")
    page.click("input[value='Yes, launch']")
    page.wait_for_function(
        "(document.querySelector('.progress-text') || {}).textContent?.startsWith('100 %')",
        timeout=90_000,
    )
    _wait_for(lambda: smtp_sink.count() >= 1 + AUDIENCE, timeout=60, what="the campaign's messages")
    # The status card follows the campaign to its end: no transition is left to offer.
    page.wait_for_function(
        "document.getElementById('campaign-status').textContent === 'Sent'", timeout=60_000
    )
    assert page.locator("#builder-actions a.transition:visible").count() == 0
    _shot(page, "08-progress")
    sent = Send.objects.filter(campaign=campaign, state=SendState.SENT)
    assert sent.count() == AUDIENCE
    assert set(sent.values_list("variant__name", flat=True)) == {"A", "B"}

    # 7. Engagement through the tracking URLs of the delivered messages (real HTTP to the live
    #    server): half the recipients open; in each variant the first two recipients open and click.
    sends = {
        s.customer.email: s
        for s in Send.objects.filter(campaign=campaign, state=SendState.SENT).select_related(
            "customer", "variant"
        )
    }
    campaign_mails = sorted(smtp_sink.messages[1:], key=lambda m: m.rcpt_tos[0])
    opened = clicked = 0
    clickers: dict[str, list] = {}
    untouched = []
    for index, mail in enumerate(campaign_mails):
        send = sends[mail.rcpt_tos[0]]
        opens, clicks = _tracking_urls(mail, base)
        assert opens and clicks, "every campaign message carries an open pixel and tracked links"
        clicks_now = len(clickers.setdefault(send.variant.name, [])) < 2
        if index % 2 == 0 or clicks_now:
            assert _fetch(opens[0]) == 200
            opened += 1
        else:
            untouched.append(send.customer)
        if clicks_now:
            assert _fetch(clicks[0]) == 302
            clicked += 1
            clickers[send.variant.name].append(send.customer)
    human_opens = TrackingEvent.objects.filter(campaign=campaign, kind="open", machine=False)
    assert human_opens.count() == opened
    assert TrackingEvent.objects.filter(campaign=campaign, kind="click").count() == clicked
    assert untouched, "some recipients neither open nor click"

    # 8. Purchases arrive from the shop through the orders API: a clicker of each variant buys
    #    within the conversion window; an order placed before the click and one from a customer
    #    who never engaged are not credited to the campaign. The worker attributes on ingest.
    shop_api = _ShopApi(base)
    now = timezone.now()
    shop_api.order("feed-a-1", clickers["A"][0], now, [("SKU1", 2, "24.50")])
    shop_api.order("feed-b-1", clickers["B"][0], now, [("SKU2", 1, "18.00")])
    shop_api.order("feed-a-early", clickers["A"][1], now - dt.timedelta(days=2), [("SKU3", 1, "11.00")])
    shop_api.order("feed-none", untouched[0], now, [("SKU4", 1, "30.00")])
    _wait_for(
        lambda: (
            Order.objects.filter(external_id__startswith="feed-").count() == 4
            and Conversion.objects.filter(campaign=campaign).count() == 2
        ),
        timeout=60,
        what="the worker's attribution of the new orders",
    )
    time.sleep(1)  # nothing else is credited later (the early and the unengaged orders stay out)
    credited = {
        c.order.external_id: (c.variant.name, c.touch, str(c.revenue))
        for c in Conversion.objects.filter(campaign=campaign).select_related("order", "variant")
    }
    assert credited == {"feed-a-1": ("A", "click", "49.00"), "feed-b-1": ("B", "click", "18.00")}

    # 9. The report shows what happened, with each conversion and its revenue on its variant.
    page.goto(f"{base}/admin/campaigns/campaign/{campaign.pk}/report/")
    page.wait_for_selector("text=Per variant")
    assert page.inner_text("[data-metric=conversions]") == "2"
    assert page.inner_text("[data-metric=revenue]") == "67.00"
    assert page.inner_text("[data-metric=clicks]") == str(clicked)
    rows = {
        cells[0]: cells
        for cells in (
            [cell.strip() for cell in row.inner_text().split("\t")]
            for row in page.locator("#report-variants tbody tr").all()
        )
    }
    header = [h.strip() for h in page.locator("#report-variants thead th").all_text_contents()]
    conversions, revenue = header.index("Conversions"), header.index("Revenue")
    assert (rows["A"][conversions], rows["A"][revenue]) == ("1", "49.00")
    assert (rows["B"][conversions], rows["B"][revenue]) == ("1", "18.00")
    assert (rows["Total"][conversions], rows["Total"][revenue]) == ("2", "67.00")
    _shot(page, "09-report")

    # 10. The customer 360 shows the message and its engagement.
    regular = shop["customers"][0]
    page.goto(f"{base}/admin/customers/customer/{regular.pk}/change/")
    page.wait_for_selector("#panel-messages")
    assert "Mugs for autumn" in page.inner_text("#panel-messages")
    ordered_now = Order.objects.filter(customer=regular, external_id__startswith="feed-").count()
    assert page.inner_text("[data-panel=order-count]") == str(5 + ordered_now)
    # 340 points from the history, plus whatever the loyalty program awarded for a new order.
    balance = Membership.objects.get(customer=regular).balance
    assert balance >= 340 and (balance > 340) == (ordered_now > 0)
    assert page.inner_text("[data-panel=points]") == f"{balance} points"
    _shot(page, "10-customer-360")

    # 11. The dashboard counts the week's campaign and its engagement.
    from django.core.cache import cache

    cache.clear()
    page.goto(f"{base}/admin/")
    assert page.inner_text("[data-kpi=campaigns-week]") == "1"
    _shot(page, "11-dashboard-after")
