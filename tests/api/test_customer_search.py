"""Finding a customer by address without putting the address in a URL.

`POST /customers/search/` takes the address in the body; the old `GET /customers/?email=` still
answers, with `Deprecation` and `Link` headers naming the replacement (RFC 9745, RFC 8288).
"""

from __future__ import annotations

import pytest

from tests.factories.customers import CustomerFactory

pytestmark = pytest.mark.django_db

SEARCH = "/api/v1/customers/search/"


def _ids(response) -> list[str]:
    return [c["external_id"] for c in response.json()["results"]]


def test_search_finds_by_address_ignoring_case_and_spaces(api):
    CustomerFactory(external_id="a", email="Anna.Smith@Example.com")
    CustomerFactory(external_id="b", email="bob@example.com")
    CustomerFactory(external_id="a2", email="anna.smith@example.COM")  # a second profile, same address

    response = api.post(SEARCH, {"email": "  ANNA.smith@example.com "}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"next", "previous", "results"}
    assert _ids(response) == ["a2", "a"]  # newest first, like the list
    assert body["results"][0]["email"] == "anna.smith@example.COM"
    assert "Deprecation" not in response
    assert _ids(api.post(SEARCH, {"email": "nobody@example.com"}, format="json")) == []


def test_search_pages_by_cursor_without_the_address_in_the_links(api):
    for i in range(3):
        CustomerFactory(external_id=f"s{i}", email="shared@example.com")
    first = api.post(f"{SEARCH}?page_size=2", {"email": "shared@example.com"}, format="json").json()
    assert [c["external_id"] for c in first["results"]] == ["s2", "s1"]
    assert "shared" not in first["next"] and "example" not in first["next"]
    second = api.post(first["next"], {"email": "shared@example.com"}, format="json").json()
    assert [c["external_id"] for c in second["results"]] == ["s0"]


def test_search_leaves_out_soft_deleted_customers(api):
    CustomerFactory(external_id="gone", email="gone@example.com")
    assert api.delete("/api/v1/customers/gone/").status_code == 204
    assert _ids(api.post(SEARCH, {"email": "gone@example.com"}, format="json")) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "email"),
        ({"email": ""}, "email"),
        ({"email": "   "}, "email"),
        ({"email": "not-an-address"}, "email"),
        ({"email": "x" * 250 + "@example.com"}, "email"),
        ({"email": 42}, "email"),
        ({"email": ["a@example.com"]}, "email"),
        ({"email": "a@example.com", "country": "GB"}, "country"),
        ([{"email": "a@example.com"}], "non_field_errors"),
    ],
)
def test_search_bad_bodies_are_field_errors(api, body, field):
    response = api.post(SEARCH, body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()


def test_search_needs_the_read_scope_not_write(make_api_client):
    CustomerFactory(external_id="a", email="a@example.com")
    reader = make_api_client("customers:read")
    writer = make_api_client("customers:write")
    assert _ids(reader.post(SEARCH, {"email": "a@example.com"}, format="json")) == ["a"]
    assert writer.post(SEARCH, {"email": "a@example.com"}, format="json").status_code == 403


def test_email_filter_still_answers_but_is_deprecated(api):
    CustomerFactory(external_id="a", email="A@Example.com")
    CustomerFactory(external_id="b", email="b@example.com")

    response = api.get("/api/v1/customers/?email=a@example.com")

    assert response.status_code == 200
    assert _ids(response) == ["a"]
    assert response["Deprecation"] == "@1796601600"  # RFC 9745: deprecated since 2026-12-07
    assert response["Link"] == '<http://testserver/api/v1/customers/search/>; rel="successor-version"'
    # Other filters are not deprecated.
    plain = api.get("/api/v1/customers/?country=GB")
    assert "Deprecation" not in plain and "Link" not in plain


def test_schema_marks_the_filter_deprecated_and_documents_the_search(api):
    schema = api.get("/api/schema/?format=json").json()
    parameters = {p["name"]: p for p in schema["paths"]["/api/v1/customers/"]["get"]["parameters"]}
    assert parameters["email"]["deprecated"] is True
    assert "/api/v1/customers/search/" in parameters["email"]["description"]
    search = schema["paths"]["/api/v1/customers/search/"]["post"]
    body = search["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert schema["components"]["schemas"][body]["required"] == ["email"]
    assert {"200", "400", "401", "403"} <= set(search["responses"])
    assert "parameters" not in search or all(p["name"] != "email" for p in search["parameters"])
