"""The Customer analytics admin page: renders for marketers and analysts, recompute for marketers only."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group

from access.scopes import ROLE_ANALYST, ROLE_MARKETER
from segments.features import services
from segments.features.models import AnalyticsRun
from tests.integration.segments_features.conftest import CDNOW_CALIBRATION_END

pytestmark = pytest.mark.django_db

URL = "/admin/segment_features/analyticsrun/"


@pytest.fixture
def person(client, django_user_model):
    def login(role: str | None):
        user = django_user_model.objects.create_user(f"user-{role}", password="pw-123456789", is_staff=True)
        if role:
            user.groups.add(Group.objects.get_or_create(name=role)[0])
        client.force_login(user)
        return client

    return login


@pytest.fixture
def computed(cdnow_orders):
    services.run_pipeline(as_of=CDNOW_CALIBRATION_END)


@pytest.mark.parametrize("role", [ROLE_MARKETER, ROLE_ANALYST])
def test_page_renders_charts_for_marketer_and_analyst(computed, person, role):
    client = person(role)
    index = client.get("/admin/")
    assert b"Customer analytics" in index.content and URL.encode() in index.content
    page = client.get(URL)
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('<svg class="ca-chart"') == 5  # RFM grid, groups, clusters, CLV and P(alive)
    assert "<script" not in html.split('id="content-main"')[1]
    assert "Champions" in html and "Can&#x27;t lose them" in html
    assert "r = 0.24" in html and "α = 4.41" in html and re.search(r"p = 6\.2[45]", html)
    assert "What the numbers mean" in html and "P(alive) is the probability" in html
    # The heat map's 25 cells add up to the scored customers.
    counts = [int(n.replace(",", "")) for n in re.findall(r'class="ca-ink"[^>]*>([\d,]+)<', html)]
    assert len(counts) == 25 and sum(counts) == 2357
    assert ("Recompute now" in html) is (role == ROLE_MARKETER)


def test_marketer_recomputes_analyst_cannot(computed, person, django_capture_on_commit_callbacks):
    before = AnalyticsRun.objects.count()
    analyst = person(ROLE_ANALYST)
    assert analyst.post(URL).status_code == 403
    assert AnalyticsRun.objects.count() == before
    marketer = person(ROLE_MARKETER)
    with django_capture_on_commit_callbacks(execute=True):
        response = marketer.post(URL)
    assert response.status_code == 302
    assert AnalyticsRun.objects.count() == before + 3  # eager Celery in tests: the chain ran


def test_staff_without_a_role_sees_nothing(person):
    client = person(None)
    assert client.get(URL).status_code == 403
    assert URL.encode() not in client.get("/admin/").content


def test_empty_shop_page_and_failed_runs_are_shown(db, person):
    services.compute_clv()  # nothing to fit: a failed run with its reason
    page = person(ROLE_ANALYST).get(URL)
    assert page.status_code == 200
    html = page.content.decode()
    assert "No RFM scores yet" in html and "The last churn and CLV run failed" in html
    assert "no customer has a purchase" in html


def test_runs_cannot_be_edited(computed, admin_user, client):
    client.force_login(admin_user)
    run = AnalyticsRun.objects.first()
    assert client.get(f"{URL}add/").status_code == 403
    assert client.post(f"{URL}{run.pk}/delete/").status_code in (302, 403)
    assert AnalyticsRun.objects.filter(pk=run.pk).exists()
