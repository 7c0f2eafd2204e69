"""``manage.py evaluate_recommender``: offline evaluation from CSV files, no database needed.

A thin wrapper: arguments and work live in ``recommender.engine.evaluate`` (also runnable as
``python -m recommender.engine.evaluate``), so the command and the module cannot drift.
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from recommender.engine.errors import RecommenderError
from recommender.engine.evaluate import add_arguments, run


class Command(BaseCommand):
    help = (
        "Evaluate recommender algorithms on interaction CSVs (user_id,item_id[,rating,timestamp]): "
        "--train F --test F, or --interactions F --split user-random|temporal; "
        "--algorithm NAME|auto|all; --k K; --json."
    )
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser) -> None:
        add_arguments(parser)

    def handle(self, *args, **options) -> None:
        try:
            output = run(options)
        except (RecommenderError, ValueError, json.JSONDecodeError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(output)
