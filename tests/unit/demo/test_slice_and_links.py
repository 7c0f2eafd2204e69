"""The demo's small pure helpers: slicing the retail file by customer, product URLs both ways."""

from __future__ import annotations

import csv
from pathlib import Path

from core.demo.data import RETAIL_FILE, product_url, retail_slice, sku_from_url

ROOT = Path(__file__).resolve().parents[3]


def test_a_slice_keeps_every_line_of_the_first_customers_and_nothing_else():
    path = ROOT / RETAIL_FILE
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    first: list[str] = []
    for row in rows:
        if row["CustomerID"] and row["CustomerID"] not in first:
            first.append(row["CustomerID"])
    wanted = set(first[:25])
    sliced = list(csv.DictReader(retail_slice(path, 25)))
    assert {r["CustomerID"] for r in sliced} == wanted
    assert sliced == [r for r in rows if r["CustomerID"] in wanted]


def test_no_limit_is_the_whole_file():
    path = ROOT / RETAIL_FILE
    assert retail_slice(path, None).read() == path.read_text(encoding="utf-8")


def test_product_urls_round_trip_odd_skus():
    for sku in ("85123A", "DCGS0003", "15056BL", "gift/0001", "a b"):
        url = product_url(sku)
        assert url.startswith("https://shop.example.com/products/")
        assert sku_from_url(url) == sku
        assert sku_from_url(url + "?utm_source=reachly&utm_medium=email") == sku
    assert sku_from_url("https://shop.example.com/christmas") is None
    assert sku_from_url("https://elsewhere.example.com/products/X") is None
