"""The recommender admin: pages render with metrics and the chart, actions confirm first, roles."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from access.models import AuditEntry
from access.scopes import ROLE_ANALYST, ROLE_MARKETER
from recommender.models import ModelVersion, RecommenderConfig
from recommender.services import registry, scoring

pytestmark = pytest.mark.django_db


@pytest.fixture
def versions(shop, config):
    first = registry.train(config_id=config.pk)
    scoring.score_all(version_id=first.pk, promote_when_done=True)
    RecommenderConfig.objects.filter(pk=config.pk).update(algorithm="popularity", params={})
    second = registry.train(config_id=config.pk)
    return first, second


def _user(django_user_model, client, role: str):
    user = django_user_model.objects.create_user(
        role.lower(), f"{role.lower()}@example.com", "pw-123456", is_staff=True
    )
    user.groups.add(Group.objects.get_or_create(name=role)[0])
    client.force_login(user)
    return client


def test_pages_render_with_metrics_chart_and_test_panel(client, admin_user, versions, config, shop):
    client.force_login(admin_user)
    first, second = versions
    listing = client.get("/admin/recommender/modelversion/")
    assert listing.status_code == 200 and b"DCG@10" in listing.content and b"0." in listing.content
    page = client.get(f"/admin/recommender/recommenderconfig/{config.pk}/change/")
    assert page.status_code == 200
    assert b"<svg" in page.content and b"<rect" in page.content and b"Train now" in page.content
    assert b'<script src="http' not in page.content
    customer = shop["customers"][0]
    page = client.get(
        f"/admin/recommender/modelversion/{first.pk}/change/", {"customer": customer.external_id}
    )
    assert page.status_code == 200 and b"Because you bought" in page.content and b"stored" in page.content
    page = client.get(f"/admin/recommender/modelversion/{second.pk}/change/", {"customer": "who-is-this"})
    assert page.status_code == 200 and b"cold_start" in page.content and b"Promote" in page.content
    product = shop["by_category"][0][0]
    page = client.get(f"/admin/catalog/product/{product.pk}/change/")
    assert page.status_code == 200 and b"Similar products" in page.content and b"SKU-0-" in page.content


def test_promote_and_rollback_confirm_first_and_are_audited(client, django_user_model, versions, config):
    first, second = versions
    client = _user(django_user_model, client, ROLE_MARKETER)
    url = f"/admin/recommender/modelversion/{second.pk}/promote/"
    confirm = client.get(url)
    assert confirm.status_code == 200 and b"Yes, go ahead" in confirm.content
    assert RecommenderConfig.objects.get(pk=config.pk).active_version_id == first.pk  # a GET changes nothing
    assert client.post(url).status_code == 302
    assert RecommenderConfig.objects.get(pk=config.pk).active_version_id == second.pk
    rollback = f"/admin/recommender/recommenderconfig/{config.pk}/rollback/"
    assert client.get(rollback).status_code == 200
    assert client.post(rollback).status_code == 302
    assert RecommenderConfig.objects.get(pk=config.pk).active_version_id == first.pk
    actors = set(
        AuditEntry.objects.filter(
            action__in=["recommender.promoted", "recommender.rolled_back"], actor__isnull=False
        ).values_list("actor__username", flat=True)
    )
    assert actors == {"marketer"}


def test_train_action_queues_a_run(client, admin_user, shop, config, django_capture_on_commit_callbacks):
    client.force_login(admin_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/admin/recommender/recommenderconfig/{config.pk}/train/")
    assert response.status_code == 302
    version = ModelVersion.objects.get(config=config)
    assert version.status == ModelVersion.Status.READY  # eager in tests


def test_analysts_read_but_cannot_act(client, django_user_model, versions, config):
    first, second = versions
    client = _user(django_user_model, client, ROLE_ANALYST)
    page = client.get(f"/admin/recommender/recommenderconfig/{config.pk}/change/")
    assert page.status_code == 200 and b"Train now" not in page.content
    assert client.get(f"/admin/recommender/modelversion/{second.pk}/change/").status_code == 200
    assert client.post(f"/admin/recommender/modelversion/{second.pk}/promote/").status_code == 403
    assert client.post(f"/admin/recommender/recommenderconfig/{config.pk}/rollback/").status_code == 403
    assert RecommenderConfig.objects.get(pk=config.pk).active_version_id == first.pk
