"""Typed attribute conditions answer the same on PostgreSQL and on SQLite (the demo's default):
a number compares only with numbers, text only with text, dates are ISO text compared by day."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

ROOT = Path(__file__).resolve().parents[3]
TODAY = timezone.now().date()
PEOPLE = {
    "ann": {
        "score": 7,
        "plan": "pro",
        "birthday": (TODAY - timedelta(days=3)).isoformat(),
        "nested": {"n": 2},
    },
    "bob": {"score": "7", "plan": "Pro-team", "birthday": "1990-01-01", "nested": {"n": "2"}},
    "cat": {"score": 3.5, "birthday": 19900101},
    "dan": {},
}
CASES = [
    ({"field": "attributes.score", "op": "gte", "value": 5}, ["ann"]),
    ({"field": "attributes.score", "op": "lt", "value": 5}, ["cat"]),
    ({"field": "attributes.score", "op": "between", "value": [3, 4]}, ["cat"]),
    ({"field": "attributes.nested.n", "op": "gt", "value": 1}, ["ann"]),
    ({"field": "attributes.plan", "op": "contains", "value": "PRO"}, ["ann", "bob"]),
    ({"field": "attributes.plan", "op": "starts_with", "value": "pro-"}, ["bob"]),
    ({"field": "attributes.plan", "op": "not_contains", "value": "team"}, ["ann", "cat", "dan"]),
    ({"field": "attributes.birthday", "type": "date", "op": "within_last_days", "value": 30}, ["ann"]),
    ({"field": "attributes.birthday", "type": "date", "op": "before", "value": "2000-01-01"}, ["bob"]),
    ({"field": "attributes.score", "op": "is_set"}, ["ann", "bob", "cat"]),
]

SCRIPT = r"""
import json, sys, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from customers.models import Customer
from segments.rules import matching_customers
people, cases = json.loads(sys.stdin.read())
for name, attributes in people.items():
    Customer.objects.create(external_id=name, attributes=attributes)
print(json.dumps([sorted(matching_customers(rule).values_list("external_id", flat=True)) for rule, _ in cases]))
"""


@pytest.mark.django_db
def test_typed_attributes_on_postgresql():
    from customers.models import Customer
    from segments.rules import matching_customers

    for name, attributes in PEOPLE.items():
        Customer.objects.create(external_id=name, attributes=attributes)
    got = [sorted(matching_customers(rule).values_list("external_id", flat=True)) for rule, _ in CASES]
    assert got == [expected for _, expected in CASES]


def test_typed_attributes_on_sqlite(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'attributes.sqlite3'}",
        "CELERY_TASK_ALWAYS_EAGER": "1",
        "CELERY_BROKER_URL": "memory://",
        "MEDIA_ROOT": str(tmp_path / "media"),
    }
    env.pop("REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        input=json.dumps([PEOPLE, CASES]),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got == [expected for _, expected in CASES]
