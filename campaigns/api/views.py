"""Campaign API: CRUD, launch/pause/resume/cancel, test sends, report, ledger; template preview.

Views stay thin: the services validate and change state, the views turn their errors into
400 (field errors) and 409 (an illegal status change) and audit every change.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from access.services import audit_request
from campaigns.api import serializers as s
from campaigns.composition import TemplateError
from campaigns.models import Campaign, SendState
from campaigns.services import lifecycle, previews, results
from campaigns.services.launch import LaunchError, launch_campaign
from core.api import Conflict
from customers.models import Customer

ERRORS = {
    400: OpenApiResponse(description="Invalid input, with field errors"),
    401: OpenApiResponse(description="No or bad credentials"),
    403: OpenApiResponse(description="Missing scope"),
    404: OpenApiResponse(description="No such campaign"),
    409: OpenApiResponse(description="Not allowed in the campaign's current status"),
}


def _transition(request, campaign: Campaign, *, verb: str, run) -> Response:
    try:
        campaign = run(campaign)
    except LaunchError as exc:
        raise ValidationError(exc.errors) from None
    except lifecycle.TransitionError as exc:
        raise Conflict(str(exc)) from None
    audit_request(request, action=f"campaign.{verb}", target=campaign, details={"status": campaign.status})
    return Response(s.CampaignSerializer(campaign).data)


@extend_schema_view(
    list=extend_schema(summary="List campaigns", responses={200: s.CampaignSerializer(many=True), **ERRORS}),
    retrieve=extend_schema(summary="Get a campaign", responses={200: s.CampaignSerializer, **ERRORS}),
    create=extend_schema(summary="Create a draft campaign", responses={201: s.CampaignSerializer, **ERRORS}),
    update=extend_schema(
        summary="Replace a campaign's settings", responses={200: s.CampaignSerializer, **ERRORS}
    ),
    partial_update=extend_schema(
        summary="Change a campaign", responses={200: s.CampaignSerializer, **ERRORS}
    ),
    destroy=extend_schema(summary="Delete a draft", responses={204: None, **ERRORS}),
)
class CampaignViewSet(viewsets.ModelViewSet):
    scope_resource = "campaigns"
    serializer_class = s.CampaignSerializer
    queryset = Campaign.objects.all().prefetch_related("variants", "include_segments", "exclude_segments")

    def perform_create(self, serializer):
        user = self.request.user if getattr(self.request.user, "is_authenticated", False) else None
        campaign = serializer.save(created_by=user)
        audit_request(self.request, action="campaign.created", target=campaign)

    def perform_update(self, serializer):
        campaign = serializer.instance
        if campaign.status not in lifecycle.EDITABLE:
            raise Conflict(f"A {campaign.status} campaign cannot be changed.")
        with transaction.atomic():
            campaign = serializer.save()
        audit_request(
            self.request,
            action="campaign.changed",
            target=campaign,
            details={"fields": sorted(self.request.data)},
        )

    def perform_destroy(self, instance):
        if instance.status != "draft":
            raise Conflict("Only a draft can be deleted; cancel the campaign instead.")
        audit_request(self.request, action="campaign.deleted", target=instance)
        instance.delete()

    @extend_schema(summary="Launch a draft", request=None, responses={200: s.CampaignSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def launch(self, request, pk=None):
        return _transition(
            request, self.get_object(), verb="launched", run=lambda c: launch_campaign(campaign=c)
        )

    @extend_schema(
        summary="Pause sending", request=s.ReasonSerializer, responses={200: s.CampaignSerializer, **ERRORS}
    )
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        reason = self._reason(request) or "Paused by a marketer"
        return _transition(
            request,
            self.get_object(),
            verb="paused",
            run=lambda c: lifecycle.pause_campaign(campaign=c, reason=reason),
        )

    @extend_schema(summary="Resume sending", request=None, responses={200: s.CampaignSerializer, **ERRORS})
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return _transition(
            request, self.get_object(), verb="resumed", run=lambda c: lifecycle.resume_campaign(campaign=c)
        )

    @extend_schema(
        summary="Cancel for good", request=s.ReasonSerializer, responses={200: s.CampaignSerializer, **ERRORS}
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        reason = self._reason(request) or "Cancelled by a marketer"
        return _transition(
            request,
            self.get_object(),
            verb="cancelled",
            run=lambda c: lifecycle.cancel_campaign(campaign=c, reason=reason),
        )

    @staticmethod
    def _reason(request) -> str:
        serializer = s.ReasonSerializer(data=request.data if isinstance(request.data, dict) else {})
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data.get("reason", "")

    @extend_schema(
        summary="Send a test message to a few addresses (email) or test customers' devices (push)",
        request=s.TestSendRequestSerializer,
        responses={202: s.TestSendSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="test-send")
    def test_send(self, request, pk=None):
        campaign = self.get_object()
        serializer = s.TestSendRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        variants = list(campaign.variants.order_by("id"))
        variant = (
            next((v for v in variants if v.name == data.get("variant")), None)
            if data.get("variant")
            else None
        )
        if data.get("variant") and variant is None:
            raise ValidationError({"variant": ["This campaign has no variant of that name."]})
        variant = variant or (variants[0] if variants else None)
        if variant is None:
            raise ValidationError({"variant": ["Add a variant first."]})
        customer = None
        if data.get("customer"):
            customer = Customer.objects.filter(external_id=data["customer"]).first()
            if customer is None:
                raise ValidationError({"customer": ["No customer with this external id."]})
        try:
            test_send = previews.request_test_send(
                campaign=campaign,
                variant=variant,
                addresses=data.get("addresses", []),
                customer=customer,
                requested_by=request.user,
                test_customers=previews.test_customers_named(data.get("test_customers", [])),
            )
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict) from None
        audit_request(
            request,
            action="campaign.test_sent",
            target=campaign,
            details={"addresses": len(test_send.addresses), "channel": variant.channel_on(campaign)},
        )
        test_send.refresh_from_db()
        return Response(s.TestSendSerializer(test_send).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Campaign report: totals, per variant, over time",
        parameters=[OpenApiParameter("bucket", OpenApiTypes.STR, enum=["hour", "day"])],
        responses={200: OpenApiTypes.OBJECT, **ERRORS},
    )
    @action(detail=True, methods=["get"])
    def report(self, request, pk=None):
        bucket = request.query_params.get("bucket", "day")
        if bucket not in results.BUCKETS:
            raise ValidationError({"bucket": ["Use hour or day."]})
        return Response(results.campaign_report(campaign=self.get_object(), bucket=bucket))

    @extend_schema(summary="Sending progress", responses={200: OpenApiTypes.OBJECT, **ERRORS})
    @action(detail=True, methods=["get"])
    def progress(self, request, pk=None):
        return Response(results.progress(campaign=self.get_object()))

    @extend_schema(
        summary="The campaign's send ledger",
        parameters=[OpenApiParameter("state", OpenApiTypes.STR, enum=list(SendState.values))],
        responses={200: s.SendSerializer(many=True), **ERRORS},
    )
    @action(detail=True, methods=["get"])
    def sends(self, request, pk=None):
        campaign = self.get_object()
        queryset = campaign.sends.select_related("customer", "variant")
        state = request.query_params.get("state")
        if state:
            if state not in SendState.values:
                raise ValidationError({"state": [f"Use one of {', '.join(SendState.values)}."]})
            queryset = queryset.filter(state=state)
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(s.SendSerializer(page, many=True).data)

    @extend_schema(
        summary="Runs of a campaign (one-off, occurrences, triggers)",
        responses={200: s.RunSerializer(many=True), **ERRORS},
    )
    @action(detail=True, methods=["get"])
    def runs(self, request, pk=None):
        page = self.paginate_queryset(self.get_object().runs.all())
        return self.get_paginated_response(s.RunSerializer(page, many=True).data)


class TemplatePreviewView(APIView):
    """POST /api/v1/templates/preview/: render parts for a customer, or say what is wrong where."""

    scope_resource = "templates"
    scope_action = "read"

    @extend_schema(
        summary="Preview a message for a customer",
        request=s.PreviewRequestSerializer,
        responses={200: s.PreviewResponseSerializer, 400: s.PreviewErrorsSerializer, 401: None, 403: None},
    )
    def post(self, request):
        try:
            body = request.data
        except ParseError as exc:  # the contract's error shape for every 400, even unreadable JSON
            return Response(
                {"errors": [{"field": "body", "line": None, "message": str(exc.detail)}]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        serializer = s.PreviewRequestSerializer(data=body if isinstance(body, dict) else None)
        if not serializer.is_valid():
            errors = [
                {"field": field, "line": None, "message": " ".join(str(m) for m in messages)}
                for field, messages in serializer.errors.items()
            ]
            return Response({"errors": errors}, status=status.HTTP_400_BAD_REQUEST)
        data = serializer.validated_data
        customer = None
        if data.get("customer"):
            customer = Customer.objects.filter(external_id=data["customer"]).first()
            if customer is None:
                return Response(
                    {
                        "errors": [
                            {
                                "field": "customer",
                                "line": None,
                                "message": "No customer with this external id.",
                            }
                        ]
                    },
                    status=status.HTTP_400_BAD_REQUEST,
                )
        campaign = Campaign.objects.filter(pk=data["campaign"]).first() if data.get("campaign") else None
        parts = {k: v for k, v in data.items() if k not in ("customer", "campaign")}
        if not any(parts.values()):
            return Response(
                {"errors": [{"field": "html", "line": None, "message": "Give at least one part to render."}]},
                status=status.HTTP_400_BAD_REQUEST,
            )
        try:
            rendered = previews.preview(parts=parts, customer=customer, campaign=campaign)
        except TemplateError as exc:
            return Response({"errors": exc.as_dicts()}, status=status.HTTP_400_BAD_REQUEST)
        return Response(rendered)
