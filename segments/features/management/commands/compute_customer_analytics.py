"""`python manage.py compute_customer_analytics`: features + RFM, clusters, churn and CLV, now.

The same steps the nightly task chains, run in this process (for the demo and for operators);
`--json` prints one object with each run's state, size and figures.
"""

from __future__ import annotations

import json
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from segments.features import services

STEPS = ("features", "clusters", "clv")


class Command(BaseCommand):
    help = "Recompute per-customer features, RFM groups, clusters, churn probability and CLV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--as-of", default=None, help="End of the order history (ISO date or time; default now)"
        )
        parser.add_argument(
            "--steps", default=",".join(STEPS), help=f"Comma-separated subset of {', '.join(STEPS)}"
        )
        parser.add_argument("--json", action="store_true", help="Print one JSON object")

    def handle(self, *args, **options):
        steps = [s.strip() for s in options["steps"].split(",") if s.strip()]
        unknown = sorted(set(steps) - set(STEPS))
        if unknown or not steps:
            raise CommandError(
                f"unknown steps {', '.join(unknown) or '(none)'}; choose from {', '.join(STEPS)}"
            )
        as_of = None
        if options["as_of"]:
            try:
                as_of = datetime.fromisoformat(options["as_of"])
            except ValueError as exc:
                raise CommandError(f"--as-of: {exc}") from exc
            if timezone.is_naive(as_of):
                as_of = timezone.make_aware(as_of)
        runs = {}
        for step in STEPS:
            if step not in steps:
                continue
            if step == "features":
                runs[step] = services.compute_features(as_of=as_of)
            elif step == "clusters":
                runs[step] = services.compute_clusters()
            else:
                runs[step] = services.compute_clv(as_of=as_of)
        report = {
            step: {
                "state": run.state,
                "customers": run.customers,
                "seconds": run.seconds,
                "error": run.error,
                **({"k": run.summary.get("k")} if step == "clusters" else {}),
                **(
                    {"bgnbd": run.summary.get("bgnbd"), "gamma_gamma": run.summary.get("gamma_gamma")}
                    if step == "clv"
                    else {}
                ),
            }
            for step, run in runs.items()
        }
        if options["json"]:
            self.stdout.write(json.dumps(report, default=str))
        else:
            for step, item in report.items():
                line = (
                    f"{step}: {item['state']}, {item['customers']} customers in {item['seconds'] or 0:.1f} s"
                )
                self.stdout.write(line + (f" ({item['error']})" if item["error"] else ""))
        if any(run.state != "succeeded" for run in runs.values()):
            # A model that cannot be fitted is reported, not an error of the command.
            self.stderr.write("some steps did not succeed; see the errors above")
