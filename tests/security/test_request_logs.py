"""No query string in a request log: the development server and gunicorn, as real processes.

The deprecated `GET /customers/?email=` still works, so an address can still arrive in a URL;
neither server may write it to its log. Each server is started here and stopped by its pid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.campaigns.real_parts import free_port

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = "private.person@example.com"


def _server_env(settings) -> dict[str, str]:
    db = settings.DATABASES["default"]
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": f"postgres://{db['USER']}:{db.get('PASSWORD') or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
        }
    )
    return env


def _get(url: str, key: str, timeout: float = 60) -> tuple[int, dict, dict]:
    deadline = time.monotonic() + timeout
    while True:
        request = urllib.request.Request(url, headers={"Authorization": f"Api-Key {key}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our local server
                return response.status, dict(response.headers), json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture
def customer_and_key(transactional_db, settings):
    from access.services import create_api_key
    from tests.factories.customers import CustomerFactory

    CustomerFactory(external_id="crm-77", email=ADDRESS)
    _, key = create_api_key(name="logs", scopes=["customers:read"])
    return key


def _check(log_text: str, port: int) -> None:
    assert "/api/v1/customers/" in log_text, log_text  # the request was logged ...
    for secret in (ADDRESS, "private.person", "private.person%40example.com", "email="):
        assert secret not in log_text, log_text  # ... without its query string


def test_development_server_logs_no_query_string(customer_and_key, settings):
    port = free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"],
        cwd=ROOT,
        env=_server_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        status, headers, body = _get(
            f"http://127.0.0.1:{port}/api/v1/customers/?email={ADDRESS}", customer_and_key
        )
        assert status == 200 and [c["external_id"] for c in body["results"]] == ["crm-77"]
        assert headers["Deprecation"] == "@1796601600"
        time.sleep(0.5)  # the line is written after the response
    finally:
        _stop(process)
        log.seek(0)
        text = log.read().decode(errors="replace")
        log.close()
    assert '"GET /api/v1/customers/?… HTTP/1.1" 200' in text, text
    _check(text, port)


def test_gunicorn_access_log_with_the_project_config_has_no_query_string(
    customer_and_key, settings, tmp_path
):
    port = free_port()
    access = tmp_path / "access.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "config/gunicorn.py",
            "config.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--access-logfile",
            str(access),
        ],
        cwd=ROOT,
        env=_server_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        status, _, body = _get(f"http://127.0.0.1:{port}/api/v1/customers/?email={ADDRESS}", customer_and_key)
        assert status == 200 and [c["external_id"] for c in body["results"]] == ["crm-77"]
    finally:
        _stop(process)
    text = access.read_text()
    assert '"GET /api/v1/customers/ HTTP/1.1" 200' in text, text
    assert "127.0.0.1" not in text.split('"')[0]  # no client address either
    _check(text, port)
