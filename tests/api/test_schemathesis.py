"""A sample of operations, every check, a few examples each: fast enough for every run.

`make schemathesis-full` runs tests/api/test_schemathesis_full.py over every operation.
"""

from hypothesis import HealthCheck, settings

from tests.api.conftest import excluded_checks, load_live_schema

SAMPLE = r"^/api/v1/(customers/(bulk/|\{external_id\}/(consent/)?)?|products/(\{sku\}/)?|events/batch/|orders/|loyalty/(programs|members)/(\{id\}/award/)?|webhooks/endpoints/)$"


schema = load_live_schema(include_path_regex=SAMPLE)


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
def test_sampled_operations_conform(case, api_key_headers, wsgi_keeps_test_connection):
    case.call_and_validate(headers=api_key_headers, excluded_checks=excluded_checks())
