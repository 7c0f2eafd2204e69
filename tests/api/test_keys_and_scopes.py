import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from access.models import ApiKey
from access.services import revoke_api_key

pytestmark = pytest.mark.django_db


def test_create_api_key_command_prints_a_working_key_once(capsys):
    call_command("create_api_key", "--name", "shop-sync", "--scopes", "products:*", "orders:write")
    out = capsys.readouterr()
    secret = out.out.strip()
    key = ApiKey.objects.get(name="shop-sync")
    assert key.scopes == ["orders:write", "products:read", "products:write"]
    assert secret not in key.hashed_key and key.is_valid(secret)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    assert client.get("/api/v1/products/").status_code == 200
    assert client.get("/api/v1/customers/").status_code == 403
    with pytest.raises(CommandError):
        call_command("create_api_key", "--name", "x", "--scopes", "nonsense:read")


def test_read_key_cannot_write_and_revoked_key_is_401(make_api_client):
    reader = make_api_client("customers:read")
    assert reader.get("/api/v1/customers/").status_code == 200
    assert reader.post("/api/v1/customers/", {"external_id": "x"}).status_code == 403
    assert reader.post("/api/v1/customers/bulk/", {"rows": [{"external_id": "x"}]}).status_code == 403
    assert reader.get("/api/v1/loyalty/programs/").status_code == 403
    revoke_api_key(api_key=ApiKey.objects.get(name="test-integration"))
    assert reader.get("/api/v1/customers/").status_code == 401
    anonymous = APIClient()
    assert anonymous.get("/api/v1/customers/").status_code in (401, 403)
    bogus = APIClient()
    bogus.credentials(HTTP_AUTHORIZATION="Api-Key not.a-key")
    assert bogus.get("/api/v1/customers/").status_code == 401


def test_throttle_per_key():
    from access.services import create_api_key

    _, secret = create_api_key(name="slow", scopes=["customers:read"], rate="2/min")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    codes = [client.get("/api/v1/customers/").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
