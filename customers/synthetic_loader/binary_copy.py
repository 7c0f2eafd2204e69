"""PostgreSQL's binary COPY format, built straight from numpy columns.

Formatting sixty million rows as text in Python would cost more than PostgreSQL takes to store
them; laying each column out as big-endian bytes with numpy costs a few array operations.
"""

from __future__ import annotations

import struct

import numpy as np

from core.synthetic import Table
from customers.synthetic_loader.schema import ColumnSpec, as_bytes

PG_EPOCH_US = 946_684_800 * 1_000_000  # 2000-01-01, the zero of PostgreSQL's binary timestamps


def _field_payload(
    spec: ColumnSpec, values: np.ndarray, scale_in: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Bytes of one column in PostgreSQL's binary format: an (n, width) uint8 matrix and, for
    variable-width values, each row's length (None when every row uses the full width)."""
    n = len(values)
    kind = spec.kind
    if kind in ("int8", "int4", "int2"):
        dtype = {"int8": ">i8", "int4": ">i4", "int2": ">i2"}[kind]
        info = np.iinfo(dtype)
        ints = np.asarray(values, dtype=np.int64)
        if n and (ints.min() < info.min or ints.max() > info.max):
            raise OverflowError(f"{spec.attname} does not fit a PostgreSQL {kind}")
        return ints.astype(dtype).view(np.uint8).reshape(n, -1), None
    if kind == "bool":
        return np.asarray(values, dtype=bool).astype(np.uint8).reshape(n, 1), None
    if kind == "timestamptz":
        us = np.asarray(values).astype("datetime64[us]").view(np.int64) - PG_EPOCH_US
        return us.astype(">i8").view(np.uint8).reshape(n, 8), None
    if kind == "numeric":
        return _numeric_payload(
            np.asarray(values, dtype=np.int64) * 10 ** (spec.scale - scale_in), spec.scale
        ), None
    if kind == "inet":
        addresses = np.asarray(values, dtype=np.int64)
        out = np.empty((n, 8), dtype=np.uint8)
        out[:, :4] = (2, 32, 0, 4)  # AF_INET, 32-bit mask, not CIDR, 4 address bytes
        out[:, 4:] = addresses.astype(">u4").view(np.uint8).reshape(n, 4)
        return out, None
    text = as_bytes(values)
    if kind == "jsonb":
        text = np.strings.add(b"\x01", text)  # jsonb's binary format: a version byte, then the text
    width = text.dtype.itemsize
    lengths = np.strings.str_len(text).astype(np.int64)
    matrix = text.view(np.uint8).reshape(n, width)
    return matrix, (None if n and lengths.min() == width else lengths)


def _numeric_payload(units: np.ndarray, scale: int) -> np.ndarray:
    """NUMERIC as four base-10000 digits with weight 2: fixed width, any value below 10**12.

    PostgreSQL strips the leading and trailing zero digits when it stores the value, so a fixed
    layout costs nothing and lets every row of a column share one shape.
    """
    if scale > 4:
        raise ValueError("numeric columns with more than 4 decimal places are not supported")
    n = len(units)
    magnitude = np.abs(units)
    whole, frac = np.divmod(magnitude, 10**scale)
    if n and whole.max() >= 10**12:
        raise OverflowError("numeric value too large for the synthetic loader")
    out = np.empty((n, 8), dtype=">i2")
    out[:, 0] = 4  # ndigits
    out[:, 1] = 2  # weight of the first digit: 10000**2
    out[:, 2] = np.where(units < 0, 0x4000, 0x0000)
    out[:, 3] = scale
    out[:, 4] = whole // 10**8
    out[:, 5] = (whole // 10**4) % 10**4
    out[:, 6] = whole % 10**4
    out[:, 7] = frac * 10 ** (4 - scale)
    return out.view(np.uint8).reshape(n, 16)


def encode_binary_rows(table: Table, specs: list[ColumnSpec]) -> bytes:
    """The tuples of a binary COPY stream (without header and trailer).

    Each row is laid out at fixed offsets in a padded matrix, then the padding of
    variable-width and NULL fields is dropped with one boolean mask: no Python loop per row.
    """
    n = len(table)
    parts = []
    for spec in specs:
        matrix, lengths = _field_payload(spec, table.columns[spec.attname], table.scales.get(spec.attname, 0))
        nulls = table.is_null(spec.attname)
        if nulls.any():
            lengths = np.full(n, matrix.shape[1], dtype=np.int64) if lengths is None else lengths.copy()
            lengths[nulls] = -1
        parts.append((matrix, lengths))
    width = 2 + sum(4 + m.shape[1] for m, _ in parts)
    rows = np.empty((n, width), dtype=np.uint8)
    rows[:, 0:2] = np.frombuffer(struct.pack("!h", len(specs)), dtype=np.uint8)
    keep = None
    at = 2
    for matrix, lengths in parts:
        w = matrix.shape[1]
        if lengths is None:
            rows[:, at : at + 4] = np.frombuffer(struct.pack("!i", w), dtype=np.uint8)
        else:
            rows[:, at : at + 4] = lengths.astype(">i4").view(np.uint8).reshape(n, 4)
        rows[:, at + 4 : at + 4 + w] = matrix
        if lengths is not None:
            if keep is None:
                keep = np.ones((n, width), dtype=bool)
            keep[:, at + 4 : at + 4 + w] = np.arange(w) < np.maximum(lengths, 0)[:, None]
        at += 4 + w
    return rows.tobytes() if keep is None else rows[keep].tobytes()
