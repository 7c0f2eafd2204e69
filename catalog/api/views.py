from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from catalog import services
from catalog.api import serializers as s
from catalog.filters import ProductFilter
from catalog.models import Category, Product
from core.api import (
    Conflict,
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


def _row(request) -> dict:
    if not isinstance(request.data, dict):
        raise ValidationError({"non_field_errors": ["Send a JSON object."]})
    return dict(request.data)


@extend_schema_view(
    list=extend_schema(
        summary="List products", responses={200: s.ProductSerializer(many=True), **COMMON_ERRORS}
    ),
    retrieve=extend_schema(
        summary="Get a product by sku", responses={200: s.ProductSerializer, **DETAIL_ERRORS}
    ),
)
class ProductViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    scope_resource = "products"
    lookup_field = "sku"
    lookup_value_regex = r"[^/]+"
    serializer_class = s.ProductSerializer
    filterset_class = ProductFilter
    queryset = Product.objects.order_by("-id")

    def _upsert(self, row) -> Product:
        result = services.upsert_products(rows=[row])
        if result.errors:
            raise ValidationError(row_errors_as_fields(result.errors))
        return Product.objects.get(sku=str(row["sku"]).strip())

    @extend_schema(
        summary="Create a product",
        request=s.ProductRowSerializer,
        responses={201: s.ProductSerializer, 409: CONFLICT, **WRITE_ERRORS},
    )
    def create(self, request):
        row = _row(request)
        sku = row.get("sku")
        if isinstance(sku, str | int) and Product.objects.filter(sku=str(sku).strip()).exists():
            raise Conflict("A product with this sku exists; use PUT or PATCH to change it.")
        return Response(s.ProductSerializer(self._upsert(row)).data, status=status.HTTP_201_CREATED)

    def _update(self, request):
        product = self.get_object()
        row = _row(request)
        if "sku" in row and row["sku"] != product.sku:
            raise ValidationError({"sku": ["The sku is set by the URL and cannot change."]})
        row["sku"] = product.sku
        return Response(s.ProductSerializer(self._upsert(row)).data)

    @extend_schema(
        summary="Update a product",
        request=s.ProductUpdateSerializer,
        responses={200: s.ProductSerializer, 404: ERROR, **WRITE_ERRORS},
    )
    def update(self, request, sku=None):
        return self._update(request)

    @extend_schema(
        summary="Update some fields of a product",
        request=s.ProductUpdateSerializer,
        responses={200: s.ProductSerializer, 404: ERROR, **WRITE_ERRORS},
    )
    def partial_update(self, request, sku=None):
        return self._update(request)

    @extend_schema(
        summary="Deactivate a product (order history keeps it)", responses={204: None, **DETAIL_ERRORS}
    )
    def destroy(self, request, sku=None):
        product = self.get_object()
        services.upsert_products(rows=[{"sku": product.sku, "active": False}])
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Create or update up to BULK_MAX_ROWS products",
        request=bulk_request("Product", s.ProductRowSerializer()),
        parameters=[PARTIAL_PARAM, IDEMPOTENCY_PARAM],
        responses=BULK_RESPONSES,
    )
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        rows = bulk_rows(request, max_rows=settings.BULK_MAX_ROWS)
        partial = parse_partial_flag(request)

        def produce():
            result = services.upsert_products(rows=rows, partial=partial)
            return bulk_status(result), result.as_dict()

        return idempotent_response(
            request, scope="products.bulk", payload={"rows": rows, "partial": partial}, produce=produce
        )


@extend_schema_view(
    list=extend_schema(responses={200: s.CategorySerializer(many=True), **COMMON_ERRORS}),
    retrieve=extend_schema(responses={200: s.CategorySerializer, **DETAIL_ERRORS}),
)
class CategoryViewSet(viewsets.ReadOnlyModelViewSet):
    scope_resource = "products"
    lookup_value_regex = r"[^/]+"
    serializer_class = s.CategorySerializer
    queryset = Category.objects.select_related("parent").order_by("-id")
