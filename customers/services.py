"""Writes about customers: consent, suppression, bulk upserts, event and order ingest, GDPR.

Keyword-only functions; views, admin actions, tasks and importers stay thin and call these.
Bulk functions validate every row first and write nothing when a row is bad, unless the caller
asked for `partial=True`; each call is one transaction.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core import signing
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.bulk import BulkResult
from core.hashing import email_digest, payload_digest
from core.rows import RowError, validate_rows
from customers import schemas, signals
from customers.models import (
    Channel,
    ConsentAction,
    ConsentRecord,
    ConsentStatus,
    Customer,
    CustomerConsent,
    Event,
    Order,
    OrderLine,
    Suppression,
    SuppressionReason,
)
from webhooks.models import OutboxMessage
from webhooks.services import publish, publish_many

_STATUS_AFTER = {
    ConsentAction.GRANTED: ConsentStatus.GRANTED,
    ConsentAction.CONFIRMED: ConsentStatus.GRANTED,
    ConsentAction.WITHDRAWN: ConsentStatus.WITHDRAWN,
    ConsentAction.REQUESTED: ConsentStatus.PENDING,
}

_SQLITE_CHUNK = 900  # SQLite's default limit on query parameters is 999


class ConsentError(ValueError):
    pass


def announce_changed(customer_ids: Iterable[int]) -> None:
    """Tell other apps (segments) after commit that these customers' profiles changed."""
    ids = sorted({int(pk) for pk in customer_ids})
    if ids:
        transaction.on_commit(lambda: signals.customers_changed.send(sender=Customer, customer_ids=ids))


# --- consent -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentDecision:
    customer_id: int
    external_id: str
    channel: str
    action: str
    source: str
    occurred_at: datetime
    ip: str | None = None
    note: str = ""


def _check_decision(channel: str, action: str, source: str) -> None:
    if channel not in Channel.values:
        raise ConsentError(f"Unknown channel {channel!r}; use one of {', '.join(Channel.values)}")
    if action not in ConsentAction.values:
        raise ConsentError(f"Unknown consent action {action!r}; use one of {', '.join(ConsentAction.values)}")
    if not source:
        raise ConsentError("A consent decision needs a source")


@transaction.atomic
def record_consents(
    *, decisions: Sequence[ConsentDecision], skip_unchanged: bool = False
) -> list[ConsentRecord]:
    """Append many consent decisions and update the derived states, in a fixed number of queries.

    A decision older than the one the state already reflects is kept in the ledger (history is
    history) but does not overwrite the newer state: a late-arriving CRM sync cannot re-grant
    consent that a customer withdrew since. With `skip_unchanged`, a decision that would not change
    the current status is not recorded at all, which makes a replayed upsert a no-op.
    """
    if not decisions:
        return []
    for d in decisions:
        _check_decision(d.channel, d.action, d.source)
    customer_ids = sorted({d.customer_id for d in decisions})
    states = {
        (s.customer_id, s.channel): s
        for s in CustomerConsent.objects.select_for_update()
        .filter(customer_id__in=customer_ids)
        .order_by("customer_id", "channel")
    }
    records: list[ConsentRecord] = []
    new_states: dict[tuple[int, str], CustomerConsent] = {}
    changed_states: dict[tuple[int, str], CustomerConsent] = {}
    unsubscribed: list[dict[str, Any]] = []
    for d in sorted(decisions, key=lambda d: d.occurred_at):
        status = _STATUS_AFTER[ConsentAction(d.action)]
        key = (d.customer_id, d.channel)
        state = states.get(key)
        previous = state.status if state else None
        if skip_unchanged and previous == status:
            continue
        records.append(
            ConsentRecord(
                customer_id=d.customer_id,
                channel=d.channel,
                action=d.action,
                source=d.source[:64],
                ip=d.ip,
                occurred_at=d.occurred_at,
                note=d.note[:255],
            )
        )
        if state is None:
            state = CustomerConsent(
                customer_id=d.customer_id,
                channel=d.channel,
                status=status,
                source=d.source[:64],
                changed_at=d.occurred_at,
            )
            states[key] = new_states[key] = state
        elif d.occurred_at >= state.changed_at:
            state.status, state.source, state.changed_at = status, d.source[:64], d.occurred_at
            if key not in new_states:
                changed_states[key] = state
        else:
            status = state.status
        if previous != ConsentStatus.WITHDRAWN and status == ConsentStatus.WITHDRAWN:
            unsubscribed.append(
                {
                    "external_id": d.external_id,
                    "channel": d.channel,
                    "source": d.source[:64],
                    "at": d.occurred_at.isoformat(),
                }
            )
    created = ConsentRecord.objects.bulk_create(records, batch_size=2000)
    CustomerConsent.objects.bulk_create(list(new_states.values()), batch_size=2000)
    if changed_states:
        CustomerConsent.objects.bulk_update(
            list(changed_states.values()), ["status", "source", "changed_at"], batch_size=2000
        )
    if unsubscribed:
        publish_many(topic="customer.unsubscribed", payloads=unsubscribed)
    announce_changed(customer_id for customer_id, _ in [*new_states, *changed_states])
    return created


def record_consent(
    *,
    customer: Customer,
    channel: str,
    action: str,
    source: str,
    ip: str | None = None,
    occurred_at: datetime | None = None,
    note: str = "",
) -> ConsentRecord:
    """Append one consent decision and update the derived current state (see `record_consents`)."""
    _check_decision(channel, action, source)
    decision = ConsentDecision(
        customer_id=customer.pk,
        external_id=customer.external_id,
        channel=channel,
        action=action,
        source=source,
        occurred_at=occurred_at or timezone.now(),
        ip=ip,
        note=note,
    )
    return record_consents(decisions=[decision])[0]


_OPT_IN_SALT = "customers.double-opt-in"
DOUBLE_OPT_IN_MAX_AGE = 7 * 24 * 3600


class DoubleOptInError(ValueError):
    pass


def request_double_opt_in(*, customer: Customer, source: str, ip: str | None = None) -> str:
    """Record a pending email consent and return the signed token the confirmation link carries.

    The token names the request it confirms, so a confirmation arriving after the customer
    withdrew again cannot re-grant consent.
    """
    if not customer.email:
        raise DoubleOptInError("This customer has no email address to confirm.")
    record = record_consent(
        customer=customer, channel=Channel.EMAIL, action=ConsentAction.REQUESTED, source=source, ip=ip
    )
    return signing.dumps({"c": customer.pk, "r": record.pk}, salt=_OPT_IN_SALT, compress=True)


def confirm_double_opt_in(*, token: str, ip: str | None = None) -> ConsentRecord:
    """Grant email consent for a pending request; a second click changes nothing."""
    try:
        data = signing.loads(token, salt=_OPT_IN_SALT, max_age=DOUBLE_OPT_IN_MAX_AGE)
    except signing.SignatureExpired:
        raise DoubleOptInError("This confirmation link has expired; please sign up again.") from None
    except signing.BadSignature:
        raise DoubleOptInError("This confirmation link is not valid.") from None
    with transaction.atomic():
        customer = Customer.objects.select_for_update().filter(pk=data.get("c")).first()
        if customer is None:
            raise DoubleOptInError("This confirmation link is not valid.")
        request = ConsentRecord.objects.filter(pk=data.get("r"), customer=customer).first()
        if request is None or request.action != ConsentAction.REQUESTED:
            raise DoubleOptInError("This confirmation link is not valid.")
        later = ConsentRecord.objects.filter(
            customer=customer, channel=Channel.EMAIL, occurred_at__gte=request.occurred_at
        ).exclude(pk=request.pk)
        confirmed = later.filter(action=ConsentAction.CONFIRMED).order_by("occurred_at").first()
        if confirmed is not None:
            return confirmed
        if later.filter(action=ConsentAction.WITHDRAWN).exists():
            raise DoubleOptInError("Consent was withdrawn after this request; please sign up again.")
        return record_consent(
            customer=customer,
            channel=Channel.EMAIL,
            action=ConsentAction.CONFIRMED,
            source="double_opt_in",
            ip=ip,
            note=f"confirms request #{request.pk}",
        )


# --- suppression ---------------------------------------------------------------------------------


def suppress_address(
    *, address: str, reason: str, channel: str = Channel.EMAIL, detail: str = ""
) -> Suppression:
    """Never message this address again on this channel (idempotent).

    An erasure outranks every other reason: it is the one entry `lift_suppression` keeps.
    """
    if reason not in SuppressionReason.values:
        raise ValueError(f"Unknown suppression reason {reason!r}")
    entry, created = Suppression.objects.get_or_create(
        channel=channel,
        address_hash=email_digest(address),
        defaults={"reason": reason, "detail": detail[:255]},
    )
    if not created and reason == SuppressionReason.ERASED and entry.reason != reason:
        entry.reason, entry.detail = reason, detail[:255]
        entry.save(update_fields=["reason", "detail"])
    return entry


def lift_suppression(*, address: str, channel: str = Channel.EMAIL) -> int:
    """Remove an unsubscribe/manual suppression (e.g. the customer re-subscribed); erasures stay."""
    deleted, _ = (
        Suppression.objects.filter(channel=channel, address_hash=email_digest(address))
        .exclude(reason=SuppressionReason.ERASED)
        .delete()
    )
    return deleted


# --- bulk upsert of customers --------------------------------------------------------------------


def _mark_duplicates(
    valid: list[tuple[int, dict]], key: str, errors: list[RowError]
) -> list[tuple[int, dict]]:
    """A key twice in one call is ambiguous (which one wins?), so the later rows are errors."""
    first: dict[str, int] = {}
    kept = []
    for index, row in valid:
        value = row[key]
        if value in first:
            errors.append(
                RowError(
                    index, key, f"Duplicate {key} in this call (first at index {first[value]}).", "duplicate"
                )
            )
            continue
        first[value] = index
        kept.append((index, row))
    return kept


def upsert_customers(*, rows: Sequence[Any], partial: bool = False, source: str = "api") -> BulkResult:
    """Create or update customers by `external_id`; the same payload twice changes nothing.

    Fields a row leaves out keep their stored value. Inline consent decisions go through the
    consent ledger (`record_consents`) and are skipped when they would not change the state.
    `customer.created` / `customer.updated` outbox messages are written in the same transaction.
    A soft-deleted customer sent again is restored.
    """
    result = BulkResult(received=len(rows), partial=partial)
    valid, errors = validate_rows(schemas.CUSTOMER, rows)
    valid = _mark_duplicates(valid, "external_id", errors)
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


def _customer_ids(external_ids: Iterable[str]) -> dict[str, int]:
    wanted = list(set(external_ids))
    found: dict[str, int] = {}
    for start in range(0, len(wanted), 5000):
        found.update(
            Customer.objects.filter(external_id__in=wanted[start : start + 5000]).values_list(
                "external_id", "pk"
            )
        )
    return found


def _product_ids(skus: Iterable[str]) -> dict[str, int]:
    from catalog.models import Product

    wanted = list(set(skus))
    found: dict[str, int] = {}
    for start in range(0, len(wanted), 5000):
        found.update(Product.objects.filter(sku__in=wanted[start : start + 5000]).values_list("sku", "pk"))
    return found


def _conflict(index: int, field: str, what: str) -> RowError:
    return RowError(
        index,
        field,
        f"This {what} was already received with a different payload; use a new key for a new {what.split()[0]}.",
        "conflict",
    )


def ingest_events(*, rows: Sequence[Any], partial: bool = False) -> BulkResult:
    """Store behaviour events once each, keyed by their idempotency key, and award event points.

    A replay of a key with the same payload counts as unchanged; the same key with another payload
    is a row error with code `conflict` (HTTP 409 when it is the only kind of error).
    """
    result = BulkResult(received=len(rows), partial=partial)
    valid, errors = validate_rows(schemas.EVENT, rows)
    hashes = {index: payload_digest(rows[index]) for index, _ in valid}
    seen: dict[str, int] = {}
    deduped = []
    duplicates_in_call = 0
    for index, row in valid:
        key = row["idempotency_key"]
        if key in seen:
            if hashes[seen[key]] == hashes[index]:
                duplicates_in_call += 1
            else:
                errors.append(_conflict(index, "idempotency_key", "event key"))
            continue
        seen[key] = index
        deduped.append((index, row))
    customers = _customer_ids(row["customer"] for _, row in deduped)
    products = _product_ids(row["product"] for _, row in deduped if row.get("product"))
    existing = dict(
        Event.objects.filter(idempotency_key__in=[row["idempotency_key"] for _, row in deduped]).values_list(
            "idempotency_key", "payload_hash"
        )
    )
    to_create: list[Event] = []
    replays = 0
    for index, row in deduped:
        key = row["idempotency_key"]
        if key in existing:
            if existing[key] == hashes[index]:
                replays += 1
            else:
                errors.append(_conflict(index, "idempotency_key", "event key"))
            continue
        row_errors = []
        if row["customer"] not in customers:
            row_errors.append(
                RowError(index, "customer", "No customer with this external_id.", "unknown_customer")
            )
        if row.get("product") and row["product"] not in products:
            row_errors.append(RowError(index, "product", "No product with this sku.", "unknown_product"))
        if row_errors:
            errors.extend(row_errors)
            continue
        to_create.append(
            Event(
                customer_id=customers[row["customer"]],
                type=row["type"],
                name=row.get("name", ""),
                product_id=products.get(row.get("product") or ""),
                quantity=row.get("quantity", 1),
                value=row.get("value"),
                properties=row.get("properties", {}),
                occurred_at=row["occurred_at"],
                idempotency_key=key,
                payload_hash=hashes[index],
            )
        )
    result.errors = sorted(errors, key=lambda e: e.index)
    if result.rejected:
        return result.finish_rejected()
    result.failed = len({e.index for e in errors})
    with transaction.atomic():
        created = Event.objects.bulk_create(to_create, batch_size=2000)
        if created:
            from loyalty.services import apply_event_points

            result.extra["points_awarded"] = apply_event_points(events=created)
            event_ids = [event.pk for event in created]
            transaction.on_commit(lambda: signals.events_ingested.send(sender=Event, event_ids=event_ids))
    result.created = len(created)
    result.unchanged = replays + duplicates_in_call
    return result


# --- orders --------------------------------------------------------------------------------------


def ingest_orders(*, rows: Sequence[Any], partial: bool = False) -> BulkResult:
    """Store orders with their lines once each, keyed by `external_id`, and award order points.

    Orders are immutable once received: a return or cancellation arrives as another order with
    negative lines. The same order sent again is unchanged; the same id with another payload is a
    `conflict` row error.
    """
    result = BulkResult(received=len(rows), partial=partial)
    valid, errors = validate_rows(schemas.ORDER, rows)
    valid = _mark_duplicates(valid, "external_id", errors)
    hashes = {index: payload_digest(rows[index]) for index, _ in valid}
    customers = _customer_ids(row["customer"] for _, row in valid)
    products = _product_ids(line["sku"] for _, row in valid for line in row["lines"])
    existing = dict(
        Order.objects.filter(external_id__in=[row["external_id"] for _, row in valid]).values_list(
            "external_id", "payload_hash"
        )
    )
    accepted: list[tuple[int, dict]] = []
    replays = 0
    for index, row in valid:
        if row["external_id"] in existing:
            if existing[row["external_id"]] == hashes[index]:
                replays += 1
            else:
                errors.append(_conflict(index, "external_id", "order id"))
            continue
        row_errors = []
        if row["customer"] not in customers:
            row_errors.append(
                RowError(index, "customer", "No customer with this external_id.", "unknown_customer")
            )
        for position, line in enumerate(row["lines"]):
            if line["sku"] not in products:
                row_errors.append(
                    RowError(index, f"lines[{position}].sku", "No product with this sku.", "unknown_product")
                )
        if row_errors:
            errors.extend(row_errors)
            continue
        accepted.append((index, row))
    result.errors = sorted(errors, key=lambda e: e.index)
    if result.rejected:
        return result.finish_rejected()
    result.failed = len({e.index for e in errors})
    orders: list[Order] = []
    for index, row in accepted:
        total = sum((line["quantity"] * line["unit_price"] for line in row["lines"]), start=0)
        status = row.get("status") or (
            Order.Status.RETURNED
            if all(line["quantity"] < 0 for line in row["lines"])
            else Order.Status.PLACED
        )
        orders.append(
            Order(
                external_id=row["external_id"],
                customer_id=customers[row["customer"]],
                status=status,
                placed_at=row["placed_at"],
                currency=row.get("currency", "GBP"),
                total=total,
                attributes=row.get("attributes", {}),
                payload_hash=hashes[index],
            )
        )
    with transaction.atomic():
        created = Order.objects.bulk_create(orders, batch_size=2000)
        lines = []
        for order, (_, row) in zip(created, accepted, strict=True):
            negative_kind = (
                OrderLine.Kind.CANCELLATION
                if order.status == Order.Status.CANCELLED
                else OrderLine.Kind.RETURN
            )
            for line_no, line in enumerate(row["lines"], start=1):
                kind = line.get("kind") or (OrderLine.Kind.SALE if line["quantity"] > 0 else negative_kind)
                lines.append(
                    OrderLine(
                        order_id=order.pk,
                        line_no=line_no,
                        product_id=products[line["sku"]],
                        sku=line["sku"],
                        kind=kind,
                        quantity=line["quantity"],
                        unit_price=line["unit_price"],
                    )
                )
        OrderLine.objects.bulk_create(lines, batch_size=5000)
        if created:
            from loyalty.services import apply_order_points

            result.extra["points_awarded"] = apply_order_points(orders=created)
            order_ids = [order.pk for order in created]
            transaction.on_commit(lambda: signals.orders_ingested.send(sender=Order, order_ids=order_ids))
    result.created = len(created)
    result.unchanged = replays
    return result


# --- lifecycle and GDPR --------------------------------------------------------------------------


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
