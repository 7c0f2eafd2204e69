"""The processes and scratch resources the send benchmarks share (campaign send, load test).

A free port, an aiosmtpd sink in several processes counting messages and duplicate Message-IDs,
a scratch PostgreSQL database, a real Celery worker on the sends queue, the environment the
worker and the web server run with, and the CPU time each of these processes spends. Everything
started here is stopped by pid (process group).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# The SMTP sink: aiosmtpd in several processes behind one port
#
# The sink stands for the receiving MTA, which in production runs on other machines; here it
# shares the two cores with the senders. One aiosmtpd process (pure Python) holds a core at
# most, so the sink runs in several processes. How connections reach them matters: with
# SO_REUSEPORT the kernel hashes each connection to a process, and two senders' connections land
# on the same process half the time (measured: 81-108k messages/min against 187-199k/min
# when they are spread). So by default the parent accepts and hands each connection (its file
# descriptor, over a Unix socket) to the process with the fewest open connections, as an MTA
# that forks a process per connection would spread them.


def _message_key(content: bytes) -> bytes:
    start = content.find(b"Message-ID:")
    if start < 0:
        start = content.find(b"Message-Id:")
    return content[start : content.find(b"\r\n", start)] if start >= 0 else b""


def serve_sink(
    index: int, port: int, channel, counts, closed, commands, replies, ready, event_loop: str
) -> None:
    """One sink process: aiosmtpd's SMTP protocol on the connections handed over `channel` (or,
    without a channel, on `port` with SO_REUSEPORT). It counts its messages in `counts[index]`
    and its closed connections in `closed[index]` (slots only this process writes, so no lock),
    and keeps the Message-IDs it received until the parent asks on `commands` ("keys": sent on
    `replies` and forgotten; "stop"). One-way pipes: the loop makes the end it watches
    non-blocking, the reply end stays blocking."""
    import asyncio

    from aiosmtpd.smtp import SMTP

    keys: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
            keys.append(_message_key(envelope.original_content or envelope.content))
            counts[index] += 1
            return "250 OK"

    class CountedSMTP(SMTP):
        def connection_lost(self, error):
            super().connection_lost(error)
            closed[index] += 1

    handler = Handler()

    def protocol() -> SMTP:
        # The arguments aiosmtpd's Controller would pass, and a fixed name: without one each
        # connection's protocol asks the resolver for the machine's name.
        return CountedSMTP(
            handler, hostname="sink.localhost", data_size_limit=10_000_000, enable_SMTPUTF8=True
        )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        server = None
        if channel is None:
            server = await loop.create_server(
                protocol, host="127.0.0.1", port=port, reuse_port=True, backlog=256
            )
        else:

            def on_connection() -> None:
                try:
                    _, fds, _, _ = socket.recv_fds(channel, 1, 4)
                except BlockingIOError:
                    return
                for fd in fds:
                    sock = socket.socket(fileno=fd)
                    loop.create_task(loop.connect_accepted_socket(protocol, sock))

            loop.add_reader(channel.fileno(), on_connection)

        def on_command() -> None:
            try:
                command = commands.recv()
            except EOFError:  # the parent is gone
                command = "stop"
            if command == "keys":
                replies.send_bytes(b"\n".join(keys))
                keys.clear()
            else:
                stopping.set()

        loop.add_reader(commands.fileno(), on_command)
        ready.set()
        await stopping.wait()
        loop.remove_reader(commands.fileno())
        if server is not None:
            server.close()

    if event_loop == "uvloop":
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


def available_event_loop() -> str:
    """uvloop when it is installed (the dev extra pins it), else asyncio's own loop."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


class Sink:
    """aiosmtpd sink processes behind one port on 127.0.0.1.

    `dispatch="least-connections"` (default): the parent accepts in a thread and hands each
    connection to the process with the fewest open ones; `"reuseport"`: every process listens
    with SO_REUSEPORT and the kernel's hash picks. A duplicate is the same Message-ID received
    twice, in any process: each keeps the IDs it received and `duplicates()` merges them.
    Every process is stopped by `stop()`.
    """

    def __init__(
        self, processes: int = 2, event_loop: str | None = None, dispatch: str = "least-connections"
    ):
        if dispatch not in ("least-connections", "reuseport"):
            raise ValueError(f"unknown dispatch {dispatch!r}")
        ctx = mp.get_context("spawn")
        self.event_loop = event_loop or available_event_loop()
        self.dispatch = dispatch
        self.counts = ctx.Array("q", processes, lock=False)
        self.closed = ctx.Array("q", processes, lock=False)
        self._dispatched = [0] * processes
        self._seen: set[bytes] = set()
        self._duplicates = 0
        self._controls: list[tuple] = []
        self._channels: list[socket.socket] = []
        self._processes: list = []
        self._listener: socket.socket | None = None
        if dispatch == "reuseport":
            self.port = free_port()
        else:
            self._listener = socket.create_server(("127.0.0.1", 0), backlog=256)
            self.port = self._listener.getsockname()[1]
        for index in range(processes):
            commands_in, commands_out = ctx.Pipe(duplex=False)
            replies_in, replies_out = ctx.Pipe(duplex=False)
            ready = ctx.Event()
            channel = None
            if self._listener is not None:
                mine, channel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                self._channels.append(mine)
            process = ctx.Process(
                target=serve_sink,
                args=(
                    index,
                    self.port,
                    channel,
                    self.counts,
                    self.closed,
                    commands_in,
                    replies_out,
                    ready,
                    self.event_loop,
                ),
                daemon=True,
            )
            process.start()
            if channel is not None:
                channel.close()  # the child has its own copy now
            self._controls.append((commands_out, replies_in))
            self._processes.append(process)
            if not ready.wait(30):
                self.stop()
                raise RuntimeError("an SMTP sink process did not come up")
        if self._listener is not None:
            self._acceptor = threading.Thread(target=self._accept, name="sink-acceptor", daemon=True)
            self._acceptor.start()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # the listener was closed: the sink is stopping
                return
            with connection:
                open_now = [sent - done for sent, done in zip(self._dispatched, self.closed, strict=True)]
                index = open_now.index(min(open_now))
                socket.send_fds(self._channels[index], [b"c"], [connection.fileno()])
                self._dispatched[index] += 1

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self._processes]

    @property
    def received(self) -> int:
        return sum(self.counts)

    def per_process(self) -> list[int]:
        return list(self.counts)

    def duplicates(self) -> int:
        """Messages so far whose Message-ID had already been received (by any sink process)."""
        for commands, replies in self._controls:
            commands.send("keys")
            keys = replies.recv_bytes()
            for key in keys.split(b"\n") if keys else ():
                if key in self._seen:
                    self._duplicates += 1
                else:
                    self._seen.add(key)
        return self._duplicates

    def forget(self) -> None:
        """Start counting duplicates afresh (a run that re-sends the same messages on purpose)."""
        self.duplicates()
        self._seen.clear()
        self._duplicates = 0

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the acceptor's accept()
            self._listener.close()
        for commands, _ in self._controls:
            with contextlib.suppress(OSError):
                commands.send("stop")
        for process in self._processes:
            process.join(10)
            if process.is_alive():
                process.terminate()
                process.join(5)
        for channel in self._channels:
            channel.close()


def start_sink(
    processes: int = 2, event_loop: str | None = None, dispatch: str = "least-connections"
) -> Sink:
    """The sink up and listening on `sink.port`."""
    return Sink(processes, event_loop, dispatch)


# ---------------------------------------------------------------------------------------------
# Scratch database


def admin_dsn(url: str) -> str:
    parsed = urlparse(url)
    return urlunparse(parsed._replace(path="/postgres"))


def recreate_database(base_url: str, name: str) -> str:
    import psycopg2

    conn = psycopg2.connect(admin_dsn(base_url))
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return urlunparse(urlparse(base_url)._replace(path=f"/{name}"))


def drop_database(base_url: str, name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(admin_dsn(base_url))
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def send_env(*, db_url: str, redis_base: str, redis_db: int, smtp_port: int, **extra: str) -> dict[str, str]:
    """The environment of the worker (and web server): base settings on the scratch database,
    cache on `redis_db`, broker on the next one, mail to the sink, single-threaded BLAS."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "DATABASE_URL": db_url,
            "REDIS_URL": f"{redis_base}/{redis_db}",
            "CELERY_BROKER_URL": f"{redis_base}/{redis_db + 1}",
            "EMAIL_URL": f"smtp://127.0.0.1:{smtp_port}",
            "SITE_URL": "https://shop.example.com",
            "LOG_LEVEL": "WARNING",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            **extra,
        }
    )
    return env


def use_env(env: dict[str, str]) -> None:
    """This process runs with `env` too: an empty broker, then Django set up on it."""
    os.environ.update(env)
    import redis

    redis.Redis.from_url(env["CELERY_BROKER_URL"]).flushdb()
    import django

    django.setup()


def start_worker(env: dict[str, str], workers: int, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-Q",
            "sends,default",
            "--pool=prefork",
            "-c",
            str(workers),
            "--prefetch-multiplier=1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "WARNING",
            "-n",
            f"bench-{os.getpid()}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    from config.celery_app import app

    while time.monotonic() < deadline:
        try:
            replies = app.control.ping(timeout=1.0)
        except Exception:  # noqa: BLE001 - the broker may not answer yet
            replies = []
        if any(f"bench-{os.getpid()}@" in name for reply in replies for name in reply):
            return process
        if process.poll() is not None:
            raise RuntimeError(log_path.read_text(errors="replace")[-3000:])
    raise RuntimeError("the worker did not come up")


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM to the process group started for it (by its pid), SIGKILL if it lingers."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


# ---------------------------------------------------------------------------------------------
# CPU time per process role: what a message costs, whatever else the machine is running


def process_tree(pid: int) -> list[int]:
    """A process and all its descendants (a Celery worker and its pool processes)."""
    import psutil

    try:
        parent = psutil.Process(pid)
        return [pid, *(child.pid for child in parent.children(recursive=True))]
    except psutil.Error:
        return []


def database_backends(database: str) -> list[int]:
    """PostgreSQL server processes serving `database`, this process's own connection left out."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [database]
        )
        return [row[0] for row in cursor.fetchall()]


class CpuMeter:
    """CPU seconds (user + system) that groups of processes ("worker", "sink", "postgres") spend
    between `start()` and the last `sample()`.

    Wall-clock throughput on a shared machine moves with everyone else's load; CPU per message does
    not, and it says what each process costs. Processes first seen after `start()` (a pool process
    or a database connection opened mid-run) count from zero; one that ends between two samples
    loses what it spent since the last one, so sample often (the end-to-end loop does, every 0.25 s).
    """

    def __init__(self) -> None:
        self._first: dict[tuple[str, int], float] = {}
        self._last: dict[tuple[str, int], float] = {}
        self._started = False

    @staticmethod
    def _cpu(pid: int) -> float | None:
        import psutil

        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            return None
        return times.user + times.system

    def start(self, groups: dict[str, list[int]]) -> None:
        self.sample(groups)
        self._started = True

    def sample(self, groups: dict[str, list[int]]) -> None:
        for role, pids in groups.items():
            for pid in pids:
                cpu = self._cpu(pid)
                if cpu is None:
                    continue
                key = (role, pid)
                if key not in self._first:
                    self._first[key] = cpu if not self._started else 0.0
                self._last[key] = cpu

    def seconds(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for (role, pid), last in self._last.items():
            totals[role] = totals.get(role, 0.0) + last - self._first[(role, pid)]
        return totals

    def per_message(self, messages: int) -> dict[str, float]:
        """Milliseconds of CPU per message by role, their total, and what that total allows on
        this machine's cores if these processes had them to themselves."""
        seconds = self.seconds()
        result = {f"{role}_ms": round(value / messages * 1000, 3) for role, value in sorted(seconds.items())}
        total = sum(seconds.values()) / messages * 1000
        result["total_ms"] = round(total, 3)
        result["cpu_bound_messages_per_minute"] = (
            round((os.cpu_count() or 1) * 60_000 / total) if total else 0
        )
        return result
