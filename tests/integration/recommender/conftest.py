"""Fixtures of the recommender integration tests (the shop itself is in shop.py)."""

from __future__ import annotations

import pytest

from recommender.models import RecommenderConfig
from tests.integration.recommender.shop import build_shop


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def shop(db, media):
    return build_shop()


@pytest.fixture
def config(db):
    return RecommenderConfig.objects.create(
        name="default", algorithm="item_knn", params={"neighbours": 20}, is_default=True, items_per_customer=5
    )
