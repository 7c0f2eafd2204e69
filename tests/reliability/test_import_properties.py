"""Property tests (hypothesis) for the CSV importers, on real PostgreSQL.

Whatever the bytes or rows: the importer returns a report (never raises), every error names a line,
a field and a message, and a file that is not committed leaves every table exactly as it was.
"""

from __future__ import annotations

import csv
import io
import os

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customers.importers import import_file
from customers.importers.retail import RETAIL_COLUMNS
from customers.importers.standard import (
    CONSENT_COLUMNS,
    CUSTOMER_COLUMNS,
    LINE_COLUMNS,
    ORDER_COLUMNS,
    PRODUCT_COLUMNS,
)

pytestmark = pytest.mark.django_db

TABLES = [
    "customers_customer",
    "customers_consentrecord",
    "customers_customerconsent",
    "customers_order",
    "customers_orderline",
    "catalog_product",
    "webhooks_outboxmessage",
]
COLUMNS = {
    "customers": [*CUSTOMER_COLUMNS, *CONSENT_COLUMNS, "attr_plan"],
    "products": [*PRODUCT_COLUMNS, "attr_colour"],
    "orders": [*ORDER_COLUMNS, *LINE_COLUMNS],
    "retail": list(RETAIL_COLUMNS),
}
PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("IMPORT_PROPERTY_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=not os.environ.get("IMPORT_PROPERTY_EXAMPLES"),
)

# Cells that look almost right: the values importers parse, and their near misses.
NEAR_MISSES = st.sampled_from(
    [
        "",
        " ",
        "a1",
        "a1",
        "ann@example.com",
        "ann@",
        "@example.com",
        "ann@xn--bcher-kva.example",
        "ann@bücher.example",
        "שלום",
        "\u202eevil",
        "granted",
        "withdrawn",
        "maybe",
        "GB",
        "Atlantis",
        "Europe/London",
        "Mars/Olympus",
        "en-GB",
        "9.99",
        "-1",
        "0",
        "1e999",
        "NaN",
        "Infinity",
        "-0.00",
        "99999999999999999999",
        "1",
        "3",
        "true",
        "yes",
        "2010-12-01 08:26:00",
        "2026-02-30T10:00:00Z",
        "2026-01-01T10:00:00+14:00",
        "SKU1",
        "POST",
        "C536383",
        "536365",
        "17850.0",
        "sale",
        "return",
        "cancellation",
        "x" * 300,
        "\x00",
        "a\r\nb",
        '"quoted"',
        "https://shop.example.com/p/1",
        "javascript:alert(1)",
    ]
)
CELL = st.one_of(NEAR_MISSES, st.text(max_size=20))


def snapshot() -> dict[str, int]:
    with connection.cursor() as cursor:
        counts = {}
        for table in TABLES:
            cursor.execute(f'SELECT count(*) FROM "{table}"')  # noqa: S608
            counts[table] = cursor.fetchone()[0]
        return counts


def csv_file(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8", errors="surrogatepass")


def check_import(data: bytes, kind: str, partial: bool) -> None:
    with transaction.atomic():
        before = snapshot()
        report = import_file(
            io.BytesIO(data),
            kind="" if kind == "retail" else kind,
            file_format="retail" if kind == "retail" else "standard",
            partial=partial,
        )
        after = snapshot()
        body = report.as_dict()
        for error in body["errors"]:
            assert isinstance(error["line"], int) and error["line"] >= 1, error
            assert isinstance(error["field"], str) and error["field"], error
            assert isinstance(error["message"], str) and error["message"].strip(), error
        if not report.committed:
            assert after == before, f"half-written: {before} -> {after}; {body['errors'][:5]}"
            for name in ("customers", "products", "orders"):
                if name in body:
                    assert body[name]["created"] == body[name]["updated"] == 0
        if report.committed and not partial:
            assert body["errors"] == []
        transaction.set_rollback(True)  # each example starts from the same database


@pytest.mark.parametrize("kind", ["customers", "products", "orders", "retail"])
@PROPERTY_SETTINGS
@given(data=st.binary(max_size=400), partial=st.booleans())
def test_arbitrary_bytes_never_crash_an_importer(kind, data, partial):
    check_import(data, kind, partial)


@pytest.mark.parametrize("kind", ["customers", "products", "orders", "retail"])
@PROPERTY_SETTINGS
@given(data=st.data(), partial=st.booleans())
def test_arbitrary_rows_give_a_row_report_and_nothing_half_written(kind, data, partial):
    columns = COLUMNS[kind]
    header = data.draw(
        st.one_of(
            st.just(columns),
            st.lists(st.sampled_from([*columns, "unknown", ""]), min_size=1, max_size=len(columns) + 2),
        ),
        label="header",
    )
    width = st.integers(min_value=max(len(header) - 1, 0), max_value=len(header) + 1)
    rows = data.draw(
        st.lists(width.flatmap(lambda n: st.lists(CELL, min_size=n, max_size=n)), max_size=8), label="rows"
    )
    check_import(csv_file(header, rows), kind, partial)


def test_known_breakages_are_reported_by_line():
    cases = {
        b"external_id,email\nx1,\xff\xfe@example.com\n": (2, "Not UTF-8"),
        b"external_id,email\n" + b"x" * 200_000 + b",a@example.com\n": (1, "Not readable as CSV"),
        b"external_id,external_id\na,b\n": (1, "named more than once"),
        b"external_id,email\na,b@example.com\nc,d@example.com,extra\n": (3, "more cell(s) than the header"),
    }
    for data, (line, message) in cases.items():
        with transaction.atomic():
            report = import_file(io.BytesIO(data), kind="customers")
            assert not report.committed
            assert [(e.line, e.field) for e in report.errors] == [(line, "file")]
            assert message in report.errors[0].message
            transaction.set_rollback(True)
