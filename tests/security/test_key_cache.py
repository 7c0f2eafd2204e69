"""The per-process cache of verified API keys: fast, never holding a key, and never outliving a revocation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from access import key_cache
from access.models import ApiKey
from access.services import create_api_key, revoke_api_key

pytestmark = pytest.mark.django_db


def client_for(*scopes: str) -> tuple[APIClient, str, ApiKey]:
    api_key, secret = create_api_key(name="cached", scopes=list(scopes))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    return client, secret, api_key


def test_a_verified_key_costs_no_query_on_the_next_request(django_assert_num_queries):
    client, _, _ = client_for("recommendations:read")
    assert client.get("/api/v1/recommender/models/").status_code == 200  # verified, touched, remembered
    with django_assert_num_queries(1):  # the endpoint's own query only
        assert client.get("/api/v1/recommender/models/").status_code == 200


def test_the_cache_holds_a_keyed_digest_never_the_key():
    client, secret, _ = client_for("recommendations:read")
    client.get("/api/v1/recommender/models/")
    digest = key_cache.digest(secret)
    assert digest in key_cache._entries
    for stored_digest, (_, _, api_key) in key_cache._entries.items():
        assert secret.encode() not in stored_digest
        assert secret not in repr(vars(api_key))
    assert digest != key_cache.digest(secret[:-1] + ("A" if secret[-1] != "A" else "B"))


def test_revocation_expiry_and_scope_changes_apply_to_the_next_request():
    client, _, api_key = client_for("recommendations:read")
    path = "/api/v1/recommender/models/"
    assert client.get(path).status_code == 200
    ApiKey.objects.filter(pk=api_key.pk).update(scopes=["customers:read"])
    assert client.get(path).status_code == 403
    ApiKey.objects.filter(pk=api_key.pk).update(scopes=["recommendations:read"])
    assert client.get(path).status_code == 200
    ApiKey.objects.filter(pk=api_key.pk).update(expiry_date=timezone.now() - timedelta(seconds=1))
    assert client.get(path).status_code == 401
    ApiKey.objects.filter(pk=api_key.pk).update(expiry_date=None)
    assert client.get(path).status_code == 200
    revoke_api_key(api_key=api_key)
    assert client.get(path).status_code == 401


def test_a_change_announced_by_another_process_is_honoured():
    """Another web process revoking a key changes the shared token; this process reloads."""
    client, _, api_key = client_for("recommendations:read")
    path = "/api/v1/recommender/models/"
    assert client.get(path).status_code == 200
    before = cache.get(key_cache.GENERATION_KEY)
    # What the other process did, seen from here: the row changed and the token was replaced
    # (raw SQL, so this process's own signal and queryset hooks are not involved).
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {ApiKey._meta.db_table} SET revoked = TRUE WHERE id = %s", [api_key.pk])  # noqa: S608
    assert client.get(path).status_code == 200  # the token has not moved: the cached entry is trusted
    cache.set(key_cache.GENERATION_KEY, 12345, timeout=None)  # what key_cache.keys_changed() writes there
    assert cache.get(key_cache.GENERATION_KEY) != before
    assert client.get(path).status_code == 401


def test_a_flushed_cache_means_reload_not_trust():
    client, _, api_key = client_for("recommendations:read")
    path = "/api/v1/recommender/models/"
    assert client.get(path).status_code == 200
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {ApiKey._meta.db_table} SET revoked = TRUE WHERE id = %s", [api_key.pk])  # noqa: S608
    cache.clear()  # a Redis restart: the token is gone
    assert client.get(path).status_code == 401


def test_usage_touch_does_not_flush_the_cache():
    client, _, api_key = client_for("recommendations:read")
    client.get("/api/v1/recommender/models/")
    token = cache.get(key_cache.GENERATION_KEY)
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now() - timedelta(minutes=5))
    assert cache.get(key_cache.GENERATION_KEY) == token
