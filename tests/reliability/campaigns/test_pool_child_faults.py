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
child of the worker's main process. It freezes that child (SIGSTOP) for a moment to read what the
child holds without racing its last statement, then sends SIGKILL to that pid alone. Chunks take
a tenth of a second against the local sink, so without the freeze a kill could land just after
the chunk's results were written, or the rows read as lost could be written as sent a moment
later.
"""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from dataclasses import dataclass, field

import psutil
import pytest
from django.utils import timezone

from campaigns.models import Send, SendState
from tests.integration.campaigns.conftest import worker_env
from tests.integration.campaigns.real_parts import dead
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


def busy_child(worker, campaign, killed: set[int]) -> tuple[int, str] | None:
    """The live pool child holding the most recently claimed chunk of the campaign, with its lease owner.

    The newest chunk has the most of its work ahead of it (rendering, delivery), so the kill
    lands before its results are written.
    """
    children = worker.pool_pids() - killed
    leases = (
        Send.objects.filter(campaign=campaign, state=SendState.SENDING, lease_expires_at__gt=timezone.now())
        .values_list("lease_owner", "lease_expires_at")
        .order_by("-lease_expires_at")
    )
    for owner, _ in leases:
        pid = int(owner.rsplit(":", 2)[1])
        if pid in children:
            try:
                if not dead(psutil.Process(pid)):
                    return pid, owner
            except psutil.NoSuchProcess:
                continue
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
            if (
                kill.recovered_after is None
                and kill.rows
                and not Send.objects.filter(pk__in=kill.rows).exclude(state=SendState.SENT).exists()
            ):
                kill.recovered_after = now - kill.at
        assert sends_worker.alive and sends_worker.process.pid == main_pid, sends_worker.output()[-3000:]
        if len(kills) == len(thresholds) or count < thresholds[len(kills)]:
            return
        busy = busy_child(sends_worker, campaign, {k.pid for k in kills})
        if busy is None:
            return
        pid, owner = busy
        process = psutil.Process(pid)
        # Freeze the child (SIGSTOP) and let any statement it had sent finish: what it holds now
        # is what it will lose. A child caught between chunks (its results just written) is let go.
        sends_worker.kill_pool_child(pid, signal.SIGSTOP)
        time.sleep(0.2)
        held = Send.objects.filter(lease_owner=owner, state=SendState.SENDING)
        if not held.exists():
            sends_worker.kill_pool_child(pid, signal.SIGCONT)
            return
        sends_worker.kill_pool_child(pid)
        kill = ChildKill(pid=pid, owner=owner, at=time.monotonic(), sink_count=count)
        kills.append(kill)
        deadline = time.monotonic() + 2
        while not dead(process) and time.monotonic() < deadline:
            time.sleep(0.01)
        # Read before the lease can run out and the reconciler put the rows back in the queue.
        kill.rows = set(held.values_list("pk", flat=True))

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
