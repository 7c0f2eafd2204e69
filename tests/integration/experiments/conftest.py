"""The campaign tests' real parts (SMTP sink, workers) and an experiment scenario builder."""

from __future__ import annotations

import random
import re

import pytest

from tests.integration.campaigns.conftest import (  # noqa: F401
    real_celery,
    send_settings,
    smtp_sink,
    start_worker,
)
from tests.integration.campaigns.real_parts import CeleryBeat

HUMAN = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Safari/605.1.15"
)


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


def click_links(message) -> list[str]:
    html = message.get_body(("html",)).get_content()
    return [u.replace("https://testserver", "") for u in re.findall(r'href="(https://testserver/t/c/[^"]+)"', html)]


def engage(client, messages, *, click_rate_by_subject: dict[str, float], seed: int) -> int:
    """Simulated customers: each clicks the first tracked link with the rate of its message's variant."""
    rng = random.Random(seed)
    clicks = 0
    for message in messages:
        parsed = message.parsed()
        subject = str(parsed["Subject"])
        rate = next((r for marker, r in click_rate_by_subject.items() if subject.endswith(marker)), None)
        assert rate is not None, subject
        if rng.random() < rate:
            response = client.get(click_links(parsed)[0], HTTP_USER_AGENT=HUMAN)
            assert response.status_code == 302
            clicks += 1
    return clicks
