"""Shared OpenAPI pieces: the error bodies every endpoint may answer with, the bulk report."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema_field, inline_serializer
from rest_framework import serializers

ERROR = OpenApiResponse(
    response=OpenApiTypes.OBJECT,
    description="Field errors as `{field: [messages]}`, or `{detail: message}`.",
)
NOT_FOUND = OpenApiResponse(response=OpenApiTypes.OBJECT, description="Not found: `{detail: message}`.")
CONFLICT = OpenApiResponse(
    response=OpenApiTypes.OBJECT, description="Idempotency conflict: `{detail: message}`."
)
TOO_LARGE = OpenApiResponse(response=OpenApiTypes.OBJECT, description="Too many rows or too large a body.")
COMMON_ERRORS = {400: ERROR, 401: ERROR, 403: ERROR, 429: ERROR}
WRITE_ERRORS = {**COMMON_ERRORS, 413: TOO_LARGE}
DETAIL_ERRORS = {
    **COMMON_ERRORS,
    404: NOT_FOUND,
    405: OpenApiResponse(
        response=OpenApiTypes.OBJECT,
        description="The id `bulk`, `batch` or `search` names an action on the collection, not a record.",
    ),
}

PARTIAL_PARAM = OpenApiParameter(
    "partial",
    OpenApiTypes.BOOL,
    OpenApiParameter.QUERY,
    description="Keep the valid rows and report the others (default: all or nothing).",
)
IDEMPOTENCY_PARAM = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description="A replay with the same key and body returns the first answer; another body is 409.",
)

ROW_ERROR = inline_serializer(
    "RowError",
    {
        "index": serializers.IntegerField(),
        "field": serializers.CharField(),
        "message": serializers.CharField(),
        "code": serializers.CharField(),
    },
)

BULK_RESULT = inline_serializer(
    "BulkResult",
    {
        "received": serializers.IntegerField(),
        "created": serializers.IntegerField(),
        "updated": serializers.IntegerField(),
        "unchanged": serializers.IntegerField(),
        "failed": serializers.IntegerField(),
        "partial": serializers.BooleanField(),
        "committed": serializers.BooleanField(),
        "replayed": serializers.BooleanField(required=False),
        "points_awarded": serializers.IntegerField(required=False),
        "errors": ROW_ERROR.__class__(many=True),
    },
)

BULK_RESPONSES = {
    200: BULK_RESULT,
    400: OpenApiResponse(
        OpenApiTypes.OBJECT,
        description="Nothing written: a bulk report naming each bad row and field, or a field error on the body.",
    ),
    409: OpenApiResponse(
        OpenApiTypes.OBJECT,
        description="Nothing written: an idempotency key (header or row) was reused for another payload.",
    ),
    401: ERROR,
    403: ERROR,
    413: TOO_LARGE,
    429: ERROR,
}


def bulk_request(name: str, row_serializer) -> serializers.Serializer:
    from django.conf import settings

    return inline_serializer(
        f"{name}BulkRequest",
        {"rows": row_serializer.__class__(many=True, min_length=1, max_length=settings.BULK_MAX_ROWS)},
    )


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "pattern": r"^-?\d+(\.\d+)?$"},
            {"type": "number"},
        ]
    }
)
class FlexibleDecimalField(serializers.DecimalField):
    """A decimal sent as a JSON number or as a string ("4.50"): both are accepted and documented."""
