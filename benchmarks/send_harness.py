"""The processes and scratch resources the send benchmarks share (campaign send, load test).

A free port, an aiosmtpd sink in its own process counting messages and duplicate Message-IDs, a
scratch PostgreSQL database, a real Celery worker on the sends queue, and the environment the
worker and the web server run with. Everything started here is stopped by pid (process group).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# The SMTP sink, in its own process


def serve_sink(port: int, received, duplicates, ready) -> None:
    import asyncio

    from aiosmtpd.controller import Controller

    seen: set[bytes] = set()

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd hook
            content = envelope.original_content or envelope.content
            start = content.find(b"Message-ID:")
            if start < 0:
                start = content.find(b"Message-Id:")
            key = content[start : content.find(b"\r\n", start)] if start >= 0 else b""
            if key in seen:
                with duplicates.get_lock():
                    duplicates.value += 1
            seen.add(key)
            with received.get_lock():
                received.value += 1
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port, data_size_limit=10_000_000)
    controller.start()
    ready.set()
    signal.signal(signal.SIGTERM, lambda *a: (controller.stop(), os._exit(0)))
    asyncio.run(asyncio.sleep(10**9))


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


def start_sink():
    """(process, port, received, duplicates): the sink up and listening."""
    ctx = mp.get_context("spawn")
    received, duplicates, ready = ctx.Value("q", 0), ctx.Value("q", 0), ctx.Event()
    port = free_port()
    sink = ctx.Process(target=serve_sink, args=(port, received, duplicates, ready), daemon=True)
    sink.start()
    ready.wait(30)
    return sink, port, received, duplicates


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
