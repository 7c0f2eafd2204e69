"""A send survives the out-of-memory killer: only the pool child sending a chunk is SIGKILLed.

The whole-worker kills in test_worker_faults.py take the main process with them, so the broker
gets its message back only when the worker comes back. Here the main `celery worker` process
stays up, as it does when the kernel's OOM killer picks the child that grew: billiard reports
the child lost, Celery raises WorkerLostError for its task and, with `acks_late` and
`reject_on_worker_lost`, puts the message back at once; a new pool child runs it. The killed
child's rows stay `sending` under its lease until the dispatcher's reconciler puts them back
in the queue, and they are sent again with the same Message-ID.

The test finds the busy child from the ledger: a claimed row's lease owner names the pid of the
child that claimed it (host:pid:nonce), and the test checks with psutil that this pid is a pool
child of the worker's main process before it sends SIGKILL to that pid alone.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
from django.utils import timezone

from campaigns.models import Send, SendState
from tests.integration.campaigns.conftest import worker_env
from tests.reliability.campaigns.test_worker_faults import (
    CHUNK,
    FAST,
    assert_exactly_once,
    broker_url,
    flush_broker,
    prepared_campaign,
    wait_until_final,
)

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True), pytest.mark.slow]

# One task sends the whole campaign unless a kill interrupts it (no budget hand-over in the
# middle), so a child that holds a live lease is always a child inside a send_batch task.
CHILD_KILL = {**FAST, "CAMPAIGN_TASK_BUDGET_SECONDS": 600}


@dataclass
class ChildKill:
    pid: int
    owner: str
    at: float
    sink_count: int
    rows: set[int] = field(default_factory=set)
    resumed_after: float | None = None  # the next message at the sink
    recovered_after: float | None = None  # every row the child held is sent


def busy_child(worker, campaign) -> tuple[int, str] | None:
    """The pool child holding a live lease on some of the campaign's rows, with its lease owner."""
    children = worker.pool_pids()
    owners = set(
        Send.objects.filter(
            campaign=campaign, state=SendState.SENDING, lease_expires_at__gt=timezone.now()
        ).values_list("lease_owner", flat=True)
    )
    for owner in sorted(owners):
        pid = int(owner.rsplit(":", 2)[1])
        if pid in children:
            return pid, owner
    return None


def send_batch_deliveries(log: str) -> Counter:
    """How many times the worker received each send_batch task id."""
    return Counter(re.findall(r"Task campaigns\.send_batch\[([0-9a-f-]+)\] received", log))


def test_pool_child_sigkilled_mid_chunk_3000(settings, smtp_sink, start_worker, start_beat):
    n = 3000
    campaign = prepared_campaign(n)
    flush_broker(broker_url())
    env = worker_env(settings, email_url=smtp_sink.url, **CHILD_KILL)
    # Two pool children: one sends, one idles; only the one holding the chunk may be killed.
    sends_worker = start_worker(env, queues="sends", concurrency=2)
    main_pid = sends_worker.process.pid
    start_worker(env, queues="default")
    start_beat(env)

    # A quarter of the way: kill the busy child, then the next busy child as soon as it holds a
    # chunk (usually the new child running the requeued message: one message lost twice in a
    # row); then at a half and at three quarters.
    thresholds = [n // 4, n // 4, n // 2, 3 * n // 4]
    kills: list[ChildKill] = []

    def on_tick():
        now = time.monotonic()
        count = smtp_sink.count()
        for kill in kills:
            if kill.resumed_after is None and count > kill.sink_count:
                kill.resumed_after = now - kill.at
            if kill.recovered_after is None and kill.rows:
                held = Send.objects.filter(pk__in=kill.rows).exclude(state=SendState.SENT).exists()
                if not held:
                    kill.recovered_after = now - kill.at
        assert sends_worker.alive and sends_worker.process.pid == main_pid, sends_worker.output()[-3000:]
        if len(kills) == len(thresholds) or count < thresholds[len(kills)]:
            return
        busy = busy_child(sends_worker, campaign)
        if busy is None:
            return
        if kills and busy[0] == kills[-1].pid:
            return  # not yet reaped by the pool
        pid, owner = busy
        sends_worker.kill_pool_child(pid)
        kill = ChildKill(pid=pid, owner=owner, at=time.monotonic(), sink_count=count)
        kills.append(kill)
        # The child is dead: the rows still `sending` under its lease are the ones it lost.
        deadline = time.monotonic() + 5
        while pid in sends_worker.pool_pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        kill.rows = set(
            Send.objects.filter(lease_owner=owner, state=SendState.SENDING).values_list("pk", flat=True)
        )

    counts = wait_until_final(campaign, 600, on_tick=on_tick)
    for _ in range(50):  # the last recovery is noticed on a tick; the final state is already there
        on_tick()
        if all(k.recovered_after is not None for k in kills):
            break
        time.sleep(0.1)
    log = sends_worker.output()
    assert len(kills) == len(thresholds), (kills, counts, log[-3000:])

    # Nothing lost, nothing recorded twice, duplicates at the sink only from the chunks in flight.
    assert_exactly_once(campaign, counts, smtp_sink, n, len(kills))
    # Every row a killed child held went back to the queue once (its lease ran out) and was sent;
    # no other row was ever re-queued.
    lost_rows = set().union(*(k.rows for k in kills))
    assert all(0 < len(k.rows) <= CHUNK for k in kills), [(k.pid, len(k.rows)) for k in kills]
    requeued = dict(Send.objects.filter(campaign=campaign, kills__gt=0).values_list("pk", "kills"))
    assert requeued == dict.fromkeys(lost_rows, 1)

    # The main process never died and was never restarted; the pool replaced each child.
    assert sends_worker.alive and sends_worker.process.pid == main_pid and sends_worker.starts == 1
    assert len(sends_worker.pool_pids()) == 2
    assert not {k.pid for k in kills} & sends_worker.pool_pids()
    # Celery saw each child lost and put its message back: each kill is one more delivery.
    assert log.count("WorkerLostError") >= len(kills), log[-3000:]
    deliveries = send_batch_deliveries(log)
    assert sum(deliveries.values()) - len(deliveries) == len(kills), deliveries

    ids = smtp_sink.message_ids()
    print(
        f"\nFIGURE pool-child kills: {len(kills)} children SIGKILLed in a {n}-recipient send, main "
        f"process {main_pid} alive throughout; {len(ids) - len(set(ids))} duplicates at the sink; "
        f"{len(lost_rows)} rows re-queued ({[len(k.rows) for k in kills]}); sending resumed after "
        f"{[round(k.resumed_after, 1) for k in kills]} s; the lost rows sent "
        f"{[round(k.recovered_after, 1) if k.recovered_after else None for k in kills]} s after each "
        f"kill; deliveries per task {sorted(deliveries.values(), reverse=True)}"
    )
