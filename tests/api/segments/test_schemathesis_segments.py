"""The segment operations against the live schema, every check, a few examples each (the full run
over every operation is `make schemathesis-full`)."""

from hypothesis import HealthCheck, settings

from tests.api.conftest import excluded_checks, load_live_schema

schema = load_live_schema(include_path_regex=r"^/api/v1/segments/")


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_segment_operations_conform(case, api_key_headers, wsgi_keeps_test_connection):
    case.call_and_validate(headers=api_key_headers, excluded_checks=excluded_checks())
