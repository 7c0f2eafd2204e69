"""DATABASE_REPLICA_URL adds a reporting replica that is never migrated or written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.db import REPLICA, ReplicaRouter

ROOT = Path(__file__).resolve().parents[2]


def _settings_with(env: dict[str, str]) -> dict:
    code = (
        "import json, django; from django.conf import settings; django.setup();"
        "from core.db import reporting_db;"
        "print(json.dumps({'aliases': sorted(settings.DATABASES), 'reporting': reporting_db(),"
        " 'test': settings.DATABASES.get('replica', {}).get('TEST', {})}))"
    )
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": "k3Yq-9vZ!t2Lr#8mWp4Xc7Bn1Hs6Dj0Fg5Ae_Ui+Oy3Ql-7sVb2Nq",
        "SITE_URL": "https://mail.shop.example",
        "ALLOWED_HOSTS": "mail.shop.example",
        **env,
    }
    if "DATABASE_REPLICA_URL" not in env:
        environment.pop("DATABASE_REPLICA_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_without_a_replica_reports_run_on_the_primary():
    answer = _settings_with({"DATABASE_URL": "postgres://app@primary.internal:5432/reachly"})
    assert answer["aliases"] == ["default"]
    assert answer["reporting"] == "default"


def test_a_replica_url_adds_a_mirrored_reporting_alias():
    answer = _settings_with(
        {
            "DATABASE_URL": "postgres://app@primary.internal:5432/reachly",
            "DATABASE_REPLICA_URL": "postgres://app@replica.internal:5432/reachly",
        }
    )
    assert answer["aliases"] == ["default", "replica"]
    assert answer["reporting"] == "replica"
    assert answer["test"]["MIRROR"] == "default"


def test_the_router_never_migrates_or_writes_through_the_replica():
    router = ReplicaRouter()
    assert router.allow_migrate(REPLICA, "customers") is False
    assert router.allow_migrate("default", "customers") is None
    assert router.db_for_write(object) == "default"
