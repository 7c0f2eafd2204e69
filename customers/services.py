"""Writes about customers: bulk upserts, lifecycle (soft delete, restore) and GDPR. Consent
(`customers.consent`) and event and order ingest (`customers.ingest`) are re-exported here.

Keyword-only functions; views, admin actions, tasks and importers stay thin and call these.
Bulk functions validate every row first and write nothing when a row is bad, unless the caller
asked for `partial=True`; each call is one transaction.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.bulk import BulkResult
from core.rows import mark_duplicates, validate_rows
from customers import schemas
from customers.consent import (  # noqa: F401 - re-exported: callers find consent here
    DOUBLE_OPT_IN_MAX_AGE,
    ConsentDecision,
    ConsentError,
    DoubleOptInError,
    confirm_double_opt_in,
    lift_suppression,
    record_consent,
    record_consents,
    request_double_opt_in,
    suppress_address,
)
from customers.ingest import ingest_events, ingest_orders  # noqa: F401 - re-exported
from customers.models import (
    Channel,
    Customer,
    SuppressionReason,
)
from customers.signals import announce_changed
from webhooks.models import OutboxMessage
from webhooks.services import publish, publish_many

_SQLITE_CHUNK = 900  # SQLite's default limit on query parameters is 999


def upsert_customers(*, rows: Sequence[Any], partial: bool = False, source: str = "api") -> BulkResult:
    """Create or update customers by `external_id`; the same payload twice changes nothing.

    Fields a row leaves out keep their stored value. Inline consent decisions go through the
    consent ledger (`record_consents`) and are skipped when they would not change the state.
    `customer.created` / `customer.updated` outbox messages are written in the same transaction.
    A soft-deleted customer sent again is restored.
    """
    result = BulkResult(received=len(rows), partial=partial)
    valid, errors = validate_rows(schemas.CUSTOMER, rows)
    valid = mark_duplicates(valid, "external_id", errors)
    result.errors = sorted(errors, key=lambda e: e.index)
    if result.rejected:
        return result.finish_rejected()
    result.failed = len({e.index for e in errors})
    if not valid:
        return result
    with transaction.atomic():
        groups: dict[tuple[str, ...], list[dict]] = {}
        for _, row in valid:
            present = tuple(f for f in schemas.PROFILE_FIELDS if f in row)
            groups.setdefault(present, []).append(row)
        touched: dict[str, tuple[int, bool]] = {}
        for present, group in groups.items():
            if connection.vendor == "postgresql":
                touched.update(_upsert_customers_postgresql(group, present))
            else:
                touched.update(_upsert_customers_portable(group, present))
        result.created = sum(1 for _, inserted in touched.values() if inserted)
        result.updated = len(touched) - result.created
        announce_changed(pk for pk, _ in touched.values())
        consent_rows = [row for _, row in valid if row.get("consent")]
        if consent_rows:
            result.updated += _apply_inline_consent(consent_rows, touched, source=source)
        result.unchanged = len(valid) - result.created - result.updated
    return result


_CUSTOMER_COLUMNS = schemas.PROFILE_FIELDS


def _customer_values(row: dict) -> list[Any]:
    return [row.get(f, {} if f == "attributes" else "") for f in _CUSTOMER_COLUMNS]


def _upsert_customers_postgresql(group: list[dict], present: tuple[str, ...]) -> dict[str, tuple[int, bool]]:
    """COPY the rows into a temporary table, INSERT the new ones, then INSERT … ON CONFLICT … WHERE
    changed for the rest.

    Rows whose stored values already match are not touched at all (no new row version, no
    updated_at bump, no webhook), which is what makes a replay a no-op. The outbox messages are
    written by the same statements from their RETURNING rows.
    """
    import json

    table = Customer._meta.db_table
    outbox = OutboxMessage._meta.db_table
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in group:
        values = _customer_values(row)
        values[-1] = json.dumps(values[-1], ensure_ascii=False, separators=(",", ":"))
        writer.writerow([row["external_id"], *values])
    buffer.seek(0)
    columns = ", ".join(_CUSTOMER_COLUMNS)
    set_clause = ", ".join(f"{c} = EXCLUDED.{c}" for c in present)
    if present:
        changed = (
            f"({', '.join(f'{table}.{c}' for c in present)}) IS DISTINCT FROM "
            f"({', '.join(f'EXCLUDED.{c}' for c in present)}) OR {table}.deleted_at IS NOT NULL"
        )
        set_clause += ", "
    else:
        changed = f"{table}.deleted_at IS NOT NULL"
    fields_json = json.dumps(list(present))
    # Table and column names below are this module's constants, never input: no injection vector.
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE customer_upsert_rows ON COMMIT DROP AS "  # noqa: S608
            f"SELECT external_id, {columns.replace('attributes', 'attributes::text AS attributes')} "
            f"FROM {table} WITH NO DATA"
        )
        cursor.copy_expert(
            f"COPY customer_upsert_rows (external_id, {columns}) FROM STDIN "
            f"WITH (FORMAT csv, FORCE_NOT_NULL (external_id, {columns}))",
            buffer,
        )
        select_columns = columns.replace("attributes", "attributes::jsonb")
        # New rows first, with a plain INSERT (no speculative insertion: about twice as fast as
        # ON CONFLICT). A concurrent call inserting the same external id makes it fail; then the
        # savepoint is rolled back and the ON CONFLICT statement below does the whole group.
        touched: dict[str, tuple[int, bool]] = {}
        try:
            with transaction.atomic():
                cursor.execute(
                    f"""
                    WITH inserted AS (
                        INSERT INTO {table} (external_id, {columns}, created_at, updated_at, deleted_at, erased_at)
                        SELECT external_id, {select_columns}, now(), now(), NULL, NULL FROM customer_upsert_rows r
                        WHERE NOT EXISTS (SELECT 1 FROM {table} c WHERE c.external_id = r.external_id)
                        RETURNING id, external_id
                    ), messages AS (
                        INSERT INTO {outbox} (topic, payload, created_at)
                        SELECT 'customer.created',
                               jsonb_build_object('id', id, 'external_id', external_id, 'fields', %s::jsonb),
                               now()
                        FROM inserted
                    )
                    SELECT id, external_id FROM inserted
                    """,  # noqa: S608
                    [fields_json],
                )
                touched.update({external_id: (pk, True) for pk, external_id in cursor.fetchall()})
        except IntegrityError:
            touched = {}
        if len(touched) == len(group):  # all new (external ids are unique within a group)
            cursor.execute("DROP TABLE customer_upsert_rows")
            return touched
        if touched:
            # A hashed semi-join: `= ANY(array)` would compare every row with every inserted id.
            cursor.execute(
                "DELETE FROM customer_upsert_rows WHERE external_id IN (SELECT unnest(%s::text[]))",
                [list(touched)],
            )
        cursor.execute(
            f"""
            WITH upserted AS (
                INSERT INTO {table} (external_id, {columns}, created_at, updated_at, deleted_at, erased_at)
                SELECT external_id, {select_columns}, now(), now(), NULL, NULL FROM customer_upsert_rows
                ON CONFLICT (external_id) DO UPDATE SET {set_clause}
                    updated_at = EXCLUDED.updated_at, deleted_at = NULL
                WHERE ({changed}) AND {table}.erased_at IS NULL
                RETURNING id, external_id, (xmax = 0) AS inserted
            ), messages AS (
                INSERT INTO {outbox} (topic, payload, created_at)
                SELECT CASE WHEN inserted THEN 'customer.created' ELSE 'customer.updated' END,
                       jsonb_build_object('id', id, 'external_id', external_id,
                                          'fields', %s::jsonb),
                       now()
                FROM upserted
            )
            SELECT id, external_id, inserted FROM upserted
            """,  # noqa: S608
            [fields_json],
        )
        touched.update({external_id: (pk, inserted) for pk, external_id, inserted in cursor.fetchall()})
        cursor.execute("DROP TABLE customer_upsert_rows")
    return touched


def _upsert_customers_portable(group: list[dict], present: tuple[str, ...]) -> dict[str, tuple[int, bool]]:
    """SQLite and other databases: one SELECT per chunk, then bulk_create and bulk_update."""
    touched: dict[str, tuple[int, bool]] = {}
    now = timezone.now()
    for start in range(0, len(group), _SQLITE_CHUNK):
        chunk = group[start : start + _SQLITE_CHUNK]
        existing = {
            c.external_id: c
            for c in Customer.all_objects.filter(external_id__in=[row["external_id"] for row in chunk])
        }
        to_create, to_update = [], []
        for row in chunk:
            customer = existing.get(row["external_id"])
            if customer is None:
                values = dict(zip(_CUSTOMER_COLUMNS, _customer_values(row), strict=True))
                to_create.append(Customer(external_id=row["external_id"], **values))
                continue
            if customer.erased_at is not None:
                continue  # an erased record is never filled again
            changed = customer.deleted_at is not None
            for f in present:
                if getattr(customer, f) != row[f]:
                    setattr(customer, f, row[f])
                    changed = True
            if changed:
                customer.deleted_at = None
                customer.updated_at = now
                to_update.append(customer)
        for customer in Customer.all_objects.bulk_create(to_create):
            touched[customer.external_id] = (customer.pk, True)
        if to_update:
            Customer.all_objects.bulk_update(to_update, [*present, "deleted_at", "updated_at"])
            touched.update({c.external_id: (c.pk, False) for c in to_update})
    fields = list(present)
    payloads_created = [
        {"id": pk, "external_id": ext, "fields": fields} for ext, (pk, ins) in touched.items() if ins
    ]
    payloads_updated = [
        {"id": pk, "external_id": ext, "fields": fields} for ext, (pk, ins) in touched.items() if not ins
    ]
    if payloads_created:
        publish_many(topic="customer.created", payloads=payloads_created)
    if payloads_updated:
        publish_many(topic="customer.updated", payloads=payloads_updated)
    return touched


def _apply_inline_consent(
    consent_rows: list[dict], touched: dict[str, tuple[int, bool]], *, source: str
) -> int:
    """Record the consent given inline; returns how many otherwise unchanged customers it changed."""
    ids = dict(
        Customer.all_objects.filter(
            external_id__in=[row["external_id"] for row in consent_rows], erased_at__isnull=True
        ).values_list("external_id", "pk")
    )
    now = timezone.now()
    decisions = [
        ConsentDecision(
            customer_id=ids[row["external_id"]],
            external_id=row["external_id"],
            channel=item["channel"],
            action=item["action"],
            source=item.get("source") or source,
            occurred_at=item.get("occurred_at") or now,
            ip=item.get("ip"),
        )
        for row in consent_rows
        if row["external_id"] in ids
        for item in row["consent"]
    ]
    records = record_consents(decisions=decisions, skip_unchanged=True)
    changed_ids = {rec.customer_id for rec in records}
    touched_ids = {pk for pk, _ in touched.values()}
    return len(changed_ids - touched_ids)


# --- events --------------------------------------------------------------------------------------


def soft_delete_customer(*, customer: Customer, actor=None) -> Customer:
    """Hide a customer from lists, segments and sends without erasing anything (reversible)."""
    from access.services import record_audit

    if customer.deleted_at is None:
        customer.deleted_at = timezone.now()
        customer.save(update_fields=["deleted_at", "updated_at"])
        record_audit(actor=actor, action="customer.deleted", target=customer)
        announce_changed([customer.pk])
    return customer


def restore_customer(*, customer: Customer, actor=None) -> Customer:
    from access.services import record_audit

    if customer.deleted_at is not None and customer.erased_at is None:
        customer.deleted_at = None
        customer.save(update_fields=["deleted_at", "updated_at"])
        record_audit(actor=actor, action="customer.restored", target=customer)
        announce_changed([customer.pk])
    return customer


def export_customer(*, customer: Customer) -> dict[str, Any]:
    """Everything stored about a customer, section by section (see customers.gdpr)."""
    from customers.gdpr import export_sections

    return export_sections(customer=customer)


def erase_customer(*, customer: Customer, actor=None, api_key=None) -> Customer:
    """GDPR erasure: remove personal data everywhere, keep only what the law and the books need.

    The address goes on the suppression list as a keyed hash, so a later re-import of the same
    address is still never mailed; the external id is released so the CRM may reuse it.
    """
    from access.models import AuditEntry
    from access.services import record_audit
    from customers.gdpr import run_erasure_steps

    with transaction.atomic():
        customer = Customer.all_objects.select_for_update().get(pk=customer.pk)
        if customer.erased_at is not None:
            return customer
        original_external_id = customer.external_id
        if customer.email:
            suppress_address(address=customer.email, reason=SuppressionReason.ERASED, detail="GDPR erasure")
        if customer.phone:
            suppress_address(
                address=customer.phone,
                reason=SuppressionReason.ERASED,
                channel=Channel.SMS,
                detail="GDPR erasure",
            )
        run_erasure_steps(customer=customer)
        now = timezone.now()
        customer.external_id = f"erased-{customer.pk}"
        customer.email = customer.phone = customer.first_name = customer.last_name = ""
        customer.locale = customer.timezone = customer.country = ""
        customer.attributes = {}
        customer.erased_at = now
        customer.deleted_at = customer.deleted_at or now
        customer.save()
        # Audit entries about this customer named them (target_repr is str(customer)): keep the
        # entries, by id, with the erased name only.
        AuditEntry.objects.filter(target_type=Customer._meta.label_lower, target_id=str(customer.pk)).update(
            target_repr=str(customer)[:200]
        )
        record_audit(
            actor=actor,
            action="customer.erased",
            target=customer,
            details={"customer_id": customer.pk},
            api_key=api_key,
        )
        announce_changed([customer.pk])
        publish(
            topic="customer.erased",
            payload={"id": customer.pk, "external_id": original_external_id, "at": now.isoformat()},
        )
    return customer
