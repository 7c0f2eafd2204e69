"""Runs the stages in order on a fresh database and writes the report."""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TextIO

from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections
from tqdm import tqdm

from core.demo.context import DemoContext, DemoOptions

DEMO_USER, DEMO_PASSWORD = "demo", "demo-pass-2026"
#: What the demo writes into the output directory (and removes before a run; nothing else there).
OUTPUTS = ("mail", "eml", "media", "report.html", "demo-report.json", "demo-timings.json")


class DemoRefused(RuntimeError):
    pass


def _database_file() -> Path | None:
    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("sqlite3"):
        return None
    name = str(db["NAME"])
    return None if name in ("", ":memory:") else Path(name).resolve()


def reset_outputs(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        target = out / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    (out / "mail").mkdir()
    (out / "eml").mkdir()


def fresh_database(out: Path) -> str:
    """An empty, migrated database. A SQLite file inside the output directory is recreated; any other
    database must be empty, since the demo writes its own customers, campaigns and models."""
    path = _database_file()
    connections.close_all()
    if path is not None and out in path.parents:
        for suffix in ("", "-wal", "-shm", "-journal"):
            candidate = path.with_name(path.name + suffix)
            if candidate.exists():
                candidate.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0, interactive=False)
    from customers.models import Customer

    if Customer.all_objects.exists():
        raise DemoRefused(
            f"The database {settings.DATABASES['default']['NAME']} already has customers. The demo needs an "
            "empty database: run it on the embedded default (SQLite in out/), which it recreates each time."
        )
    call_command("ensure_demo_login", username=DEMO_USER, password=DEMO_PASSWORD, verbosity=0, stdout=_Null())
    return f"{connection.vendor} ({path if path is not None else settings.DATABASES['default']['NAME']})"


class _Null:
    def write(self, *_args, **_kwargs) -> None:
        pass

    def flush(self) -> None:
        pass


def run_demo(options: DemoOptions, *, stdout: TextIO) -> DemoContext:
    from core.demo import analysis, analytics, campaign, data, engagement, recommend, report

    ctx = DemoContext(options=options, stdout=stdout)
    for name in ("celery", "campaigns", "customers", "recommender", "segments", "loyalty"):
        logging.getLogger(name).setLevel(logging.WARNING)  # eager tasks log every call at INFO
    logging.getLogger("kombu").setLevel(logging.ERROR)  # the in-memory broker of eager mode has no host
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    reset_outputs(options.out)
    settings.EMAIL_FILE_PATH = str(options.out / "mail")
    settings.MEDIA_ROOT = str(options.out / "media")  # model artifacts, next to the database they belong to
    database = fresh_database(options.out)
    ctx.extras["database_file"] = _database_file()
    ctx.say(f"Reachly demo: seed {options.seed}, database {database}, output {options.out}")
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        ctx.say("  (tasks go to the workers of CELERY_BROKER_URL; the demo waits for them)")
    stages = [
        ("1/7 Import the retail sample and build the loyalty program", data.run),
        ("2/7 Evaluate every recommender, train the chosen one, score every customer", recommend.run),
        ("3/7 RFM groups, clusters, lifetime value and segments", analytics.run),
        ("4/7 Launch the A/B email campaign", campaign.run),
        ("5/7 Simulate opens, clicks and orders", engagement.run),
        ("6/7 Analyse the test", analysis.run),
    ]
    started = time.perf_counter()
    overall = tqdm(
        total=len(stages) + 1, desc="demo", unit="stage", file=sys.stderr, disable=not options.progress
    )
    for title, stage in stages:
        ctx.say(title)
        overall.set_description(title[4:].split(",")[0][:40])
        begin = time.perf_counter()
        stage(ctx)
        ctx.timings.setdefault("stages", {})[title[4:]] = round(time.perf_counter() - begin, 2)
        overall.update()
    ctx.timings["total_seconds"] = round(time.perf_counter() - started, 1)
    ctx.say("7/7 Write the report")
    report.run(ctx)
    overall.update()
    overall.close()
    report.write_timings(ctx)
    report.print_summary(ctx)
    return ctx
