"""The admin dashboard: known rows give known figures, in a bounded number of queries."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from campaigns.models import Conversion, Send, SendState, TrackingEvent
from core import charts
from core.dashboard import dashboard_numbers
from customers.models import Customer
from recommender.models import ModelVersion
from tests.factories.customers import make_order
from tests.integration.campaigns import scenario

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent_campaign(client, admin_user, settings, django_capture_on_commit_callbacks):
    settings.SITE_URL = "https://testserver"
    customers = scenario.make_customers(5)
    scenario.make_customers(2, prefix="p", channel="push")
    version = scenario.store_recommendations(customers, scenario.make_products(4))
    ModelVersion.objects.filter(pk=version.pk).update(
        metrics={"ndcg@10": 0.25, "recall@10": 0.5, "note": "x"}
    )
    campaign = scenario.make_campaign(scenario.make_segment(customers, name="Mug lovers"))
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(f"/admin/campaigns/campaign/{campaign.pk}/transition/launch/")
    assert Send.objects.filter(campaign=campaign, state=SendState.SENT).count() == 5
    return campaign


def _track(send: Send, kind: str, *, when, machine: bool = False) -> None:
    TrackingEvent.objects.create(
        send=send,
        campaign=send.campaign,
        variant=send.variant,
        customer=send.customer,
        kind=kind,
        machine=machine,
        occurred_at=when,
    )


def test_dashboard_counts_known_rows(sent_campaign, django_assert_max_num_queries):
    now = timezone.now()
    sends = list(Send.objects.filter(campaign=sent_campaign).order_by("id"))
    yesterday = now - dt.timedelta(days=1)
    for send in sends[:3]:
        _track(send, "open", when=yesterday)
    _track(sends[3], "open", when=yesterday, machine=True)  # a privacy proxy is not an open
    _track(sends[0], "click", when=now)
    _track(sends[0], "open", when=now - dt.timedelta(days=40))  # outside the window
    Conversion.objects.create(
        order=make_order(customer=sends[0].customer, placed_at=now),
        send=sends[0],
        campaign=sent_campaign,
        variant=sends[0].variant,
        customer=sends[0].customer,
        touch="click",
        touched_at=now,
        placed_at=now,
        revenue=Decimal("42.50"),
    )
    Customer.objects.filter(external_id="p1").update(deleted_at=now)  # deleted: no reach

    with django_assert_max_num_queries(12):
        data = dashboard_numbers(now=now)

    assert data["customers"] == 6
    assert data["reach"] == {"email": 5, "push": 1, "sms": 0}
    assert data["campaigns_this_week"] == 1 and data["sent_this_week"] == 5
    assert data["totals_30d"] == {
        "sent": 5,
        "opens": 3,
        "clicks": 1,
        "conversions": 1,
        "revenue": Decimal("42.50"),
    }
    assert len(data["days"]) == 30 and data["days"][-1] == now.astimezone(dt.UTC).date().isoformat()
    assert data["series"]["opens"][-2] == 3 and data["series"]["clicks"][-1] == 1
    assert data["series"]["revenue"][-1] == 42.5
    assert [s["name"] for s in data["top_segments"]] == ["Mug lovers"]
    assert data["models"][0]["algorithm"] == "item_knn"
    assert data["models"][0]["metrics"] == {"ndcg@10": 0.25, "recall@10": 0.5}


def test_dashboard_page_renders_charts(client, admin_user, sent_campaign):
    client.force_login(admin_user)
    page = client.get("/admin/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-kpi="customers">7<' in html
    assert 'data-kpi="reach-email">5<' in html
    assert html.count("<svg") >= 5 and "Mug lovers" in html
    # navigation grouped by the marketer's tasks
    for task in ("Audience", "Campaigns", "Recommendations", "Analytics", "Settings"):
        assert f'<span class="section">{task}</span>' in html
    assert "reachly/admin.css" in html


def test_charts_escape_labels():
    svg = charts.bar_chart(bars=[("<script>x</script>", 3)])
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    line = charts.line_chart(labels=["a", "b"], series=[("<b>", [1, 2])])
    assert "<b>" not in line


def test_dashboard_page_reads_the_cache(client, admin_user, django_assert_max_num_queries):
    from django.core.cache import cache

    from core.dashboard import CACHE_KEY

    client.force_login(admin_user)
    assert client.get("/admin/").status_code == 200
    assert cache.get(CACHE_KEY)["customers"] == 0
    scenario.make_customers(3)
    assert 'data-kpi="customers">0<' in client.get("/admin/").content.decode()  # cached for a minute
    cache.delete(CACHE_KEY)
    assert 'data-kpi="customers">3<' in client.get("/admin/").content.decode()


def test_csv_export_neutralises_formulas(client, admin_user):
    campaign = scenario.make_campaign(None, name="=HYPERLINK(1)")
    client.force_login(admin_user)
    export = client.post(
        "/admin/campaigns/campaign/", {"action": "export_as_csv", "_selected_action": [campaign.pk]}
    )
    assert export.status_code == 200
    assert ",'=HYPERLINK(1)," in export.content.decode()
