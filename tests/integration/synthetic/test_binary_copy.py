"""The binary COPY encoder against PostgreSQL itself: every kind, edge values and NULLs round-trip."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from io import BytesIO

import numpy as np
import pytest
from django.db import connection

from core.synthetic import Table
from customers.synthetic_loader import COPY_HEADER, COPY_TRAILER, ColumnSpec, encode_binary_rows

pytestmark = pytest.mark.django_db

TIMES = np.array(
    ["1999-12-31T23:59:59.999999", "2000-01-01T00:00:00", "2026-03-29T01:30:00.5", "1970-01-01T00:00:00"],
    dtype="datetime64[us]",
)


def round_trip(table: Table, specs: list[ColumnSpec], ddl: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE probe ({ddl}) ON COMMIT DROP")
        columns = ", ".join(s.column for s in specs)
        payload = COPY_HEADER + encode_binary_rows(table, specs) + COPY_TRAILER
        cursor.cursor.copy_expert(f"COPY probe ({columns}) FROM STDIN WITH (FORMAT binary)", BytesIO(payload))
        cursor.execute(f"SELECT {columns} FROM probe ORDER BY a")  # noqa: S608
        rows = cursor.fetchall()
        cursor.execute("DROP TABLE probe")
        return rows


def test_every_column_kind_round_trips():
    table = Table(
        "probe",
        {
            "a": np.array([1, 2, 3, 4]),
            "big": np.array([-(2**63), 2**63 - 1, 0, 42]),
            "small": np.array([-32768, 32767, 0, 7]),
            "flag": np.array([True, False, True, False]),
            "at": TIMES,
            "money": np.array([-123456, 0, 1, 99_999_999_999_999]),  # cents: -1234.56 … 999999999999.99
            "rate": np.array([1000, 1250, 5, 999_999]),  # scale 3
            "label": np.array(["Zoë Ünal ✓", "", "plain", 'tab-free, quote " and back\\slash']),
            "raw": np.array([b"x" * 300, b"", b"a", b"bc"]),
            "doc": np.array([b'{"b": [1, 2], "a": "\xc3\xa9"}', b"{}", b"[]", b'"text"']),
            "ip": np.array([0xC0000201, 0, 0xFFFFFFFF, 0xCB007180]),
        },
        nulls={
            "small": np.array([False, False, True, False]),
            "at": np.array([False, False, False, True]),
            "label": np.array([False, False, False, True]),
            "doc": np.array([False, True, False, False]),
            "ip": np.array([False, True, False, False]),
        },
        scales={"money": 2, "rate": 3},
    )
    specs = [
        ColumnSpec("a", "a", "int4"),
        ColumnSpec("big", "big", "int8"),
        ColumnSpec("small", "small", "int2"),
        ColumnSpec("flag", "flag", "bool"),
        ColumnSpec("at", "at", "timestamptz"),
        ColumnSpec("money", "money", "numeric", 2),
        ColumnSpec("rate", "rate", "numeric", 3),
        ColumnSpec("label", "label", "text"),
        ColumnSpec("raw", "raw", "text"),
        ColumnSpec("doc", "doc", "jsonb"),
        ColumnSpec("ip", "ip", "inet"),
    ]
    rows = round_trip(
        table,
        specs,
        "a integer, big bigint, small smallint, flag boolean, at timestamptz, money numeric(14, 2), "
        "rate numeric(8, 3), label varchar(50), raw text, doc jsonb, ip inet",
    )
    assert [r[1] for r in rows] == [-(2**63), 2**63 - 1, 0, 42]
    assert [r[2] for r in rows] == [-32768, 32767, None, 7]
    assert [r[3] for r in rows] == [True, False, True, False]
    assert rows[0][4] == datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert rows[2][4] == datetime(2026, 3, 29, 1, 30, 0, 500000, tzinfo=UTC)
    assert rows[3][4] is None
    assert [r[5] for r in rows] == [
        Decimal("-1234.56"),
        Decimal("0.00"),
        Decimal("0.01"),
        Decimal("999999999999.99"),
    ]
    assert [r[6] for r in rows] == [Decimal("1.000"), Decimal("1.250"), Decimal("0.005"), Decimal("999.999")]
    assert [r[7] for r in rows] == ["Zoë Ünal ✓", "", "plain", None]
    assert [r[8] for r in rows] == ["x" * 300, "", "a", "bc"]
    # Django's connection hands jsonb back as text; the stored documents are what was sent.
    assert [None if r[9] is None else json.loads(r[9]) for r in rows] == [
        {"a": "é", "b": [1, 2]},
        None,
        [],
        "text",
    ]
    assert [r[10] for r in rows] == ["192.0.2.1", None, "255.255.255.255", "203.0.113.128"]


def test_numbers_out_of_range_are_refused_before_postgresql_sees_them():
    table = Table("probe", {"a": np.array([40_000])})
    with pytest.raises(OverflowError, match="int2"):
        encode_binary_rows(table, [ColumnSpec("a", "a", "int2")])
    money = Table("probe", {"m": np.array([10**15])}, scales={"m": 2})
    with pytest.raises(OverflowError, match="too large"):
        encode_binary_rows(money, [ColumnSpec("m", "m", "numeric", 2)])


def test_a_lower_scale_is_widened_to_the_column_scale():
    table = Table("probe", {"a": np.array([1, 2]), "m": np.array([125, -3])}, scales={"m": 1})
    rows = round_trip(
        table,
        [ColumnSpec("a", "a", "int4"), ColumnSpec("m", "m", "numeric", 2)],
        "a integer, m numeric(8, 2)",
    )
    assert [r[1] for r in rows] == [Decimal("12.50"), Decimal("-0.30")]
