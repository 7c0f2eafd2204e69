"""Locust users for benchmarks/load/run.py: event ingest and per-customer reads at a steady rate.

Each user sends LOAD_USER_RATE requests per second (constant throughput, so the offered load does
not fall when the server slows down): one in four an event batch, the rest reads of a customer's
recommendations (`GET /api/v1/customers/{id}/recommendations/`, found in the live schema by the
run script; a build without that endpoint reads the customer profile instead, and says so). Settings come from the environment the run script sets.
"""

from __future__ import annotations

import os
import random
import uuid
from datetime import UTC, datetime

from locust import HttpUser, constant_throughput, task

API_KEY = os.environ.get("LOAD_API_KEY", "")
CUSTOMERS = int(os.environ.get("LOAD_CUSTOMERS", "1000"))
PRODUCTS = int(os.environ.get("LOAD_PRODUCTS", "200"))
READ_PATH = os.environ.get("LOAD_READ_PATH", "/api/v1/customers/{customer}/recommendations/")
READ_NAME = os.environ.get("LOAD_READ_NAME", "GET recommendations")
USER_RATE = float(os.environ.get("LOAD_USER_RATE", "2"))
EVENTS_PER_BATCH = int(os.environ.get("LOAD_EVENTS_PER_BATCH", "5"))


class ShopIntegration(HttpUser):
    wait_time = constant_throughput(USER_RATE)

    def on_start(self) -> None:
        self.client.headers.update({"Authorization": f"Api-Key {API_KEY}"})

    @task(1)
    def ingest_events(self) -> None:
        now = datetime.now(UTC).isoformat()
        rows = [
            {
                "idempotency_key": uuid.uuid4().hex,
                "customer": f"b{random.randrange(CUSTOMERS)}",
                "type": "view",
                "product": f"SKU{random.randrange(PRODUCTS)}",
                "occurred_at": now,
            }
            for _ in range(EVENTS_PER_BATCH)
        ]
        self.client.post("/api/v1/events/batch/", json={"rows": rows}, name="POST events/batch")

    @task(3)
    def read_recommendations(self) -> None:
        path = READ_PATH.format(customer=f"b{random.randrange(CUSTOMERS)}")
        self.client.get(path, name=READ_NAME)
