"""`python manage.py generate_synthetic`: a deterministic synthetic shop for demos and scale benchmarks."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS
from tqdm import tqdm

from core.synthetic import DEFAULT_END, SyntheticConfig
from customers.synthetic_loader import ExistingDataError, load_synthetic


def _end_date(text: str) -> datetime:
    """Midnight UTC of the given day; `today` trades reproducibility for recent-looking data."""
    day = datetime.now(UTC).date() if text == "today" else date.fromisoformat(text)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Load a synthetic shop (customers, consent, catalogue, orders with returns, events, loyalty) into "
        "empty tables. The same arguments always produce the same rows."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customers", type=int, default=1000)
        parser.add_argument("--products", type=int, default=200)
        parser.add_argument("--orders", type=int, default=5000)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--events",
            type=int,
            default=None,
            help="Browsing events (views, add-to-cart, searches); default: as many as orders. "
            "Each order also gets one purchase event.",
        )
        parser.add_argument("--days", type=int, default=365, help="Length of the order history")
        parser.add_argument(
            "--end-date",
            default=DEFAULT_END.date().isoformat(),
            help="Day the history ends (YYYY-MM-DD, or 'today'); default %(default)s so runs repeat exactly",
        )
        parser.add_argument("--email-domain", default="example.com", help="A reserved domain (example.com…)")
        parser.add_argument(
            "--truncate",
            action="store_true",
            help="Delete every row of the synthetic tables, and of tables referencing them, first",
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bar")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON")
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument(
            "--maintenance-work-mem", default="512MB", help="For rebuilding indexes (PostgreSQL)"
        )

    def handle(self, *args, **options) -> None:
        try:
            config = SyntheticConfig(
                customers=options["customers"],
                products=options["products"],
                orders=options["orders"],
                seed=options["seed"],
                browse_events=options["events"],
                days=options["days"],
                end=_end_date(options["end_date"]),
                email_domain=options["email_domain"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

        bar = None
        if not options["no_progress"]:
            bar = tqdm(total=config.batches, unit="batch", desc="customers", file=sys.stderr, leave=False)

        def on_batch(done: int, total: int) -> None:
            if bar is not None:
                bar.update(done - bar.n)

        def on_phase(text: str) -> None:
            if bar is not None:
                bar.close()
            if not options["json"]:
                self.stderr.write(f"… {text}")

        try:
            summary = load_synthetic(
                config=config,
                truncate=options["truncate"],
                using=options["database"],
                on_batch=on_batch,
                on_phase=on_phase,
                maintenance_work_mem=options["maintenance_work_mem"],
            )
        except ExistingDataError as exc:
            raise CommandError(str(exc)) from exc
        finally:
            if bar is not None:
                bar.close()

        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "config": {**config.summary(), "end": config.end.isoformat()},
                        "database": summary.vendor,
                        "rows": summary.rows,
                        "total_rows": summary.total_rows,
                        "seconds": {k: round(v, 3) for k, v in summary.seconds.items()},
                        "emptied": summary.emptied,
                    },
                    indent=2,
                )
            )
            return
        if summary.emptied:
            self.stdout.write("Emptied first: " + ", ".join(summary.emptied))
        width = max(len(name) for name in summary.rows)
        for name, rows in summary.rows.items():
            self.stdout.write(f"  {name:<{width}}  {rows:>12,}")
        seconds = summary.seconds
        rate = summary.total_rows / seconds["total"] if seconds["total"] else 0
        phases = ", ".join(f"{k} {v:.1f}s" for k, v in seconds.items() if k != "total")
        self.stdout.write(
            self.style.SUCCESS(
                f"Loaded {summary.total_rows:,} rows into {summary.vendor} in {seconds['total']:.1f}s "
                f"({rate:,.0f} rows/s; {phases})."
            )
        )
