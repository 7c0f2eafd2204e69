from __future__ import annotations

import django_filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from core.filters import StrictFilterSet
from core.openapi import COMMON_ERRORS, DETAIL_ERRORS
from webhooks import services
from webhooks.api import serializers as s
from webhooks.models import WebhookDelivery, WebhookEndpoint


@extend_schema_view(
    list=extend_schema(responses={200: s.EndpointSerializer(many=True), **COMMON_ERRORS}),
    retrieve=extend_schema(responses={200: s.EndpointSerializer, **DETAIL_ERRORS}),
    create=extend_schema(
        request=s.EndpointSerializer, responses={201: s.EndpointCreatedSerializer, **COMMON_ERRORS}
    ),
    update=extend_schema(responses={200: s.EndpointSerializer, **DETAIL_ERRORS}),
    partial_update=extend_schema(responses={200: s.EndpointSerializer, **DETAIL_ERRORS}),
    destroy=extend_schema(responses={204: None, **DETAIL_ERRORS}),
)
class EndpointViewSet(viewsets.ModelViewSet):
    scope_resource = "webhooks"
    lookup_value_regex = r"[^/]+"
    serializer_class = s.EndpointSerializer
    queryset = WebhookEndpoint.objects.order_by("-id")

    def create(self, request, *args, **kwargs):
        serializer = s.EndpointSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint = serializer.save()
        return Response(s.EndpointCreatedSerializer(endpoint).data, status=status.HTTP_201_CREATED)


class DeliveryFilter(StrictFilterSet):
    topic = django_filters.CharFilter(field_name="message__topic")

    class Meta:
        model = WebhookDelivery
        fields = ["endpoint", "status", "topic"]


@extend_schema_view(
    list=extend_schema(responses={200: s.DeliverySerializer(many=True), **COMMON_ERRORS}),
    retrieve=extend_schema(responses={200: s.DeliverySerializer, **DETAIL_ERRORS}),
)
class DeliveryViewSet(viewsets.ReadOnlyModelViewSet):
    scope_resource = "webhooks"
    lookup_value_regex = r"[^/]+"
    serializer_class = s.DeliverySerializer
    filterset_class = DeliveryFilter
    queryset = WebhookDelivery.objects.select_related("message").order_by("-id")

    @extend_schema(
        summary="Try a delivery again now, with a fresh attempt budget",
        request=None,
        responses={200: s.DeliverySerializer, **DETAIL_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        delivery = self.get_object()
        services.retry_delivery(delivery=delivery)
        delivery.refresh_from_db()
        return Response(s.DeliverySerializer(delivery).data)
