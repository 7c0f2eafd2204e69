import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from access.models import ApiKey, AuditEntry
from customers.models import Customer
from customers.services import record_consent
from loyalty.services import award_points
from tests.factories.catalog import ProductFactory
from tests.factories.customers import CustomerFactory, make_order
from tests.factories.loyalty import MembershipFactory, TierFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client, admin_user):
    client.force_login(admin_user)
    return client


def test_customer_list_search_and_filters(staff):
    gold = TierFactory(name="Gold")
    member = CustomerFactory(external_id="find-me", email="needle@example.com", country="FR")
    MembershipFactory(customer=member, program=gold.program, tier=gold)
    CustomerFactory(external_id="other")
    record_consent(customer=member, channel="email", action="granted", source="form")
    for query in ["q=needle@example.com", "q=find-me", "country=FR", f"tier={gold.pk}", "consent=email"]:
        page = staff.get(f"/admin/customers/customer/?{query}")
        assert page.status_code == 200
        assert b"find-me" in page.content and b">other<" not in page.content, query
    Customer.objects.filter(external_id="other").update(deleted_at="2024-01-01T00:00:00Z")
    deleted = staff.get("/admin/customers/customer/?state=deleted").content
    assert b">other<" in deleted and b"find-me" not in deleted


def test_customer_page_has_a_timeline(staff):
    customer = CustomerFactory()
    make_order(customer=customer, lines=[(ProductFactory(), 1)])
    record_consent(customer=customer, channel="email", action="granted", source="signup_form")
    award_points(
        membership=MembershipFactory(customer=customer), points=42, idempotency_key="k", reason="welcome"
    )
    page = staff.get(f"/admin/customers/customer/{customer.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="customer-timeline"' in html
    for kind in ("timeline-order", "timeline-consent", "timeline-points"):
        assert kind in html
    assert "+42 points" in html


@pytest.mark.parametrize(
    "model", ["customers/consentrecord", "loyalty/pointstransaction", "access/auditentry"]
)
def test_ledgers_are_read_only(staff, model):
    assert staff.get(f"/admin/{model}/").status_code == 200
    assert staff.get(f"/admin/{model}/add/").status_code == 403


def test_csv_upload_shows_the_row_report(staff):
    upload = SimpleUploadedFile(
        "c.csv", b"external_id,email\nok,ok@example.com\nbad,nope\n", content_type="text/csv"
    )
    page = staff.post("/admin/customers/customer/import/", {"kind": "customers", "file": upload})
    html = page.content.decode()
    assert "nothing imported" in html and "Enter a valid email address." in html
    assert not Customer.objects.exists()
    upload = SimpleUploadedFile(
        "c.csv", b"external_id,email\nok,ok@example.com\nbad,nope\n", content_type="text/csv"
    )
    page = staff.post(
        "/admin/customers/customer/import/", {"kind": "customers", "file": upload, "partial": "on"}
    )
    assert "Report: imported" in page.content.decode() and Customer.objects.count() == 1
    products = SimpleUploadedFile("p.csv", b"sku,name,price\nP1,Mug,3.00\n", content_type="text/csv")
    assert (
        staff.post("/admin/catalog/product/import/", {"kind": "products", "file": products}).status_code
        == 200
    )
    assert AuditEntry.objects.filter(action="import.csv").count() == 3


def test_api_key_admin_shows_secret_once_and_revokes(staff):
    response = staff.post(
        "/admin/access/apikey/add/",
        {"name": "erp", "scopes": ["orders:write", "products:read"], "rate": ""},
        follow=True,
    )
    text = response.content.decode()
    assert "store it now" in text
    key = ApiKey.objects.get(name="erp")
    assert key.scopes == ["orders:write", "products:read"]
    secret = text.split("The API key for erp is: ")[1].split(" ")[0]
    assert key.is_valid(secret)
    assert "store it now" not in staff.get(f"/admin/access/apikey/{key.pk}/change/").content.decode()
    staff.post("/admin/access/apikey/", {"action": "revoke_selected", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked


def test_erase_action_asks_first(staff):
    customer = CustomerFactory(email="bye@example.com")
    confirm = staff.post(
        "/admin/customers/customer/", {"action": "erase_selected", "_selected_action": [customer.pk]}
    )
    assert b"cannot be undone" in confirm.content
    customer.refresh_from_db()
    assert customer.erased_at is None
    staff.post(
        "/admin/customers/customer/",
        {"action": "erase_selected", "_selected_action": [customer.pk], "confirm": "yes"},
    )
    customer.refresh_from_db()
    assert customer.erased_at is not None and customer.email == ""
    export = staff.get(f"/admin/customers/customer/{customer.pk}/export/")
    assert export.status_code == 200 and export.json()["profile"]["erased_at"]
