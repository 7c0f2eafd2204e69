"""Customer analytics over the API: summaries (segments:read), recompute (segments:write), and one
customer's features (customers:read). Views only read selectors or enqueue the pipeline."""

from __future__ import annotations

from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ParseError, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from core.openapi import COMMON_ERRORS, DETAIL_ERRORS
from customers.models import Customer
from segments.features import selectors, tasks
from segments.features.api import serializers as s

SUMMARY = OpenApiResponse(response=OpenApiTypes.OBJECT, description="See docs/customer-analytics.md.")


class RFMSummaryView(APIView):
    scope_resource = "segments"

    @extend_schema(
        summary="RFM grid and groups",
        description=(
            "Customers and net revenue per recency x frequency cell (scores 1-5) and per named group, "
            "with the mapping from scores to groups, from the latest successful run."
        ),
        responses={200: SUMMARY, **COMMON_ERRORS},
    )
    def get(self, request):
        return Response(selectors.rfm_summary())


class ClusterSummaryView(APIView):
    scope_resource = "segments"

    @extend_schema(
        summary="Customer clusters",
        description="Size, share, feature means and a description of each k-means cluster.",
        responses={200: SUMMARY, **COMMON_ERRORS},
    )
    def get(self, request):
        return Response(selectors.cluster_summary())


class CLVSummaryView(APIView):
    scope_resource = "segments"

    @extend_schema(
        summary="Churn and lifetime value",
        description=(
            "Fitted BG/NBD and Gamma-Gamma parameters, the distribution of P(alive) and predicted "
            "CLV, and what each number means."
        ),
        responses={200: SUMMARY, **COMMON_ERRORS},
    )
    def get(self, request):
        return Response(selectors.clv_summary())


class RecomputeView(APIView):
    scope_resource = "segments"
    scope_action = "write"

    @extend_schema(
        summary="Recompute the customer analytics",
        description="Queues features + RFM, then clusters, then churn and CLV (one Celery chain).",
        request=s.RecomputeRequestSerializer,
        responses={202: s.RecomputeResponseSerializer, **COMMON_ERRORS},
    )
    def post(self, request):
        try:
            body = request.data
        except ParseError as exc:
            raise ValidationError({"body": [str(exc.detail)]}) from exc
        if body == "" or body == {}:  # no body at all (a JSON `null` is not an object: refused below)
            body = {}
        if not isinstance(body, dict):
            raise ValidationError({"body": ["Expected a JSON object."]})
        serializer = s.RecomputeRequestSerializer(data=body)
        serializer.is_valid(raise_exception=True)
        as_of = serializer.validated_data.get("as_of")
        stamp = as_of.isoformat() if as_of else None
        transaction.on_commit(lambda: tasks.analytics_pipeline.delay(stamp))
        payload = {
            "queued": True,
            "task": tasks.analytics_pipeline.name,
            "as_of": as_of,
            "steps": [tasks.compute_features.name, tasks.compute_clusters.name, tasks.compute_clv.name],
        }
        return Response(s.RecomputeResponseSerializer(payload).data, status=status.HTTP_202_ACCEPTED)


class CustomerFeaturesView(APIView):
    scope_resource = "customers"

    @extend_schema(
        summary="A customer's features, RFM group, cluster, churn and CLV",
        responses={200: s.CustomerFeaturesSerializer, **DETAIL_ERRORS},
    )
    def get(self, request, external_id: str):
        customer = Customer.objects.filter(external_id=external_id).first()
        if customer is None:
            raise NotFound("No customer with this external_id.")
        features = selectors.customer_features(customer=customer)
        if features is None:
            raise NotFound(
                "No features computed for this customer yet: they are computed nightly, or on "
                "POST /api/v1/analytics/recompute/."
            )
        return Response(s.CustomerFeaturesSerializer({"customer": customer.external_id, **features}).data)
