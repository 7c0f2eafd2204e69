"""PostgreSQL crashes and comes back in the middle of a send: nothing lost, nothing recorded twice.

Everything is a real process: a private PostgreSQL cluster (never the shared server), a Celery
worker for `sends`, one for `default`, `celery beat` running the dispatcher every second, an
aiosmtpd sink. The cluster gets a copy of the test database's schema; a seeding process writes
the campaign's ledger into it; the test process only watches (over its own connections) and
crashes the database (immediate shutdown, then crash recovery on restart).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter

import psycopg2
import pytest
import redis
from django.conf import settings as django_settings

from tests.integration.campaigns.conftest import worker_env
from tests.integration.campaigns.real_parts import ROOT
from tests.reliability.private_postgres import PrivatePostgres, postgres_bin

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(postgres_bin() is None, reason="PostgreSQL server binaries are not installed"),
]

CHUNK = 50
FAST = {
    "CAMPAIGN_CHUNK_SIZE": CHUNK,
    "CAMPAIGN_LEASE_SECONDS": 4,
    "CAMPAIGN_SENDER_STALE_SECONDS": 3,
    "CAMPAIGN_TASK_BUDGET_SECONDS": 8,
    "CAMPAIGN_RETRY_BASE_SECONDS": 2,
    "CAMPAIGN_RETRY_MAX_SECONDS": 4,
    "CAMPAIGN_TEST_DISPATCH_SECONDS": 1,
}
SEED = """
import json, django
django.setup()
from tests.reliability.campaigns.test_worker_faults import prepared_campaign
campaign = prepared_campaign({n})
print(json.dumps({{"campaign": campaign.pk}}))
"""


@pytest.fixture
def private_postgres(django_db_setup):
    pg = PrivatePostgres().init().start()
    yield pg
    pg.cleanup()


def ledger(url: str, campaign_id: int) -> tuple[Counter, str] | None:
    """Send states and the campaign's status, or None while the database is down."""
    try:
        conn = psycopg2.connect(url, connect_timeout=2)
    except psycopg2.OperationalError:
        return None
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT state, count(*) FROM campaigns_send WHERE campaign_id = %s GROUP BY state",
                [campaign_id],
            )
            states = Counter(dict(cursor.fetchall()))
            cursor.execute("SELECT status FROM campaigns_campaign WHERE id = %s", [campaign_id])
            return states, cursor.fetchone()[0]
    except psycopg2.Error:
        return None
    finally:
        conn.close()


def run_crash_loop(settings, private_postgres, smtp_sink, start_worker, start_beat, *, n: int, crashes: int):
    from django.db import connection

    test_db = connection.settings_dict  # pytest-django renamed it to the test database here
    private_postgres.copy_database_from(
        source_url=f"postgres://{test_db['USER']}@{test_db['HOST'] or '127.0.0.1'}:{test_db['PORT'] or 5432}/{test_db['NAME']}",
        database="reachly",
    )
    url = private_postgres.url("reachly")
    env = worker_env(settings, email_url=smtp_sink.url, **FAST)
    env["DATABASE_URL"] = url
    seeded = subprocess.run(
        [sys.executable, "-c", SEED.format(n=n)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert seeded.returncode == 0, seeded.stderr[-3000:]
    campaign_id = json.loads(seeded.stdout.strip().splitlines()[-1])["campaign"]
    redis.Redis.from_url(django_settings.CELERY_BROKER_URL).flushdb()

    sends_worker = start_worker(env, queues="sends")
    default_worker = start_worker(env, queues="default")
    start_beat(env)

    thresholds = [n * (i + 1) // (crashes + 1) for i in range(crashes)]
    crash_times: list[float] = []
    resume_seconds: list[float] = []
    sent_at_crash = 0
    deadline = time.monotonic() + 240 * crashes
    final = None
    while time.monotonic() < deadline:
        if len(crash_times) < crashes and smtp_sink.count() >= thresholds[len(crash_times)]:
            sent_at_crash = smtp_sink.count()
            crash_times.append(time.monotonic())
            private_postgres.restart(pause=3.0)  # down for 3 s, then crash recovery
        if len(resume_seconds) < len(crash_times) and smtp_sink.count() > sent_at_crash + CHUNK:
            resume_seconds.append(round(time.monotonic() - crash_times[-1], 1))
        snapshot = ledger(url, campaign_id)
        if snapshot is not None:
            states, status = snapshot
            if status == "sent" and set(states) == {"sent"}:
                final = states
                break
        time.sleep(0.25)

    assert len(crash_times) == crashes, "the send finished before every crash could be injected"
    assert final is not None, (
        f"not finished: {ledger(url, campaign_id)}, sink {smtp_sink.count()}\n"
        f"{sends_worker.output()[-3000:]}\n{default_worker.output()[-2000:]}"
    )
    assert final == {"sent": n}
    conn = psycopg2.connect(url)
    try:
        with conn.cursor() as cursor:
            cursor.execute(
                "SELECT customer_id, message_id FROM campaigns_send WHERE campaign_id = %s", [campaign_id]
            )
            rows = cursor.fetchall()
    finally:
        conn.close()
    assert len(rows) == n and len({customer for customer, _ in rows}) == n  # each recipient once
    expected = {message_id for _, message_id in rows}
    received = smtp_sink.message_ids()
    assert set(received) == expected  # everyone reached, nobody else
    duplicates = len(received) - len(set(received))
    assert duplicates <= CHUNK * crashes, f"{duplicates} duplicates: more than the chunks in flight"
    assert private_postgres.restarts == crashes
    # The worker processes lived through it: reconnecting is their job, not a human's.
    assert sends_worker.alive and default_worker.alive
    figures = {
        "recipients": n,
        "crashes": crashes,
        "duplicates_at_sink": duplicates,
        "seconds_to_resume_sending": resume_seconds,
    }
    print(f"\npostgres crash-restart mid-send: {json.dumps(figures)}")


def test_postgres_crashed_and_restarted_mid_send(
    settings, transactional_db, private_postgres, smtp_sink, start_worker, start_beat
):
    run_crash_loop(settings, private_postgres, smtp_sink, start_worker, start_beat, n=600, crashes=1)


@pytest.mark.slow
def test_postgres_crashed_three_times_during_a_3000_recipient_send(
    settings, transactional_db, private_postgres, smtp_sink, start_worker, start_beat
):
    run_crash_loop(settings, private_postgres, smtp_sink, start_worker, start_beat, n=3000, crashes=3)
