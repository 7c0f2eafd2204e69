"""Experiments API: design (CRUD while the campaign is editable), results, the decision, the holdout.

Views stay thin: the results and decision services compute; the views validate the query and map
a decision that is not possible now to 409.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from access.services import audit_request
from core.api import Conflict, validated_query
from experiments.api import serializers as s
from experiments.models import Experiment, ExperimentState, Mode
from experiments.services.decision import decide_experiment
from experiments.services.holdout import holdout_report
from experiments.services.results import cached_experiment_results

ERRORS = {
    400: OpenApiResponse(description="Invalid input, with field errors"),
    401: OpenApiResponse(description="No or bad credentials"),
    403: OpenApiResponse(description="Missing scope"),
    404: OpenApiResponse(description="No such experiment"),
    409: OpenApiResponse(description="Not possible in the experiment's current state"),
}


@extend_schema_view(
    list=extend_schema(
        summary="List experiments", responses={200: s.ExperimentSerializer(many=True), **ERRORS}
    ),
    retrieve=extend_schema(summary="Get an experiment", responses={200: s.ExperimentSerializer, **ERRORS}),
    create=extend_schema(
        summary="Design the experiment of a campaign", responses={201: s.ExperimentSerializer, **ERRORS}
    ),
    update=extend_schema(
        summary="Replace an experiment's design", responses={200: s.ExperimentSerializer, **ERRORS}
    ),
    partial_update=extend_schema(
        summary="Change an experiment's design", responses={200: s.ExperimentSerializer, **ERRORS}
    ),
    destroy=extend_schema(summary="Remove an experiment before launch", responses={204: None, **ERRORS}),
)
class ExperimentViewSet(viewsets.ModelViewSet):
    scope_resource = "experiments"
    serializer_class = s.ExperimentSerializer
    queryset = Experiment.objects.select_related("campaign", "winner", "default_variant")

    def perform_create(self, serializer):
        try:
            with transaction.atomic():
                experiment = serializer.save()
        except IntegrityError:  # a concurrent create for the same campaign won
            raise ValidationError({"campaign": ["This campaign already has an experiment."]}) from None
        audit_request(self.request, action="experiment.created", target=experiment)

    def perform_update(self, serializer):
        experiment = serializer.save()
        audit_request(
            self.request,
            action="experiment.changed",
            target=experiment,
            details={"fields": sorted(self.request.data)},
        )

    def perform_destroy(self, instance):
        if instance.state != ExperimentState.DESIGN or instance.campaign.status != "draft":
            raise Conflict("The experiment has started; it stays as the record of the test.")
        audit_request(self.request, action="experiment.deleted", target=instance)
        instance.delete()

    @extend_schema(
        summary="Results: per variant, effects with intervals, SRM, guardrails, verdict, time series",
        parameters=[OpenApiParameter("series", OpenApiTypes.BOOL, description="Include the daily series")],
        responses={200: OpenApiTypes.OBJECT, **ERRORS},
    )
    @action(detail=True, methods=["get"])
    def results(self, request, pk=None):
        query = validated_query(s.ResultsQuerySerializer, request)
        return Response(cached_experiment_results(experiment=self.get_object(), with_series=query["series"]))

    @extend_schema(
        summary="Choose the winner of a test-then-send experiment now",
        request=s.DecideSerializer,
        responses={200: s.ExperimentSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"])
    def decide(self, request, pk=None):
        experiment = self.get_object()
        body = s.DecideSerializer(data=request.data if isinstance(request.data, dict) else {})
        body.is_valid(raise_exception=True)
        if experiment.mode != Mode.TEST_THEN_SEND or experiment.state != ExperimentState.SAMPLING:
            raise Conflict("Only a test-then-send experiment whose sample is out can be decided.")
        if not decide_experiment(experiment_id=experiment.pk, force=body.validated_data["now"]):
            raise Conflict(
                "The sample is still being sent or the window has not passed; pass now=true to decide anyway."
            )
        experiment.refresh_from_db()
        audit_request(
            request, action="experiment.decided", target=experiment, details={"winner": experiment.winner_id}
        )
        return Response(s.ExperimentSerializer(experiment).data)


class HoldoutReportView(APIView):
    scope_resource = "experiments"

    @extend_schema(
        summary="Global holdout: revenue per customer, held out versus everyone else",
        parameters=[OpenApiParameter("days", OpenApiTypes.INT, description="Period, 1 to 366 days")],
        responses={200: OpenApiTypes.OBJECT, **ERRORS},
    )
    def get(self, request):
        query = validated_query(s.HoldoutQuerySerializer, request)
        return Response(holdout_report(days=query["days"]))
