"""Entry point of ``python -m experiments.stats`` (see experiments.stats.cli)."""

from experiments.stats.cli import main

raise SystemExit(main())
