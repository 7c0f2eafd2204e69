"""Shared fixtures. Tests run on real PostgreSQL and Redis (see config/settings/test.py)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _clear_cache(request):
    """Throttle counters and caches live in Redis; database tests start from a clean slate.

    Pure-core tests (no database) skip this, so they also run with `-p no:django`.
    """
    if {"db", "transactional_db", "live_server"} & set(request.fixturenames):
        from django.core.cache import cache

        cache.clear()
    yield


@pytest.fixture
def make_api_client(db):
    """An API client authenticated by a real hashed key with the given scopes."""
    from rest_framework.test import APIClient

    from access.services import create_api_key

    def make(*scopes: str, name: str = "test-integration"):
        _, secret = create_api_key(name=name, scopes=list(scopes) or ["all"])
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
        return client

    return make


@pytest.fixture
def api(make_api_client):
    """A client holding every scope."""
    return make_api_client("all")


@pytest.fixture
def admin_user(db, django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", "admin-pass-123")
