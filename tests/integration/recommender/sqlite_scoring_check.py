"""Run by test_sqlite_path_writes_with_bulk_create in a subprocess on a fresh SQLite file:
migrate, build the small shop, train, score, print what was stored."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

call_command("migrate", verbosity=0, interactive=False)

from recommender.models import Recommendation, RecommenderConfig  # noqa: E402
from recommender.services import registry, scoring  # noqa: E402
from tests.integration.recommender.shop import build_shop  # noqa: E402

build_shop()
config = RecommenderConfig.objects.create(
    name="default", algorithm="item_knn", params={"neighbours": 20}, is_default=True, items_per_customer=5
)
version = registry.train(config_id=config.pk)
assert version.status == "ready", version.error
run = scoring.score_all(version_id=version.pk, promote_when_done=True)
rows = Recommendation.objects.filter(model_version=version).count()
explained = Recommendation.objects.filter(
    reason=1, because_product__isnull=False
).exists()  # because you bought
print(f"vendor={connection.vendor} rows={rows} explained={explained}")
