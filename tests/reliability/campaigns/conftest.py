"""Campaign fault tests reuse the real parts of the integration tests (SMTP sink, workers, beat)."""

from __future__ import annotations

import pytest

from tests.integration.campaigns.conftest import push_receiver, send_settings, smtp_sink, start_worker  # noqa: F401
from tests.integration.campaigns.real_parts import CeleryBeat


@pytest.fixture
def start_beat():
    beats: list[CeleryBeat] = []

    def start(env) -> CeleryBeat:
        beat = CeleryBeat(env).start()
        beats.append(beat)
        return beat

    yield start
    for beat in beats:
        beat.stop()


@pytest.fixture(autouse=True)
def _https_site(settings):
    """Email needs an https SITE_URL (RFC 8058 one-click unsubscribe); the test settings use http."""
    settings.SITE_URL = "https://testserver"
