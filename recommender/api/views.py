"""Recommendation API: per-customer lists, similar products, the model registry.

Reads are served from the stored table of the active version, falling back to real-time
scoring (see ``recommender.services.serving``). Promote, rollback and train change the
registry through the services, which audit them.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from access.models import ApiKey
from core.api import Conflict, validated_query
from recommender.api import serializers as s
from recommender.models import ModelVersion, RecommenderConfig
from recommender.services import registry, serving

TRAINING_TIMEOUT = timedelta(hours=3)
ERRORS = {
    400: OpenApiResponse(description="Invalid parameters, with field errors"),
    401: OpenApiResponse(description="No or bad credentials"),
    403: OpenApiResponse(description="Missing scope"),
}


def _query(serializer_class, request) -> dict:
    return validated_query(serializer_class, request)


def _config(name: str | None) -> RecommenderConfig | None:
    try:
        return serving.resolve_config(name)
    except serving.ConfigNotFound:
        raise ValidationError({"config": [f"No recommender config named {name!r}."]}) from None


def _actor(request) -> dict:
    api_key = request.auth if isinstance(request.auth, ApiKey) else None
    return {"actor": request.user, "api_key": api_key}


class CustomerRecommendationsView(APIView):
    scope_resource = "recommendations"

    @extend_schema(
        summary="Recommendations for a customer",
        description="Stored top-n of the active model; real-time scoring for customers without stored "
        "rows; the cold-start list for an unknown customer (never a 404).",
        parameters=[s.RecommendationQuerySerializer],
        responses={200: s.CustomerRecommendationsSerializer, **ERRORS},
    )
    def get(self, request, external_id: str):
        params = _query(s.RecommendationQuerySerializer, request)
        try:
            body = serving.recommendations_for_request(
                external_id=external_id,
                n=params["n"],
                category=params.get("category"),
                config_name=params.get("config"),
            )
        except serving.ConfigNotFound:
            raise ValidationError(
                {"config": [f"No recommender config named {params['config']!r}."]}
            ) from None
        body["context"] = params.get("context")
        return Response(body)


class SimilarProductsView(APIView):
    scope_resource = "recommendations"

    @extend_schema(
        summary="Products similar to a product",
        parameters=[s.SimilarQuerySerializer],
        responses={
            200: s.SimilarProductsSerializer,
            404: OpenApiResponse(description="No such product"),
            **ERRORS,
        },
    )
    def get(self, request, sku: str):
        params = _query(s.SimilarQuerySerializer, request)
        try:
            body = serving.similar_for_request(sku=sku, n=params["n"], config_name=params.get("config"))
        except serving.ConfigNotFound:
            raise ValidationError(
                {"config": [f"No recommender config named {params['config']!r}."]}
            ) from None
        if body is None:
            raise Http404("No such product.")
        return Response(body)


@extend_schema(
    summary="Model versions with their metrics",
    parameters=[
        OpenApiParameter("config", OpenApiTypes.STR, description="Only this config's versions"),
        OpenApiParameter("status", OpenApiTypes.STR, enum=[c for c, _ in ModelVersion.Status.choices]),
    ],
    responses={200: s.ModelVersionSerializer(many=True), **ERRORS},
)
class ModelVersionListView(generics.ListAPIView):
    scope_resource = "recommendations"
    serializer_class = s.ModelVersionSerializer
    pagination_class = None
    filter_backends = []

    def get_queryset(self):
        qs = ModelVersion.objects.select_related("config").order_by("-created_at")
        params = self.request.query_params
        status_value = params.get("status")
        if status_value is not None:
            if status_value not in ModelVersion.Status.values:
                raise ValidationError({"status": [f"Choose one of {', '.join(ModelVersion.Status.values)}."]})
            qs = qs.filter(status=status_value)
        if params.get("config"):
            qs = qs.filter(config__name=params["config"])
        return qs[:200]


@extend_schema(
    summary="One model version",
    responses={200: s.ModelVersionSerializer, 404: OpenApiResponse(description="No such version"), **ERRORS},
)
class ModelVersionDetailView(generics.RetrieveAPIView):
    scope_resource = "recommendations"
    serializer_class = s.ModelVersionSerializer
    queryset = ModelVersion.objects.select_related("config")


def _registry_answer(action, **kwargs) -> Response:
    """Run a registry action (promote, rollback) and answer with the version it made active."""
    try:
        version = action(**kwargs)
    except registry.RegistryError as exc:
        raise Conflict(str(exc)) from None
    version = ModelVersion.objects.select_related("config").get(pk=version.pk)
    return Response(s.ModelVersionSerializer(version).data)


class PromoteView(APIView):
    scope_resource = "recommendations"
    scope_action = "write"

    @extend_schema(
        summary="Make a version its config's active model",
        request=None,
        responses={
            200: s.ModelVersionSerializer,
            404: OpenApiResponse(description="No such version"),
            409: OpenApiResponse(description="Not promotable (not ready)"),
            **ERRORS,
        },
    )
    def post(self, request, pk: int):
        get_object_or_404(ModelVersion, pk=pk)
        return _registry_answer(registry.promote, version_id=pk, **_actor(request))


class RollbackView(APIView):
    scope_resource = "recommendations"
    scope_action = "write"

    @extend_schema(
        summary="Go back to the previously active version",
        request=None,
        responses={
            200: s.ModelVersionSerializer,
            404: OpenApiResponse(description="No such config"),
            409: OpenApiResponse(description="Nothing to roll back to"),
            **ERRORS,
        },
    )
    def post(self, request, pk: int):
        get_object_or_404(RecommenderConfig, pk=pk)
        return _registry_answer(registry.rollback, config_id=pk, **_actor(request))


class TrainView(APIView):
    scope_resource = "recommendations"
    scope_action = "write"

    @extend_schema(
        summary="Train a new version now (in the background)",
        description="Creates the version in `training` and queues the run; when it is ready it is "
        "scored and then promoted. A failed run leaves the active version in place.",
        request=None,
        responses={
            202: s.TrainAcceptedSerializer,
            404: OpenApiResponse(description="No such config"),
            409: OpenApiResponse(description="A training run is already in progress"),
            **ERRORS,
        },
    )
    def post(self, request, pk: int):
        from access.services import audit_request
        from recommender.tasks import train

        config = get_object_or_404(RecommenderConfig, pk=pk)
        with transaction.atomic():
            RecommenderConfig.objects.select_for_update().get(pk=config.pk)
            recent = timezone.now() - TRAINING_TIMEOUT  # an older "training" row is a crashed run
            if ModelVersion.objects.filter(
                config=config, status=ModelVersion.Status.TRAINING, created_at__gte=recent
            ).exists():
                raise Conflict("A training run of this config is already in progress.")
            version = registry.start_training(config=config)
            audit_request(request, action="recommender.train_requested", target=version)
            transaction.on_commit(lambda: train.delay(config.pk, version.pk))
        version.refresh_from_db()
        version = ModelVersion.objects.select_related("config").get(pk=version.pk)
        return Response(
            {"version": s.ModelVersionSerializer(version).data, "queued": True},
            status=status.HTTP_202_ACCEPTED,
        )
