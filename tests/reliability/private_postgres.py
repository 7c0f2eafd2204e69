"""A PostgreSQL cluster of the test's own, in a temporary directory on a free port.

The shared server must never be restarted (other engineers' tests run on it), so a test that
restarts PostgreSQL mid-send starts this one: initdb + postgres from the machine's PostgreSQL
binaries, stopped (and its directory removed) by the postmaster's pid in teardown. As root,
PostgreSQL refuses to run, so the cluster then belongs to the `postgres` system user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from tests.integration.campaigns.real_parts import free_port

BIN_CANDIDATES = [Path(f"/usr/lib/postgresql/{v}/bin") for v in (17, 16, 15, 14)]


def postgres_bin() -> Path | None:
    for candidate in BIN_CANDIDATES:
        if (candidate / "initdb").exists() and (candidate / "postgres").exists():
            return candidate
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    try:  # the embedded PostgreSQL `make test` falls back to ships its own binaries
        import pgserver

        bundled = Path(pgserver.__file__).parent / "pginstall" / "bin"
        return bundled if (bundled / "initdb").exists() else None
    except ImportError:
        return None


class PrivatePostgres:
    def __init__(self):
        self.bin = postgres_bin()
        if self.bin is None:
            raise RuntimeError("PostgreSQL server binaries (initdb, postgres) not found")
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="reachly-private-pg-"))
        self.data = self.directory / "data"
        self.log = self.directory / "postgres.log"
        self.process: subprocess.Popen | None = None
        self.user = None
        self.restarts = 0
        if os.geteuid() == 0:
            self.user = pwd.getpwnam("postgres")
            os.chown(self.directory, self.user.pw_uid, self.user.pw_gid)

    def _as_owner(self):
        if self.user is None:
            return None
        uid, gid = self.user.pw_uid, self.user.pw_gid

        def demote():
            os.setgid(gid)
            os.setuid(uid)

        return demote

    def init(self) -> PrivatePostgres:
        subprocess.run(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
            preexec_fn=self._as_owner(),  # noqa: PLW1509 - demote to the cluster owner before exec
            cwd=self.directory,
        )
        return self

    def start(self, timeout: float = 30) -> PrivatePostgres:
        log = open(self.log, "ab")  # noqa: SIM115 - handed to the child process
        self.process = subprocess.Popen(
            [
                str(self.bin / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.directory),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "max_connections=60",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=self._as_owner(),  # noqa: PLW1509
            cwd=self.directory,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)], capture_output=True
            )
            if ready.returncode == 0:
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited:\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError("postgres did not accept connections in time")

    def crash(self) -> None:
        """Immediate shutdown (SIGQUIT to the postmaster): no checkpoint, crash recovery on the next start."""
        self._signal(signal.SIGQUIT)

    def stop(self) -> None:
        self._signal(signal.SIGINT)  # fast shutdown

    def _signal(self, signum: int) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signum)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def restart(self, pause: float = 2.0) -> None:
        self.crash()
        time.sleep(pause)
        self.restarts += 1
        self.start()

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, database: str, sql: str) -> str:
        result = subprocess.run(
            [
                str(self.bin / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-qAt",
                "-c",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout

    def copy_database_from(self, *, source_url: str, database: str) -> None:
        """A copy of another database (schema and rows), through pg_dump | psql."""
        self.psql("postgres", f'CREATE DATABASE "{database}"')
        dump = subprocess.Popen(
            [str(self.bin / "pg_dump"), "--no-owner", "--no-privileges", source_url], stdout=subprocess.PIPE
        )
        restore = subprocess.run(
            [
                str(self.bin / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
            ],
            stdin=dump.stdout,
            capture_output=True,
        )
        dump.stdout.close()
        dump.wait(timeout=120)
        if dump.returncode or restore.returncode:
            raise RuntimeError(f"copy failed: {restore.stderr.decode(errors='replace')[-3000:]}")

    def cleanup(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.directory)
