"""Schemathesis against the live OpenAPI schema, through the real WSGI stack (middleware included)."""

from __future__ import annotations

import json

import pytest


def load_live_schema(*, include_path_regex: str | None = None):
    import schemathesis
    from django.core.wsgi import get_wsgi_application
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    raw = SchemaGenerator().get_schema(request=None, public=True)
    document = json.loads(OpenApiJsonRenderer().render(raw))
    schema = schemathesis.openapi.from_dict(document)
    schema.app = get_wsgi_application()
    if include_path_regex:
        schema = schema.include(path_regex=include_path_regex)
    return schema


@pytest.fixture
def api_key_headers(db):
    from access.services import create_api_key
    from tests.factories.catalog import ProductFactory
    from tests.factories.customers import CustomerFactory

    CustomerFactory(external_id="c1")
    ProductFactory(sku="SKU-1")
    _, secret = create_api_key(name="schemathesis", scopes=["all"])
    return {"Authorization": f"Api-Key {secret}"}


@pytest.fixture
def wsgi_keeps_test_connection():
    """Calls through the raw WSGI app would close the test's database connection at each request
    (CONN_MAX_AGE=0); Django's own test client avoids that the same way: by unhooking the signal."""
    from django.core import signals
    from django.db import close_old_connections

    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def excluded_checks():
    """One check judges requests by the schema alone and cannot hold for this API.

    `positive_data_acceptance` expects every schema-valid body to succeed, but business rules
    (an unknown customer in an event, an ISO currency list, a duplicate tier name, a balance too
    low for a redemption) cannot all be written in JSON Schema. Every other check runs, including
    `negative_data_rejection` (every schema-violating request must get a 4xx).
    """
    from schemathesis.specs.openapi import checks

    return [checks.positive_data_acceptance]
