"""Who gets in: API keys (hashed at rest, scoped, revocable, expiring, rate-limited) and the roles of
people using the admin or the API with a session. Real PostgreSQL and Redis (throttle counters).

Also covered in tests/api/test_keys_and_scopes.py: the create_api_key command, read-only keys,
revocation and the per-key throttle.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from access.models import ApiKey
from access.scopes import ROLE_ANALYST, ROLE_MARKETER
from access.services import create_api_key, revoke_api_key
from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db


def key_client(*scopes: str, rate: str = "") -> tuple[APIClient, str, ApiKey]:
    api_key, secret = create_api_key(name=f"k-{'-'.join(scopes)[:40]}", scopes=list(scopes), rate=rate)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {secret}")
    return client, secret, api_key


def database_holds(needle: str) -> list[str]:
    hits = []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT table_name, column_name FROM information_schema.columns
            WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'json', 'jsonb')
            """
        )
        for table, column in cursor.fetchall():
            cursor.execute(
                f'SELECT count(*) FROM "{table}" WHERE "{column}"::text LIKE %s',  # noqa: S608
                [f"%{needle}%"],
            )
            if cursor.fetchone()[0]:
                hits.append(f"{table}.{column}")
    return hits


def test_keys_are_hashed_at_rest_with_a_fast_hash_and_never_logged(caplog):
    caplog.set_level(logging.DEBUG)
    client, secret, api_key = key_client("customers:read")
    assert client.get("/api/v1/customers/").status_code == 200
    prefix, _, secret_part = secret.partition(".")
    assert len(secret_part) >= 32
    assert database_holds(secret_part) == []  # not in the key table, the audit log, anywhere
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert stored.prefix == prefix and stored.hashed_key != secret
    # A fast hash (ARCHITECTURE: API keys): no password hasher's salt$iterations$ format.
    algorithm, _, digest = stored.hashed_key.partition("$")
    assert algorithm == "sha512" and len(digest.strip("$")) == 128, stored.hashed_key[:20]
    assert all(secret_part not in record.getMessage() for record in caplog.records)


def test_scopes_are_enforced_per_endpoint_and_gdpr_needs_its_own():
    CustomerFactory(external_id="c-1")
    customers_rw, _, _ = key_client("customers:*")
    events_w, _, _ = key_client("events:write")
    gdpr, _, _ = key_client("gdpr:*", "customers:read")
    campaigns_r, _, _ = key_client("campaigns:read")

    assert customers_rw.get("/api/v1/customers/c-1/").status_code == 200
    # Writing customers does not make a key a data-protection officer.
    assert customers_rw.get("/api/v1/customers/c-1/export/").status_code == 403
    assert customers_rw.post("/api/v1/customers/c-1/erase/").status_code == 403
    assert customers_rw.get("/api/v1/campaigns/").status_code == 403

    event = {
        "rows": [
            {
                "idempotency_key": "e1",
                "customer": "c-1",
                "type": "view",
                "occurred_at": "2026-01-01T00:00:00Z",
            }
        ]
    }
    assert events_w.post("/api/v1/events/batch/", event, format="json").status_code == 200
    assert events_w.get("/api/v1/customers/").status_code == 403
    assert events_w.get("/api/v1/events/").status_code == 403  # write does not imply read

    assert campaigns_r.get("/api/v1/campaigns/").status_code == 200
    assert campaigns_r.post("/api/v1/campaigns/", {"name": "x"}, format="json").status_code == 403

    assert gdpr.get("/api/v1/customers/c-1/export/").status_code == 200
    assert gdpr.post("/api/v1/customers/c-1/erase/").status_code == 200


def test_revoked_expired_and_forged_keys_are_401():
    client, secret, api_key = key_client("customers:read")
    assert client.get("/api/v1/customers/").status_code == 200
    ApiKey.objects.filter(pk=api_key.pk).update(expiry_date=timezone.now() - timedelta(seconds=1))
    assert client.get("/api/v1/customers/").status_code == 401
    ApiKey.objects.filter(pk=api_key.pk).update(expiry_date=None)
    assert client.get("/api/v1/customers/").status_code == 200
    revoke_api_key(api_key=api_key)
    assert client.get("/api/v1/customers/").status_code == 401

    prefix, _, secret_part = secret.partition(".")
    other, _, _ = key_client("customers:read")
    forged = APIClient()
    for header in (
        f"Api-Key {prefix}.{secret_part[:-1]}{'A' if secret_part[-1] != 'A' else 'B'}",  # one character off
        f"Api-Key {prefix}.",
        f"Api-Key {secret_part}",
        "Api-Key " + "A" * 5000,
        "Bearer " + secret,
    ):
        forged.credentials(HTTP_AUTHORIZATION=header)
        assert forged.get("/api/v1/customers/").status_code in (401, 403), header


def test_rate_limit_is_per_key_and_says_when_to_come_back():
    slow, _, _ = key_client("products:read", rate="3/min")
    fast, _, _ = key_client("products:read")
    codes = [slow.get("/api/v1/products/").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = slow.get("/api/v1/products/")
    assert limited.status_code == 429 and int(limited["Retry-After"]) > 0
    assert fast.get("/api/v1/products/").status_code == 200  # one key's limit is not another's


@pytest.fixture
def people(django_user_model):
    def person(name: str, *, role: str | None = None, staff: bool = True):
        user = django_user_model.objects.create_user(
            name, f"{name}@staff.example", "pass-123-long", is_staff=staff
        )
        if role:
            user.groups.add(Group.objects.get_or_create(name=role)[0])
        client = APIClient()
        client.force_login(user)
        return client

    return person


def test_roles_on_the_api_with_a_session(people):
    CustomerFactory(external_id="c-2")
    analyst = people("ana", role=ROLE_ANALYST)
    marketer = people("mark", role=ROLE_MARKETER)
    nobody = people("nora")
    outsider = people("otto", role=ROLE_MARKETER, staff=False)

    assert analyst.get("/api/v1/customers/").status_code == 200
    assert analyst.get("/api/v1/campaigns/").status_code == 200
    assert analyst.post("/api/v1/campaigns/", {"name": "x"}, format="json").status_code == 403
    assert analyst.get("/api/v1/customers/c-2/export/").status_code == 403

    assert marketer.get("/api/v1/customers/c-2/export/").status_code == 403  # personal data: admins only
    assert marketer.post("/api/v1/customers/c-2/erase/").status_code == 403
    assert (
        marketer.post("/api/v1/customers/bulk/", {"rows": [{"external_id": "z"}]}, format="json").status_code
        == 403
    )

    assert nobody.get("/api/v1/customers/").status_code == 403  # staff without a role: nothing
    assert outsider.get("/api/v1/customers/").status_code == 403  # a role without staff status: nothing


def test_admin_screens_need_staff_model_permissions_and_gdpr_needs_an_administrator(
    people, admin_user, client
):
    customer = CustomerFactory(external_id="c-3", email="c3@example.com")
    assert client.get("/admin/customers/customer/").status_code == 302  # anonymous: to the login page

    people("sam", role=ROLE_MARKETER)
    people("nils")  # staff, but no role: no model permission at all
    from django.test import Client

    browser = Client()
    browser.force_login(type(admin_user).objects.get(username="nils"))
    assert browser.get("/admin/customers/customer/").status_code == 403  # no model permission
    browser.force_login(type(admin_user).objects.get(username="sam"))
    assert browser.get("/admin/customers/customer/").status_code == 200  # the role grants viewing
    assert browser.get(f"/admin/customers/customer/{customer.pk}/export/").status_code in (302, 403)
    erase = browser.post(
        "/admin/customers/customer/",
        {"action": "erase_selected", "_selected_action": [customer.pk], "confirm": "yes"},
    )
    assert erase.status_code in (302, 403)
    customer.refresh_from_db()
    assert customer.email == "c3@example.com" and customer.erased_at is None

    browser.force_login(admin_user)
    assert browser.get(f"/admin/customers/customer/{customer.pk}/export/").status_code == 200
