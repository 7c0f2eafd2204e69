"""`python manage.py demo` (`make demo`): the whole product on the retail sample, in a few minutes."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from core.demo.context import DEFAULT_SEED, DemoOptions
from core.demo.runner import DemoRefused, run_demo


class Command(BaseCommand):
    help = (
        "Run the end-to-end demo on a fresh database: import, loyalty, recommenders, RFM/clusters/CLV, "
        "an A/B email campaign with simulated engagement, the test's analysis; writes out/report.html "
        "and out/demo-report.json."
    )
    requires_migrations_checks = False

    def add_arguments(self, parser):
        parser.add_argument("--out", type=Path, default=None, help="Output directory (default: out/)")
        parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
        parser.add_argument(
            "--limit-customers", type=int, default=None, help="Only the first N customers of the sample"
        )
        parser.add_argument(
            "--fast", action="store_true", help="Skip parameter tuning and use smaller synthetic data (tests)"
        )
        parser.add_argument("--no-progress", action="store_true", help="No progress bars")

    def handle(self, *args, out, seed, limit_customers, fast, no_progress, **options):
        if limit_customers is not None and limit_customers < 20:
            raise CommandError("--limit-customers must be at least 20 (an A/B test needs customers)")
        options_ = DemoOptions(
            out=(out or Path(settings.BASE_DIR) / "out").resolve(),
            seed=seed,
            limit_customers=limit_customers,
            fast=fast,
            progress=not no_progress,
        )
        try:
            run_demo(options_, stdout=self.stdout)
        except DemoRefused as exc:
            raise CommandError(str(exc)) from exc
