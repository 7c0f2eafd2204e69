"""The segment fault tests use the segment tests' real worker (tests/integration/segments/conftest.py)."""

from tests.integration.segments.conftest import (  # noqa: F401
    real_celery,
    segments_worker,
    start_segments_worker,
    start_worker,
)
