import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from catalog.models import Product
from customers.importers import import_file
from customers.models import ConsentRecord, Customer, Order, OrderLine
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db
RETAIL = Path(__file__).resolve().parents[3] / "data" / "online_retail" / "online_retail_dec2010.csv"


def csv_bytes(text: str) -> io.BytesIO:
    return io.BytesIO(text.strip().encode("utf-8") + b"\n")


def test_retail_file_imports_as_is_and_twice_changes_nothing(capsys):
    call_command("import_csv", str(RETAIL), "--format", "retail", "--demo-contacts", "--json")
    report = json.loads(capsys.readouterr().out)
    assert report["committed"] and report["errors"] == []
    assert report["dropped"] == {
        "non-product stock code BANKCHARGES": 1,
        "non-product stock code C2": 5,
        "non-product stock code D": 4,
        "non-product stock code M": 25,
        "non-product stock code POST": 41,
    }
    assert report["customers"]["created"] == Customer.objects.count() == 755
    assert report["products"]["created"] == Product.objects.count() == 2221
    assert report["orders"]["created"] == Order.objects.count() == 1185
    assert not Product.objects.filter(sku__in=["POST", "M", "D", "C2", "BANKCHARGES"]).exists()
    cancelled = Order.objects.get(external_id="C536383")
    assert cancelled.status == "cancelled" and cancelled.total < 0
    assert OrderLine.objects.filter(kind="cancellation").count() == 458 - 7
    sample = Customer.objects.get(external_id="17850")
    assert (sample.email, sample.country) == ("customer-17850@example.com", "United Kingdom")
    assert ConsentRecord.objects.filter(source="demo").count() == 755
    assert Product.objects.get(sku="85123A").name == "WHITE HANGING HEART T LIGHT HOLDER"

    call_command("import_retail", str(RETAIL), "--demo-contacts", "--json")
    again = json.loads(capsys.readouterr().out)
    assert (
        again["customers"]["unchanged"],
        again["products"]["unchanged"],
        again["orders"]["unchanged"],
    ) == (755, 2221, 1185)
    assert ConsentRecord.objects.count() == 755


def test_customer_csv_is_all_or_nothing_with_line_numbers():
    text = """
external_id,email,country,consent_email,attr_plan
a1,a1@example.com,GB,granted,gold
a2,broken,FR,,
a3,a3@example.com,Atlantis,,
"""
    report = import_file(csv_bytes(text), kind="customers")
    assert not report.committed and Customer.objects.count() == 0
    assert [e.as_dict() for e in report.errors] == [
        {"line": 3, "field": "email", "message": "Enter a valid email address."},
        {
            "line": 4,
            "field": "country",
            "message": "Unknown country; use an ISO 3166 code such as GB or a country name.",
        },
    ]
    partial = import_file(csv_bytes(text), kind="customers", partial=True)
    assert partial.committed and partial.results["customers"].created == 1
    customer = Customer.objects.get()
    assert customer.attributes == {"plan": "gold"}
    assert customer.consents.get().status == "granted"


def test_unknown_column_is_reported():
    report = import_file(csv_bytes("external_id,emial\nx,x@example.com"), kind="customers")
    assert [(e.line, e.field) for e in report.errors] == [(1, "emial")]


def test_products_and_orders_csv():
    CustomerFactory(external_id="c1")
    products = "sku,name,price,category,stock\nP1,Mug,4.50,Home > Mugs,3\nP2,Cup,2.00,,\n"
    assert import_file(csv_bytes(products), kind="products").results["products"].created == 2
    orders = """
order_id,customer,placed_at,sku,quantity,unit_price
o1,c1,2024-01-01T10:00:00Z,P1,2,4.50
o1,c1,2024-01-01T10:00:00Z,P2,1,2.00
o2,c1,2024-01-02T10:00:00Z,P1,-1,4.50
o3,ghost,2024-01-02T10:00:00Z,P1,1,4.50
"""
    report = import_file(csv_bytes(orders), kind="orders", partial=True)
    assert report.results["orders"].created == 2
    assert [(e.line, e.field) for e in report.errors] == [(5, "customer")]
    assert Order.objects.get(external_id="o1").lines.count() == 2
    assert Order.objects.get(external_id="o2").lines.get().kind == "return"


def test_command_fails_loudly_when_nothing_is_imported(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("external_id,email\nx,nope\n")
    with pytest.raises(CommandError, match="Nothing imported"):
        call_command("import_csv", str(bad), "--kind", "customers")
    assert "line 2: email" in capsys.readouterr().out
