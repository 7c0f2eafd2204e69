"""Every experiments operation against the live OpenAPI schema: no 500s, responses as documented."""

from hypothesis import HealthCheck, settings

from tests.api.conftest import api_key_headers, excluded_checks, load_live_schema, wsgi_keeps_test_connection  # noqa: F401

schema = load_live_schema(include_path_regex=r"^/api/v1/experiments/")


@schema.parametrize()
@settings(
    max_examples=5,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
def test_experiment_operations_conform(case, api_key_headers, wsgi_keeps_test_connection):  # noqa: F811
    case.call_and_validate(headers=api_key_headers, excluded_checks=excluded_checks())
