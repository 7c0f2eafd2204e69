"""Segment API: CRUD with rule validation, preview, members, CSV export, refresh, static upload.

Views stay thin: rules are checked by `segments.rules`, writes go through `segments.services`,
reads through `segments.selectors`; every change is audited.
"""

from __future__ import annotations

import csv
import time

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import renderers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response

from access.services import audit_request
from core.api import Conflict, ScopedActionsMixin
from segments import selectors, services, static_upload
from segments.api import serializers as s
from segments.models import Segment
from segments.rules.errors import RuleValidationError

ERRORS = {
    400: OpenApiResponse(description="Invalid input, with field errors"),
    401: OpenApiResponse(description="No or bad credentials"),
    403: OpenApiResponse(description="Missing scope"),
    404: OpenApiResponse(description="No such segment"),
}


class PreviewTooSlow(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The preview took too long; narrow the rule or try again later."
    default_code = "preview_timeout"


class CSVRenderer(renderers.BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data if isinstance(data, bytes) else str(data).encode()


class _Echo:
    def write(self, value):
        return value


EXPORT_COLUMNS = ["customer_id", "external_id", "email", "first_name", "last_name", "country", "entered_at"]


def _csv_rows(segment: Segment):
    writer = csv.writer(_Echo())
    yield writer.writerow(EXPORT_COLUMNS)
    rows = (
        selectors.segment_members(segment=segment)
        .order_by("customer_id")
        .values_list(
            "customer_id",
            "customer__external_id",
            "customer__email",
            "customer__first_name",
            "customer__last_name",
            "customer__country",
            "entered_at",
        )
    )
    for row in rows.iterator(chunk_size=5000):
        yield writer.writerow([*row[:-1], row[-1].isoformat()])


def _preview(rules, sample_size: int) -> dict:
    started = time.perf_counter()
    try:
        result = selectors.preview_rule(rule=rules, sample_size=sample_size)
    except RuleValidationError as exc:
        raise ValidationError({"rules": exc.messages()}) from None
    except selectors.PreviewTooSlow:
        raise PreviewTooSlow() from None
    result["seconds"] = round(time.perf_counter() - started, 4)
    return result


@extend_schema_view(
    list=extend_schema(summary="List segments", responses={200: s.SegmentSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="Get a segment", responses={200: s.SegmentSerializer, **ERRORS}),
    create=extend_schema(summary="Create a segment", responses={201: s.SegmentSerializer, **ERRORS}),
    update=extend_schema(summary="Replace a segment", responses={200: s.SegmentSerializer, **ERRORS}),
    partial_update=extend_schema(summary="Change a segment", responses={200: s.SegmentSerializer, **ERRORS}),
    destroy=extend_schema(
        summary="Delete a segment",
        responses={204: None, 409: OpenApiResponse(description="Other segments refer to it"), **ERRORS},
    ),
)
class SegmentViewSet(ScopedActionsMixin, viewsets.ModelViewSet):
    scope_resource = "segments"
    serializer_class = s.SegmentSerializer
    queryset = Segment.objects.all().order_by("-id")
    action_scopes = {
        "preview": ("segments", "read"),
        "segment_preview": ("segments", "read"),
        "members": ("segments", "read"),
        "export": ("segments", "read"),
    }

    def perform_create(self, serializer):
        with transaction.atomic():
            segment = serializer.save()
            audit_request(self.request, action="segment.created", target=segment)
            if segment.kind == Segment.Kind.DYNAMIC and segment.active:
                self._enqueue(segment)

    def perform_update(self, serializer):
        with transaction.atomic():
            segment = serializer.save()
            audit_request(
                self.request,
                action="segment.changed",
                target=segment,
                details={"fields": sorted(self.request.data)},
            )
            if segment.kind == Segment.Kind.DYNAMIC and segment.active and "rules" in self.request.data:
                self._enqueue(segment)

    def perform_destroy(self, instance):
        users = services.check_can_delete(segment=instance)
        if users:
            raise Conflict(f"Segments {', '.join(map(str, users))} refer to this segment; change them first.")
        audit_request(self.request, action="segment.deleted", target=instance)
        instance.delete()

    @staticmethod
    def _enqueue(segment: Segment) -> None:
        from segments.tasks import refresh

        services.request_refresh(segment_ids=[segment.pk])
        segment.refresh_state = Segment.RefreshState.QUEUED
        pk = segment.pk
        transaction.on_commit(lambda: refresh.delay(pk))

    @extend_schema(
        summary="Count and sample of the customers a rule matches",
        request=s.PreviewRequestSerializer,
        responses={200: s.PreviewSerializer, 503: OpenApiResponse(description="Preview timed out"), **ERRORS},
    )
    @action(detail=False, methods=["post"], url_path="preview", url_name="preview")
    def preview(self, request):
        serializer = s.PreviewRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        return Response(_preview(data["rules"], data["sample_size"]))

    @extend_schema(
        summary="Count and sample of the customers the segment's rule matches now",
        responses={200: s.PreviewSerializer, **ERRORS},
    )
    @action(detail=True, methods=["get"], url_path="preview", url_name="segment-preview")
    def segment_preview(self, request, pk=None):
        segment = self.get_object()
        if segment.kind != Segment.Kind.DYNAMIC:
            started = time.perf_counter()
            members = selectors.customers_in_segment(segment=segment)
            return Response(
                {
                    "count": members.count(),
                    "sample": list(members.order_by("pk").values(*selectors.SAMPLE_FIELDS)[:20]),
                    "seconds": round(time.perf_counter() - started, 4),
                }
            )
        return Response(_preview(segment.rules, selectors.PREVIEW_SAMPLE))

    @extend_schema(
        summary="Current members (cursor-paginated)", responses={200: s.MemberSerializer(many=True), **ERRORS}
    )
    @action(detail=True, methods=["get"])
    def members(self, request, pk=None):
        segment = self.get_object()
        page = self.paginate_queryset(selectors.segment_members(segment=segment))
        return self.get_paginated_response(s.MemberSerializer(page, many=True).data)

    @extend_schema(
        summary="Current members as CSV (streamed)",
        responses={(200, "text/csv"): OpenApiTypes.STR, **ERRORS},
    )
    @action(detail=True, methods=["get"], renderer_classes=[CSVRenderer, renderers.JSONRenderer])
    def export(self, request, pk=None):
        segment = self.get_object()
        audit_request(request, action="segment.exported", target=segment)
        response = StreamingHttpResponse(_csv_rows(segment), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="segment-{segment.pk}.csv"'
        return response

    @extend_schema(
        summary="Queue a full refresh", request=None, responses={202: s.RefreshSerializer, **ERRORS}
    )
    @action(detail=True, methods=["post"])
    def refresh(self, request, pk=None):
        segment = self.get_object()
        if segment.kind != Segment.Kind.DYNAMIC:
            raise ValidationError(
                {"kind": ["Only a dynamic segment is refreshed; upload a static one's members."]}
            )
        with transaction.atomic():
            self._enqueue(segment)
            audit_request(request, action="segment.refresh_requested", target=segment)
        return Response(
            {"id": segment.pk, "refresh_state": segment.refresh_state}, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(
        summary="Upload a static segment's members (external ids or emails)",
        request=s.UploadRequestSerializer,
        responses={200: s.UploadReportSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    def upload(self, request, pk=None):
        segment = self.get_object()
        serializer = s.UploadRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            report = static_upload.upload_static_members(
                segment=segment, identifiers=data["identifiers"], match_on=data["match_on"], mode=data["mode"]
            )
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from None
        audit_request(
            request,
            action="segment.uploaded",
            target=segment,
            details={"received": report.received, "matched": report.matched, "mode": data["mode"]},
        )
        return Response(report.as_dict())
