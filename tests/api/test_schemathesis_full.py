"""Every operation of the schema with every check (make schemathesis-full)."""

import pytest
from hypothesis import HealthCheck, settings

from tests.api.conftest import excluded_checks, load_live_schema

pytestmark = pytest.mark.slow


schema = load_live_schema()


@schema.parametrize()
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_every_operation_conforms(case, api_key_headers, wsgi_keeps_test_connection):
    case.call_and_validate(headers=api_key_headers, excluded_checks=excluded_checks())
