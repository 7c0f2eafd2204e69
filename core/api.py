"""API plumbing shared by every app: error shape and idempotent request handling."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from rest_framework import status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.hashing import payload_digest
from core.models import IdempotencyRecord

logger = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "HTTP_IDEMPOTENCY_KEY"


class Conflict(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Conflict."
    default_code = "conflict"


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large."
    default_code = "request_too_large"


def exception_handler(exc, context):
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
    owner = str(getattr(request.auth, "pk", "") or getattr(request.user, "pk", "") or "")
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
