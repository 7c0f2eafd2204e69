"""API plumbing shared by every app: error shape and idempotent request handling."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError, transaction
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.hashing import payload_digest
from core.models import IdempotencyRecord

logger = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "HTTP_IDEMPOTENCY_KEY"


def validated_query(serializer_class, request) -> dict:
    """Query parameters through a serializer, refusing an empty value (`?days=`) with a field error.

    DRF reads a query string like an HTML form, where an empty value means "not given", so
    `?days=` silently became the default; the schema says an integer, so it is a 400 instead.
    """
    serializer = serializer_class(data=request.query_params)
    empty = {
        name: ["May not be empty."]
        for name, field in serializer.fields.items()
        if "" in request.query_params.getlist(name) and not getattr(field, "allow_blank", False)
    }
    if empty:
        raise ValidationError(empty)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Conflict."
    default_code = "conflict"


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "request_too_large"


def exception_handler(exc, context):
    if isinstance(exc, DataError) or (isinstance(exc, ValueError) and "NUL" in str(exc)):
        # A value the database cannot store (a NUL byte, an out-of-range number or offset) that got
        # past validation is still the caller's bad input: answer 400, never 500.
        logger.warning("Database refused a value: %s", exc)
        exc = ValidationError(
            {"detail": ["A value in this request cannot be stored (out of range or NUL byte)."]}
        )
    if isinstance(exc, RecursionError):
        # json.loads gives up on deeply nested arrays/objects with a RecursionError, which DRF's
        # parser does not catch: it is the client's malformed body, not our failure.
        exc = ParseError("JSON parse error - nested too deeply.")
    if isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    elif isinstance(exc, DjangoValidationError):
        exc = ValidationError(exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages})
    return drf_exception_handler(exc, context)


def idempotent_response(request, *, scope: str, payload, produce: Callable[[], tuple[int, dict]]) -> Response:
    """Run `produce` once per idempotency key; replays get the first answer back.

    Without an `Idempotency-Key` header the call simply runs. With one, the record and the
    work share one transaction, so a crash leaves neither behind and a retry runs again.
    """
    key = request.META.get(IDEMPOTENCY_HEADER, "").strip()
    if not key:
        code, body = produce()
        return Response(body, status=code)
    if len(key) > 200:
        raise ValidationError({"Idempotency-Key": ["Must be at most 200 characters."]})
    # API keys are owned by their short public prefix (their primary key embeds the hash and is
    # longer than the column); people by their user id.
    owner = str(getattr(request.auth, "prefix", "") or getattr(request.user, "pk", "") or "")[:100]
    digest = payload_digest(payload)
    existing = IdempotencyRecord.objects.filter(scope=scope, owner=owner, key=key).first()
    if existing is not None:
        return _replay(existing, digest)
    try:
        with transaction.atomic():
            code, body = produce()
            if code < 400:
                IdempotencyRecord.objects.create(
                    scope=scope, owner=owner, key=key, payload_hash=digest, status_code=code, response=body
                )
    except IntegrityError:
        existing = IdempotencyRecord.objects.filter(scope=scope, owner=owner, key=key).first()
        if existing is None:
            raise
        return _replay(existing, digest)
    return Response(body, status=code)


def _replay(record: IdempotencyRecord, digest: str) -> Response:
    if record.payload_hash != digest:
        raise Conflict(
            "This Idempotency-Key was already used with a different payload; use a new key for a new request."
        )
    body = dict(record.response) if isinstance(record.response, dict) else {"result": record.response}
    body["replayed"] = True
    response = Response(body, status=record.status_code)
    response["Idempotent-Replayed"] = "true"
    return response


# --- shared pieces for the apps' API modules -----------------------------------------------------


class StrictFieldsMixin:
    """Reject unknown fields (naming them) and values of the wrong JSON type.

    A typo such as `emial` would otherwise be accepted with a 200 and the caller would never learn
    that nothing was stored. DRF also coerces `"5"` into 5, `0` into false and 12 into `"12"`;
    the OpenAPI schema promises JSON types, so a value of another type is refused instead.
    """

    def to_internal_value(self, data):
        if isinstance(data, dict):
            known = set(self.fields)
            unknown = sorted(str(k) for k in data if k not in known)
            errors = {name: ["Unknown field."] for name in unknown}
            for name, value in data.items():
                field = self.fields.get(name)
                if field is None or field.read_only or value is None:
                    continue
                message = _json_type_error(field, value)
                if message:
                    errors[name] = [message]
            if errors:
                raise ValidationError(errors)
        return super().to_internal_value(data)


_DECIMAL_TEXT = re.compile(r"^-?\d+(\.\d+)?\Z")


def _json_type_error(field, value) -> str:
    from rest_framework import fields as f
    from rest_framework import relations

    if isinstance(field, f.BooleanField):
        return "" if isinstance(value, bool) else "Must be true or false."
    if isinstance(field, f.IntegerField | relations.PrimaryKeyRelatedField):
        return "" if isinstance(value, int) and not isinstance(value, bool) else "Must be an integer."
    if isinstance(field, f.DecimalField):
        if isinstance(value, str):
            return "" if _DECIMAL_TEXT.match(value) else "Must be a number, e.g. 4.50."
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return "" if ok else "Must be a number or a decimal string."
    if isinstance(field, f.CharField | f.ChoiceField | f.DateTimeField | relations.SlugRelatedField):
        return "" if isinstance(value, str) else "Must be a string."
    if isinstance(field, f.ListField):
        return "" if isinstance(value, list) else "Must be a list."
    if isinstance(field, f.DictField):
        return "" if isinstance(value, dict) else "Must be a JSON object."
    return ""


class ScopedActionsMixin:
    """Per-action scopes on a viewset: `action_scopes = {"erase": ("gdpr", "write")}`.

    Other actions use the view's `scope_resource` with read for safe methods and write otherwise.
    """

    action_scopes: dict[str, tuple[str, str]] = {}

    def initial(self, request, *args, **kwargs):
        scope = self.action_scopes.get(getattr(self, "action", None) or "")
        if scope is not None:
            self.scope_resource, self.scope_action = scope
        super().initial(request, *args, **kwargs)


def row_errors_as_fields(errors) -> dict[str, list[str]]:
    """Turn a one-row report into DRF's usual `{field: [messages]}` shape for single-record calls."""
    out: dict[str, list[str]] = {}
    for error in errors:
        out.setdefault(error.field, []).append(error.message)
    return out


def bulk_status(result) -> int:
    """200 when the call committed (partial calls list their bad rows), 409 when only conflicts
    stopped an atomic call, 400 otherwise (and for a partial call in which every row failed)."""
    if result.partial and result.received and result.failed == result.received:
        return status.HTTP_400_BAD_REQUEST  # partial, but not a single row could be kept
    if not result.rejected:
        return status.HTTP_200_OK
    return status.HTTP_409_CONFLICT if result.conflict_only else status.HTTP_400_BAD_REQUEST


def parse_partial_flag(request) -> bool:
    raw = request.query_params.get("partial", "false").strip().lower()
    if raw not in {"true", "false", "1", "0", "yes", "no"}:
        raise ValidationError({"partial": ["Must be true or false."]})
    return raw in {"true", "1", "yes"}


def bulk_rows(request, *, max_rows: int) -> list:
    """The `rows` list of a bulk body, refusing anything but `{"rows": [...]}` with at most `max_rows`."""
    data = request.data
    if not isinstance(data, dict):
        raise ValidationError({"non_field_errors": ['Send a JSON object: {"rows": [...]}.']})
    unknown = sorted(str(k) for k in data if k != "rows")
    if unknown:
        raise ValidationError({name: ["Unknown field."] for name in unknown})
    rows = data.get("rows")
    if not isinstance(rows, list):
        raise ValidationError({"rows": ["This field is required and must be a list."]})
    if not rows:
        raise ValidationError({"rows": ["Send at least one row."]})
    if len(rows) > max_rows:
        raise PayloadTooLarge(f"{len(rows)} rows sent; at most {max_rows} rows per call. Split the batch.")
    return rows
