"""Customers, consent, push subscriptions, orders and events over REST. Views stay thin: the
services validate and write, the views translate their reports into HTTP answers."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Prefetch
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from access.services import audit_request
from core.api import (
    Conflict,
    ScopedActionsMixin,
    bulk_rows,
    bulk_status,
    idempotent_response,
    parse_partial_flag,
    row_errors_as_fields,
)
from core.openapi import (
    BULK_RESPONSES,
    COMMON_ERRORS,
    CONFLICT,
    DETAIL_ERRORS,
    ERROR,
    IDEMPOTENCY_PARAM,
    PARTIAL_PARAM,
    WRITE_ERRORS,
    bulk_request,
)
from customers import services
from customers.api import serializers as s
from customers.filters import CustomerFilter, EventFilter, OrderFilter, with_email
from customers.models import (
    ConsentRecord,
    Customer,
    CustomerConsent,
    Event,
    Order,
    OrderLine,
    PushSubscription,
)

EXTERNAL_ID_PARAM = OpenApiParameter("external_id", OpenApiTypes.STR, OpenApiParameter.PATH)


def _single_row(request) -> dict:
    if not isinstance(request.data, dict):
        raise ValidationError({"non_field_errors": ["Send a JSON object."]})
    return dict(request.data)


def _bulk(request, *, scope: str, run) -> Response:
    rows = bulk_rows(request, max_rows=settings.BULK_MAX_ROWS)
    partial = parse_partial_flag(request)

    def produce():
        result = run(rows=rows, partial=partial)
        return bulk_status(result), result.as_dict()

    return idempotent_response(
        request, scope=scope, payload={"rows": rows, "partial": partial}, produce=produce
    )


# `?email=` on the list puts an address in a URL, and URLs end up in access logs, proxies and
# browser history. It keeps working, deprecated since this date (RFC 9745), in favour of
# POST /customers/search/ with the address in the body.
EMAIL_FILTER_DEPRECATED_AT = 1796601600  # 2026-12-07T00:00:00Z
EMAIL_FILTER_PARAM = OpenApiParameter(
    "email",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    deprecated=True,
    description=(
        "Deprecated: an address in a URL ends up in access logs. Use `POST /api/v1/customers/search/` "
        'with `{"email": …}` in the body. Answers carry `Deprecation` and `Link` headers.'
    ),
)


@extend_schema_view(
    list=extend_schema(
        summary="List customers",
        parameters=[EMAIL_FILTER_PARAM],
        responses={200: s.CustomerSerializer(many=True), **COMMON_ERRORS},
    ),
    retrieve=extend_schema(
        summary="Get a customer by external id", responses={200: s.CustomerSerializer, **DETAIL_ERRORS}
    ),
)
class CustomerViewSet(
    ScopedActionsMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    scope_resource = "customers"
    action_scopes = {"export": ("gdpr", "read"), "erase": ("gdpr", "write"), "search": ("customers", "read")}
    lookup_field = "external_id"
    lookup_value_regex = r"[^/]+"
    serializer_class = s.CustomerSerializer
    filterset_class = CustomerFilter
    queryset = Customer.objects.prefetch_related(
        Prefetch("consents", queryset=CustomerConsent.objects.order_by("channel"))
    ).order_by("-id")

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        if "email" in request.query_params:
            successor = request.build_absolute_uri(reverse("customer-search"))
            response["Deprecation"] = f"@{EMAIL_FILTER_DEPRECATED_AT}"
            response["Link"] = f'<{successor}>; rel="successor-version"'
        return response

    @extend_schema(
        summary="Find customers by email address (the address in the body, never in the URL)",
        request=s.CustomerSearchSerializer,
        responses={200: s.CustomerPageSerializer, **WRITE_ERRORS},
    )
    @action(detail=False, methods=["post"], url_path="search")
    def search(self, request):
        if not isinstance(request.data, dict):
            raise ValidationError({"non_field_errors": ["Send a JSON object."]})
        query = s.CustomerSearchSerializer(data=request.data)
        query.is_valid(raise_exception=True)
        matches = with_email(self.get_queryset(), query.validated_data["email"])
        page = self.paginate_queryset(matches)
        return self.get_paginated_response(s.CustomerSerializer(page, many=True).data)

    def _read(self, customer_id: int) -> dict:
        return s.CustomerSerializer(self.get_queryset().get(pk=customer_id)).data

    @extend_schema(
        summary="Create a customer",
        request=s.CustomerRowSerializer,
        responses={201: s.CustomerSerializer, 409: CONFLICT, **WRITE_ERRORS},
    )
    def create(self, request):
        row = _single_row(request)
        external_id = row.get("external_id")
        if (
            isinstance(external_id, str | int)
            and Customer.all_objects.filter(external_id=str(external_id).strip()).exists()
        ):
            raise Conflict("A customer with this external_id exists; use PUT or PATCH to change it.")
        result = services.upsert_customers(rows=[row])
        if result.errors:
            raise ValidationError(row_errors_as_fields(result.errors))
        customer = Customer.objects.get(external_id=str(row["external_id"]).strip())
        return Response(self._read(customer.pk), status=status.HTTP_201_CREATED)

    def _update(self, request, external_id):
        customer = self.get_object()
        row = _single_row(request)
        if "external_id" in row and row["external_id"] != customer.external_id:
            raise ValidationError({"external_id": ["The external id is set by the URL and cannot change."]})
        row["external_id"] = customer.external_id
        result = services.upsert_customers(rows=[row])
        if result.errors:
            raise ValidationError(row_errors_as_fields(result.errors))
        return Response(self._read(customer.pk))

    @extend_schema(
        summary="Update a customer",
        request=s.CustomerUpdateSerializer,
        responses={200: s.CustomerSerializer, **WRITE_ERRORS, 404: ERROR},
    )
    def update(self, request, external_id=None):
        return self._update(request, external_id)

    @extend_schema(
        summary="Update some fields of a customer",
        request=s.CustomerUpdateSerializer,
        responses={200: s.CustomerSerializer, **WRITE_ERRORS, 404: ERROR},
    )
    def partial_update(self, request, external_id=None):
        return self._update(request, external_id)

    @extend_schema(
        summary="Soft-delete a customer (reversible; see erase for GDPR)",
        responses={204: None, **DETAIL_ERRORS},
    )
    def destroy(self, request, external_id=None):
        services.soft_delete_customer(customer=self.get_object(), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Create or update up to BULK_MAX_ROWS customers",
        request=bulk_request("Customer", s.CustomerRowSerializer()),
        parameters=[PARTIAL_PARAM, IDEMPOTENCY_PARAM],
        responses=BULK_RESPONSES,
    )
    @action(detail=False, methods=["post"], url_path="bulk")
    def bulk(self, request):
        return _bulk(request, scope="customers.bulk", run=services.upsert_customers)

    @extend_schema(
        summary="GDPR export: everything stored about the customer",
        responses={200: OpenApiTypes.OBJECT, **DETAIL_ERRORS},
    )
    @action(detail=True, methods=["get"])
    def export(self, request, external_id=None):
        customer = self.get_object()
        audit_request(request, action="customer.exported", target=customer)
        return Response(services.export_customer(customer=customer))

    @extend_schema(
        summary="GDPR erasure: remove personal data, keep the address suppressed",
        request=None,
        responses={200: OpenApiTypes.OBJECT, **DETAIL_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def erase(self, request, external_id=None):
        customer = self.get_object()
        api_key = request.auth if hasattr(request.auth, "scopes") else None
        erased = services.erase_customer(customer=customer, actor=request.user, api_key=api_key)
        return Response({"status": "erased", "erased_at": erased.erased_at.isoformat()})

    @extend_schema(
        methods=["GET"],
        summary="Consent history (the ledger, newest first)",
        responses={200: s.ConsentRecordSerializer(many=True), **DETAIL_ERRORS},
    )
    @extend_schema(
        methods=["POST"],
        summary="Record a consent decision",
        request=s.ConsentDecisionSerializer,
        responses={201: s.ConsentRecordSerializer, **WRITE_ERRORS, 404: ERROR},
    )
    @action(detail=True, methods=["get", "post"])
    def consent(self, request, external_id=None):
        customer = self.get_object()
        if request.method == "GET":
            records = ConsentRecord.objects.filter(customer=customer).order_by("-occurred_at", "-id")[:500]
            return Response(s.ConsentRecordSerializer(records, many=True).data)
        serializer = s.ConsentDecisionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        record = services.record_consent(customer=customer, **serializer.validated_data)
        return Response(s.ConsentRecordSerializer(record).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Start email double opt-in: records a pending consent and sends the confirmation link",
        request=s.DoubleOptInRequestSerializer,
        responses={201: s.DoubleOptInResponseSerializer, **WRITE_ERRORS, 404: ERROR},
    )
    @action(detail=True, methods=["post"], url_path="consent/double-opt-in")
    def double_opt_in(self, request, external_id=None):
        customer = self.get_object()
        serializer = s.DoubleOptInRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            token = services.request_double_opt_in(
                customer=customer, source=data["source"], ip=data.get("ip")
            )
        except services.DoubleOptInError as exc:
            raise ValidationError({"email": [str(exc)]}) from None
        confirm_url = f"{settings.SITE_URL}/api/v1/consent/confirm/?token={token}"
        if data["send_email"]:
            send_mail(
                subject=f"Please confirm your subscription to {settings.COMPANY_NAME}",
                message=f"Confirm that you want our emails:\n\n{confirm_url}\n\nIf this was not you, ignore this message.",
                from_email=settings.DEFAULT_FROM_EMAIL,
                recipient_list=[customer.email],
            )
        return Response(
            {"status": "pending", "token": token, "confirm_url": confirm_url}, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        methods=["GET"],
        summary="Push subscriptions of a customer",
        responses={200: s.PushSubscriptionSerializer(many=True), **DETAIL_ERRORS},
    )
    @extend_schema(
        methods=["POST"],
        summary="Register a push subscription (idempotent per endpoint)",
        request=s.PushSubscriptionSerializer,
        responses={
            201: s.PushSubscriptionSerializer,
            200: s.PushSubscriptionSerializer,
            **WRITE_ERRORS,
            404: ERROR,
        },
    )
    @action(detail=True, methods=["get", "post"], url_path="push-subscriptions")
    def push_subscriptions(self, request, external_id=None):
        customer = self.get_object()
        if request.method == "GET":
            subs = customer.push_subscriptions.order_by("id")
            return Response(s.PushSubscriptionSerializer(subs, many=True).data)
        serializer = s.PushSubscriptionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        sub, created = PushSubscription.objects.update_or_create(
            customer=customer,
            endpoint=data["endpoint"],
            defaults={**{k: v for k, v in data.items() if k != "endpoint"}, "active": True, "last_error": ""},
        )
        return Response(
            s.PushSubscriptionSerializer(sub).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


@extend_schema_view(
    retrieve=extend_schema(responses={200: s.PushSubscriptionSerializer, **DETAIL_ERRORS}),
    destroy=extend_schema(responses={204: None, **DETAIL_ERRORS}),
)
class PushSubscriptionViewSet(mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    scope_resource = "customers"
    lookup_value_regex = r"[^/]+"
    serializer_class = s.PushSubscriptionSerializer
    queryset = PushSubscription.objects.filter(customer__deleted_at__isnull=True).order_by("-id")


class ConfirmDoubleOptInView(APIView):
    """The link in the confirmation email: public, the signed token is the credential."""

    permission_classes = [AllowAny]
    authentication_classes: list = []

    def _confirm(self, token: str) -> Response:
        try:
            services.confirm_double_opt_in(token=token, ip=self.request.META.get("REMOTE_ADDR"))
        except services.DoubleOptInError as exc:
            raise ValidationError({"token": [str(exc)]}) from None
        return Response({"status": "confirmed"})

    @extend_schema(
        summary="Confirm email double opt-in (link target)",
        parameters=[OpenApiParameter("token", OpenApiTypes.STR, OpenApiParameter.QUERY, required=True)],
        responses={200: OpenApiTypes.OBJECT, 400: ERROR, 429: ERROR},
        auth=[],
    )
    def get(self, request):
        token = request.query_params.get("token", "")
        if not token:
            raise ValidationError({"token": ["This field is required."]})
        return self._confirm(token)

    @extend_schema(
        summary="Confirm email double opt-in",
        request=s.ConfirmSerializer,
        responses={200: OpenApiTypes.OBJECT, 400: ERROR, 429: ERROR},
        auth=[],
    )
    def post(self, request):
        serializer = s.ConfirmSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return self._confirm(serializer.validated_data["token"])


def _ingest_one(request, run, model, lookup: str, serializer_class):
    row = _single_row(request)
    result = run(rows=[row])
    if result.errors:
        if result.conflict_only:
            raise Conflict(result.errors[0].message)
        raise ValidationError(row_errors_as_fields(result.errors))
    instance = model.objects.get(**{lookup: str(row[lookup]).strip()})
    code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
    return Response(serializer_class(instance).data, status=code)


@extend_schema_view(
    list=extend_schema(summary="List orders", responses={200: s.OrderSerializer(many=True), **COMMON_ERRORS}),
    retrieve=extend_schema(
        summary="Get an order by external id", responses={200: s.OrderSerializer, **DETAIL_ERRORS}
    ),
)
class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    scope_resource = "orders"
    lookup_field = "external_id"
    lookup_value_regex = r"[^/]+"
    serializer_class = s.OrderSerializer
    filterset_class = OrderFilter
    queryset = (
        Order.objects.filter(customer__deleted_at__isnull=True)
        .select_related("customer")
        .prefetch_related(Prefetch("lines", queryset=OrderLine.objects.order_by("line_no")))
        .order_by("-id")
    )

    @extend_schema(
        summary="Record one order (immutable; returns arrive as orders with negative lines)",
        request=s.OrderRowSerializer,
        responses={201: s.OrderSerializer, 200: s.OrderSerializer, 409: CONFLICT, **WRITE_ERRORS},
    )
    def create(self, request):
        return _ingest_one(request, services.ingest_orders, Order, "external_id", s.OrderSerializer)

    @extend_schema(
        summary="Record up to BULK_MAX_ROWS orders",
        request=bulk_request("Order", s.OrderRowSerializer()),
        parameters=[PARTIAL_PARAM, IDEMPOTENCY_PARAM],
        responses=BULK_RESPONSES,
    )
    @action(detail=False, methods=["post"])
    def batch(self, request):
        return _bulk(request, scope="orders.batch", run=services.ingest_orders)


@extend_schema_view(
    list=extend_schema(summary="List events", responses={200: s.EventSerializer(many=True), **COMMON_ERRORS}),
    retrieve=extend_schema(summary="Get an event", responses={200: s.EventSerializer, **DETAIL_ERRORS}),
)
class EventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    scope_resource = "events"
    lookup_value_regex = r"[^/]+"
    serializer_class = s.EventSerializer
    filterset_class = EventFilter
    queryset = (
        Event.objects.filter(customer__deleted_at__isnull=True)
        .select_related("customer", "product")
        .order_by("-id")
    )

    @extend_schema(
        summary="Record one event (a replay of its idempotency key changes nothing)",
        request=s.EventRowSerializer,
        responses={201: s.EventSerializer, 200: s.EventSerializer, 409: CONFLICT, **WRITE_ERRORS},
    )
    def create(self, request):
        return _ingest_one(request, services.ingest_events, Event, "idempotency_key", s.EventSerializer)

    @extend_schema(
        summary="Record up to BULK_MAX_ROWS events",
        request=bulk_request("Event", s.EventRowSerializer()),
        parameters=[PARTIAL_PARAM, IDEMPOTENCY_PARAM],
        responses=BULK_RESPONSES,
    )
    @action(detail=False, methods=["post"])
    def batch(self, request):
        return _bulk(request, scope="events.batch", run=services.ingest_events)
