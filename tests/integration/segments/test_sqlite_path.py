"""The embedded default (SQLite: `make demo`, `make run` without PostgreSQL) refreshes segments too.

Full refresh, the incremental refresh that ingest triggers, and static uploads run the same
set-wise statements in SQLite's dialect; checked in a subprocess on a fresh SQLite file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = r"""
import json, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.utils import timezone
from catalog.models import Product
from customers.models import Customer
from customers.services import ingest_orders
from segments import static_upload
from segments import services
from segments.models import Segment, SegmentMembership

Product.objects.create(sku="p1", name="Mug", price=5)
for i in range(4):
    Customer.objects.create(external_id=f"c{i}", email=f"c{i}@example.com")
buyers = Segment.objects.create(
    name="Buyers", kind="dynamic", rules={"all": [{"field": "order.count", "op": "gte", "value": 1}]}
)
first = services.refresh_segment(segment_id=buyers.pk)
ingest_orders(rows=[{"external_id": "o1", "customer": "c1", "placed_at": timezone.now().isoformat(),
                     "lines": [{"sku": "p1", "quantity": 1, "unit_price": "5.00"}]}])
after_ingest = sorted(SegmentMembership.objects.filter(segment=buyers, exited_at__isnull=True)
                      .values_list("customer__external_id", flat=True))
again = services.refresh_segment(segment_id=buyers.pk)
vip = Segment.objects.create(name="VIP", kind="static")
upload = static_upload.upload_static_members(segment=vip, identifiers=["c0", "c2", "nobody"])
removed = static_upload.upload_static_members(segment=vip, identifiers=["c2"], mode="remove")
print(json.dumps({
    "first": first.member_count, "after_ingest": after_ingest,
    "again": [again.entered, again.exited, again.member_count],
    "upload": [upload.matched, upload.unmatched, upload.member_count],
    "removed": removed.member_count, "state": Segment.objects.get(pk=buyers.pk).refresh_state,
}))
"""


def test_refresh_incremental_and_static_upload_on_sqlite(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'segments.sqlite3'}",
        "CELERY_TASK_ALWAYS_EAGER": "1",
        "CELERY_BROKER_URL": "memory://",
        "EMAIL_FILE_PATH": str(tmp_path / "mail"),
        "MEDIA_ROOT": str(tmp_path / "media"),
    }
    env.pop("REDIS_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["first"] == 0
    assert answer["after_ingest"] == ["c1"]  # the ingest hook's incremental refresh
    assert answer["again"] == [0, 0, 1]  # a full refresh finds nothing left to change
    assert answer["upload"] == [2, ["nobody"], 2]
    assert answer["removed"] == 1
    assert answer["state"] == "idle"
