"""The production settings, imported in a fresh interpreter with a production-like environment.

A subprocess, because settings are read once per process: this test's own process runs on the
test settings. The environment is built from scratch, so nothing of the developer's leaks in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD_KEY = "k3Y-" + "".join(chr(65 + (i * 7) % 26) + str(i % 10) for i in range(30))
PROBE = """
import json
import django
from django.conf import settings
django.setup()
names = [
    "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "SITE_URL", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY", "CSRF_COOKIE_HTTPONLY", "SESSION_COOKIE_SAMESITE", "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_HSTS_PRELOAD", "SECURE_PROXY_SSL_HEADER",
    "SECURE_CONTENT_TYPE_NOSNIFF", "X_FRAME_OPTIONS", "TRACKING_REQUIRE_HTTPS", "MIDDLEWARE",
    "CSRF_TRUSTED_ORIGINS", "PASSWORD_HASHERS",
]
print(json.dumps({n: getattr(settings, n) for n in names}, default=str))
"""


def production_env(**overrides: str | None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": GOOD_KEY,
        "ALLOWED_HOSTS": "shop.example.com",
        "SITE_URL": "https://shop.example.com",
        "DATABASE_URL": "postgres://reachly@db.invalid:5432/reachly",
        "REDIS_URL": "redis://cache.invalid:6379/0",
    }
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_production_settings_are_hardened():
    result = run_python(PROBE, production_env())
    assert result.returncode == 0, result.stderr[-3000:]
    s = json.loads(result.stdout.strip().splitlines()[-1])
    assert s["DEBUG"] is False
    assert s["SECRET_KEY"] == GOOD_KEY
    assert s["ALLOWED_HOSTS"] == ["shop.example.com"]  # no localhost/testserver defaults
    assert s["SESSION_COOKIE_SECURE"] and s["CSRF_COOKIE_SECURE"] and s["SESSION_COOKIE_HTTPONLY"]
    assert s["SESSION_COOKIE_SAMESITE"] in ("Lax", "Strict")
    assert s["SECURE_SSL_REDIRECT"] is True
    assert s["SECURE_HSTS_SECONDS"] >= 31_536_000 and s["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert s["SECURE_CONTENT_TYPE_NOSNIFF"] and s["X_FRAME_OPTIONS"] == "DENY"
    assert s["TRACKING_REQUIRE_HTTPS"] is True
    assert "django.middleware.csrf.CsrfViewMiddleware" in s["MIDDLEWARE"]
    assert "django.middleware.security.SecurityMiddleware" in s["MIDDLEWARE"]
    assert "django.middleware.clickjacking.XFrameOptionsMiddleware" in s["MIDDLEWARE"]
    assert s["CSRF_TRUSTED_ORIGINS"] == ["https://shop.example.com"]
    assert not any("MD5" in hasher for hasher in s["PASSWORD_HASHERS"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"SECRET_KEY": None}, "Set the SECRET_KEY environment variable"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY must be a random string"),
        ({"SECRET_KEY": "insecure-development-key-change-me-0123456789abcdef"}, "SECRET_KEY must be"),
        ({"SECRET_KEY": "a" * 60}, "SECRET_KEY must be"),
        ({"ALLOWED_HOSTS": None}, "Set the ALLOWED_HOSTS environment variable"),
        ({"SITE_URL": None}, "Set the SITE_URL environment variable"),
        ({"SITE_URL": "http://shop.example.com"}, "SITE_URL must be an https"),
    ],
)
def test_production_refuses_to_start_without_its_secrets(overrides, message):
    result = run_python(PROBE, production_env(**overrides))
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_deploy_checks_pass_on_production_settings():
    """Django's own deployment checklist: no security warning left (W0xx from django.core.checks.security)."""
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--tag", "security", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "security.W" not in result.stdout + result.stderr
