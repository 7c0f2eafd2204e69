from django.core.cache import cache
from django.db import connection


def test_runs_on_postgresql_and_redis(db):
    assert connection.vendor == "postgresql"
    cache.set("smoke", "ok", 5)
    assert cache.get("smoke") == "ok"


def test_health_endpoint(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
