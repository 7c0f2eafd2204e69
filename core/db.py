"""Which database a query runs on: the primary, or a reporting replica when one is configured."""

from __future__ import annotations

from django.conf import settings

REPLICA = "replica"


def reporting_db() -> str:
    """The alias for read-only reporting queries: the replica if `DATABASE_REPLICA_URL` is set."""
    return REPLICA if REPLICA in settings.DATABASES else "default"


class ReplicaRouter:
    """Never migrate or write through the replica; everything else follows Django's defaults.

    Queries go to the replica only where the code asks for it with `.using(reporting_db())`, so
    a request that writes and then reads never sees replication lag.
    """

    def db_for_write(self, model, **hints):
        return "default"

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return False if db == REPLICA else None
