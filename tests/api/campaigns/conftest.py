"""Fixtures for the campaign API tests (API clients come from tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _https_site(settings):
    """Email needs an https SITE_URL (RFC 8058 one-click unsubscribe); the test settings use http."""
    settings.SITE_URL = "https://testserver"
