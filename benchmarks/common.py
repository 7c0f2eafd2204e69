"""What every benchmark script shares: timing, JSON output, machine facts, a scratch database.

A figure is only worth recording with the machine it came from and the load that machine was
under, so `machine_info()` goes into every result. Benchmarks that write to PostgreSQL run in a
scratch database created for the run and dropped after it, never in a database someone uses.

    from benchmarks.common import database_info, emit, machine_info, scratch_database, setup_django, timed

    setup_django()  # config.settings.test unless DJANGO_SETTINGS_MODULE says otherwise
    with scratch_database("bench_rfm"):  # created, migrated, Django pointed at it, dropped at the end
        with timed("rfm") as rfm:
            ...
        emit({"benchmark": "rfm", "seconds": rfm.seconds, "machine": machine_info(),
              "database": database_info()}, name="rfm")  # stdout and out/benchmarks/rfm.json

Run a script from the repository root: `python -m benchmarks.<script>`; DATABASE_URL names the
server (its database part is ignored by `scratch_database`).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "out" / "benchmarks"
SCRATCH_NAME = re.compile(r"^(bench|scratch)_[a-z0-9_]{1,50}$")


# --- timing --------------------------------------------------------------------------------------
@dataclass
class Timing:
    label: str
    seconds: float = 0.0  # wall clock
    cpu_seconds: float = 0.0  # this process only: the database's work is not in it

    def as_dict(self) -> dict[str, float]:
        return {"seconds": round(self.seconds, 4), "cpu_seconds": round(self.cpu_seconds, 4)}


@contextlib.contextmanager
def timed(label: str = "") -> Iterator[Timing]:
    """Wall and CPU time of the block; the numbers are filled in when the block ends."""
    timing = Timing(label)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield timing
    finally:
        timing.seconds = time.perf_counter() - wall
        timing.cpu_seconds = time.process_time() - cpu


def peak_memory_mb() -> float:
    """Largest resident set of this process so far (Linux reports kilobytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / 1024 if sys.platform != "darwin" else peak / 2**20, 1)


# --- output --------------------------------------------------------------------------------------
def emit(result: dict[str, Any], *, name: str | None = None, out_dir: Path | None = None) -> dict[str, Any]:
    """Print the result as one JSON document and, given a name, keep a copy in out/benchmarks/."""
    result = {"recorded_at": datetime.now(UTC).isoformat(timespec="seconds"), **result}
    text = json.dumps(result, indent=2, default=str)
    print(text, flush=True)
    if name:
        directory = out_dir or OUT_DIR
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{name}.json").write_text(text + "\n")
    return result


# --- the machine ---------------------------------------------------------------------------------
def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    return None


def _git_commit() -> str | None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
        )
        if done.returncode == 0:
            return done.stdout.strip()
    return None


def _blas() -> list[dict[str, Any]]:
    with contextlib.suppress(Exception):
        from threadpoolctl import threadpool_info

        return [
            {"library": p.get("internal_api"), "threads": p.get("num_threads"), "version": p.get("version")}
            for p in threadpool_info()
        ]
    return []


def machine_info() -> dict[str, Any]:
    """The facts a reader needs to compare a figure: CPU, cores we may use, memory, load, versions."""
    import numpy

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "memory_gb": _memory_gb(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "blas": _blas(),
        "git_commit": _git_commit(),
    }


# --- Django and the database ---------------------------------------------------------------------
def setup_django(settings_module: str = "config.settings.test") -> None:
    """Configure Django for a script run from the repository root."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def database_info(using: str = "default") -> dict[str, Any]:
    """The server and the settings that move bulk-load and query figures."""
    from django.db import connections

    connection = connections[using]
    info: dict[str, Any] = {"vendor": connection.vendor, "name": connection.settings_dict["NAME"]}
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            info["server_version"] = cursor.fetchone()[0]
            for setting in (
                "shared_buffers",
                "work_mem",
                "maintenance_work_mem",
                "max_wal_size",
                "synchronous_commit",
            ):
                cursor.execute(f"SHOW {setting}")
                info[setting] = cursor.fetchone()[0]
    return info


def _server_connection(settings_dict: dict[str, Any]):
    """psycopg2 connection to the server's maintenance database, in autocommit for CREATE/DROP DATABASE."""
    import psycopg2

    connection = psycopg2.connect(
        dbname="postgres",
        user=settings_dict.get("USER") or None,
        password=settings_dict.get("PASSWORD") or None,
        host=settings_dict.get("HOST") or None,
        port=settings_dict.get("PORT") or None,
    )
    connection.autocommit = True
    return connection


def _drop(settings_dict: dict[str, Any], name: str) -> None:
    with contextlib.closing(_server_connection(settings_dict)) as server, server.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def scratch_database(
    name: str, *, migrate: bool = True, keep: bool = False, using: str = "default"
) -> Iterator[str]:
    """Create database `name` on the configured PostgreSQL server, point Django at it, drop it afterwards.

    Only names starting with `bench_` or `scratch_` are accepted: the database is dropped first
    if a crashed run left it behind, so the name must never be one that holds real data.
    `keep=True` leaves it in place for inspection.
    """
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    if not SCRATCH_NAME.match(name):
        raise ValueError(f"Scratch database names start with bench_ or scratch_ (lowercase): {name!r}")
    settings_dict = connections[using].settings_dict
    if connections[using].vendor != "postgresql":
        raise RuntimeError("scratch_database needs PostgreSQL: set DATABASE_URL to a postgres:// URL")
    previous = settings_dict["NAME"]
    _drop(settings_dict, name)
    with contextlib.closing(_server_connection(settings_dict)) as server, server.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    connections.close_all()
    settings_dict["NAME"] = name
    settings.DATABASES[using]["NAME"] = name
    try:
        if migrate:
            call_command("migrate", database=using, interactive=False, verbosity=0)
        yield name
    finally:
        connections.close_all()
        settings_dict["NAME"] = previous
        settings.DATABASES[using]["NAME"] = previous
        if not keep:
            _drop(settings_dict, name)
