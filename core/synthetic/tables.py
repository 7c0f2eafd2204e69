"""The generator's output (`Table`: numpy columns named like model attributes) and vectorised helpers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np


@dataclass(frozen=True)
class Table:
    """Rows of one model's table, as equally long numpy columns named like the model's attributes.

    Integers and ids are int64, timestamps datetime64[us] in UTC, text and JSON are UTF-8 bytes
    (`S` dtype), decimals are integers in units of 10**-scale (`scales`), and `nulls` marks NULLs.
    """

    name: str
    columns: dict[str, np.ndarray]
    nulls: dict[str, np.ndarray] = field(default_factory=dict)
    scales: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        sizes = {name: len(values) for name, values in self.columns.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"{self.name}: columns differ in length: {sizes}")
        for name, mask in self.nulls.items():
            if name not in self.columns or mask.dtype != np.bool_ or len(mask) != len(self):
                raise ValueError(f"{self.name}: bad null mask for {name!r}")
        for name in self.scales:
            if name not in self.columns or not np.issubdtype(self.columns[name].dtype, np.integer):
                raise ValueError(f"{self.name}: scaled column {name!r} must hold integers")

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def is_null(self, name: str) -> np.ndarray:
        mask = self.nulls.get(name)
        return mask if mask is not None else np.zeros(len(self), dtype=bool)

    @staticmethod
    def concat(tables: Sequence[Table]) -> Table:
        first = tables[0]
        columns = {name: np.concatenate([t.columns[name] for t in tables]) for name in first.columns}
        nulls = {name: np.concatenate([t.is_null(name) for t in tables]) for name in first.nulls}
        return Table(first.name, columns, nulls, dict(first.scales))


def _to_us(moment: datetime) -> int:
    moment = moment.astimezone(UTC).replace(tzinfo=None)
    return int(np.datetime64(moment, "us").astype(np.int64))


def _ts(us: np.ndarray) -> np.ndarray:
    return np.asarray(us, dtype=np.int64).view("datetime64[us]")


# --- small vectorised helpers --------------------------------------------------------------------
def _words(words: Sequence[str]) -> np.ndarray:
    return np.array([w.encode("utf-8") for w in words], dtype="S")


def _join(*parts) -> np.ndarray:
    """Concatenate byte-string arrays and scalars element-wise."""
    out = parts[0]
    for part in parts[1:]:
        out = np.strings.add(out, part)
    return np.asarray(out)


def _padded(prefix: bytes, numbers: np.ndarray, width: int) -> np.ndarray:
    """Fixed-width identifiers ("SO0000000042"): sortable, and every key of a column the same length."""
    numbers = np.asarray(numbers, dtype=np.int64)
    if not len(numbers):
        return np.zeros(0, dtype=f"S{len(prefix) + width}")
    return _join(prefix, np.strings.zfill(numbers.astype("S"), width))


def _digits(numbers: np.ndarray) -> np.ndarray:
    return np.asarray(numbers, dtype=np.int64).astype("S")


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2… within runs of equal values of an already grouped (sorted) array."""
    n = len(groups)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    lengths = np.diff(np.r_[starts, n])
    return np.arange(n, dtype=np.int64) - np.repeat(starts, lengths)


def _flatten(groups: Sequence[Sequence]) -> tuple[list, np.ndarray, np.ndarray]:
    """Ragged lists as one flat list plus offsets and counts, for vectorised picks per group."""
    flat = [item for group in groups for item in group]
    counts = np.array([len(g) for g in groups], dtype=np.int64)
    offsets = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)
    return flat, offsets, counts


def _pick(rng: np.random.Generator, offsets: np.ndarray, counts: np.ndarray, group: np.ndarray):
    return offsets[group] + (rng.random(len(group)) * counts[group]).astype(np.int64)


def _random_text(rng: np.random.Generator, n: int, width: int, alphabet: bytes) -> np.ndarray:
    table = np.frombuffer(alphabet, dtype=np.uint8)
    codes = table[rng.integers(0, len(table), size=(n, width))]
    return np.ascontiguousarray(codes).view(f"S{width}").ravel()


_HEX = b"0123456789abcdef"
_BASE64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
