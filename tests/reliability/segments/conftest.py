"""The segment fault tests use the segment tests' real worker (tests/integration/segments/conftest.py)."""

from tests.integration.segments.conftest import segments_worker, start_segments_worker  # noqa: F401
