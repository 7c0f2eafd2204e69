"""Real services for the campaign tests: an SMTP sink, a push receiver, Celery workers, a private Redis.

Each is a real server on a local port (aiosmtpd, http.server, celery, redis-server), started by
a fixture and stopped in its teardown by the handle it returned -- never by name.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parents[3]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------------------
# SMTP


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message_id: str
    subject: str
    raw: bytes

    def parsed(self):
        return email.message_from_bytes(self.raw, policy=email.policy.default)


class _SinkHandler:
    def __init__(self, sink: SmtpSink):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 - aiosmtpd hook
        verdict = self.sink.verdict_for(address)
        if verdict:
            return verdict
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
        if self.sink.refusing():
            return "451 4.3.0 Try again later"
        raw = envelope.original_content or envelope.content
        parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
        self.sink.store(
            ReceivedMail(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                message_id=str(parsed.get("Message-ID", "")).strip(),
                subject=str(parsed.get("Subject", "")),
                raw=raw,
            )
        )
        return "250 2.0.0 Accepted"


class SmtpSink:
    """aiosmtpd on a local port, keeping every message; can refuse (4xx) or reject (5xx) on demand."""

    def __init__(self):
        self.port = free_port()
        self.messages: list[ReceivedMail] = []
        self.lock = threading.Lock()
        self.reject_containing: dict[str, str] = {}
        self.refuse_until = 0.0
        self.refuse_window = 0.0  # refuse for this long, counted from the first message that arrives
        self.controller = Controller(
            _SinkHandler(self), hostname="127.0.0.1", port=self.port, data_size_limit=10_000_000
        )

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def store(self, mail: ReceivedMail) -> None:
        with self.lock:
            self.messages.append(mail)

    def refusing(self) -> bool:
        if self.refuse_window:
            self.refuse_until, self.refuse_window = time.monotonic() + self.refuse_window, 0.0
        return time.monotonic() < self.refuse_until

    def refuse_from_first_message(self, seconds: float) -> None:
        self.refuse_window = seconds

    def refuse_for(self, seconds: float) -> None:
        self.refuse_until = time.monotonic() + seconds

    def verdict_for(self, address: str) -> str | None:
        for needle, reply in self.reject_containing.items():
            if needle in address:
                return reply
        return None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def message_ids(self) -> list[str]:
        with self.lock:
            return [m.message_id for m in self.messages]

    def count(self) -> int:
        with self.lock:
            return len(self.messages)


# ------------------------------------------------------------------------------------------
# Push


@dataclass
class PushRequest:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@dataclass
class PushReceiver:
    """A local HTTP server answering push deliveries: 201 by default, or a status per path."""

    port: int = field(default_factory=free_port)
    requests: list[PushRequest] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)

    def start(self) -> PushReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server hook
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                receiver.requests.append(PushRequest(self.path, dict(self.headers.items()), body))
                status = receiver.statuses.get(self.path, 201)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


# ------------------------------------------------------------------------------------------
# Redis of our own (for restarts)


class PrivateRedis:
    """A redis-server on its own port, without persistence, that a test may stop and restart."""

    def __init__(self):
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def start(self) -> PrivateRedis:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self, pause: float = 1.0) -> None:
        self.stop()
        time.sleep(pause)
        self.start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


# ------------------------------------------------------------------------------------------
# Celery worker


class CeleryWorker:
    """`celery worker` as a child process group, so a SIGKILL takes the pool children with it."""

    def __init__(self, env: dict[str, str], queues: str = "sends,default", concurrency: int = 1):
        self.env = env
        self.queues = queues
        self.concurrency = concurrency
        self.process: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="campaign-worker-", suffix=".log", delete=False)  # noqa: SIM115
        self.starts = 0

    def start(self, wait: bool = True) -> CeleryWorker:
        self.starts += 1
        self.process = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                self.queues,
                "--pool=prefork",
                "-c",
                str(self.concurrency),
                "--prefetch-multiplier=1",
                "-n",
                f"campaigns-test-{os.getpid()}-{self.starts}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "INFO",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        marker = f"campaigns-test-{os.getpid()}-{self.starts}@"
        while time.monotonic() < deadline:
            text = Path(self.log.name).read_text(errors="replace")
            tail = text[text.rfind(marker) :] if marker in text else ""
            if " ready." in tail:
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"celery worker exited early:\n{text[-4000:]}")
            time.sleep(0.2)
        raise RuntimeError("celery worker not ready in time:\n" + Path(self.log.name).read_text()[-4000:])

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children): no cleanup, no acks."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM (warm shutdown), then SIGKILL after `grace` seconds: the ledger makes either safe."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pool_pids(self) -> set[int]:
        """The pids of the prefork pool's children of the running main process (empty when it is down)."""
        import psutil

        if not self.alive:
            return set()
        try:
            return {child.pid for child in psutil.Process(self.process.pid).children()}
        except psutil.NoSuchProcess:
            return set()

    def kill_pool_child(self, pid: int, sig: int = signal.SIGKILL) -> None:
        """SIGKILL one pool child, as the out-of-memory killer does; the main process stays up.

        Refuses any pid that is not a child of this worker's main process. Another `sig`
        (SIGSTOP, SIGCONT) lets a test freeze a child while it looks at what the child holds.
        """
        if pid not in self.pool_pids():
            raise ValueError(f"{pid} is not a pool child of worker {self.process.pid}")
        os.kill(pid, sig)

    def cleanup(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)


def dead(process) -> bool:
    """Whether a psutil.Process has exited (gone, or a zombie its parent has not reaped yet)."""
    import psutil

    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(predicate, timeout: float, what: str, worker: CeleryWorker | None = None):
    """The predicate's first truthy value; fails early with the worker's log if the worker died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if worker is not None and worker.process is not None and not worker.alive:
            raise AssertionError(f"worker died while waiting for {what}:\n{worker.output()[-4000:]}")
        time.sleep(0.2)
    tail = worker.output()[-4000:] if worker is not None else ""
    raise AssertionError(f"timed out waiting for {what}\n{tail}")


class CeleryBeat:
    """`celery beat` with a file scheduler in a temporary directory (the tests' fast dispatcher)."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.directory = tempfile.mkdtemp(prefix="campaign-beat-")
        self.process: subprocess.Popen | None = None

    def start(self) -> CeleryBeat:
        self.process = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "-S",
                "celery.beat:PersistentScheduler",
                "-s",
                os.path.join(self.directory, "schedule"),
                "--max-interval",
                "1",
                "-l",
                "WARNING",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=open(os.path.join(self.directory, "beat.log"), "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)

    def output(self) -> str:
        return Path(self.directory, "beat.log").read_text(errors="replace")
