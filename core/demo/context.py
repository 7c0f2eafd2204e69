"""What every stage shares: options, the output directory, the report being built, progress output."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

DEFAULT_SEED = 2026


@dataclass
class DemoOptions:
    out: Path
    seed: int = DEFAULT_SEED
    limit_customers: int | None = None
    fast: bool = False
    progress: bool = True


@dataclass
class DemoContext:
    options: DemoOptions
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    #: Deterministic results: written to demo-report.json.
    report: dict[str, Any] = field(default_factory=dict)
    #: Things that depend on the machine or the clock (timings): only printed and shown in the HTML.
    timings: dict[str, Any] = field(default_factory=dict)
    #: Plots and tables for the HTML report only.
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return self.options.out

    @property
    def seed(self) -> int:
        return self.options.seed

    @property
    def fast(self) -> bool:
        return self.options.fast

    def say(self, text: str = "") -> None:
        with tqdm.external_write_mode(file=sys.stderr):
            self.stdout.write(text + "\n")
            self.stdout.flush()

    def progress(self, iterable: Iterable, *, total: int | None = None, desc: str = "") -> Iterator:
        """A progress bar on stderr (tqdm); plain iteration when progress is off."""
        if not self.options.progress:
            yield from iterable
            return
        yield from tqdm(iterable, total=total, desc=desc, leave=False, dynamic_ncols=True, file=sys.stderr)


def money(value) -> str:
    """A sum of money as text with two decimals (SQLite's sums carry a long tail of zeros)."""
    from decimal import Decimal

    return str(Decimal(str(value or 0)).quantize(Decimal("0.01")))


def rounded(value: float | None, digits: int = 6) -> float | None:
    """Floats for the JSON: rounded so that the last bits of a BLAS sum never change the file."""
    if value is None:
        return None
    return round(float(value), digits)
