"""Loyalty over REST. The ledger is read-only here: points change only through the award, adjust
and redeem actions, which go through loyalty.services (locks, lots, idempotency keys)."""

from __future__ import annotations

from django.db.models import ProtectedError
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from core.api import Conflict
from core.openapi import COMMON_ERRORS, CONFLICT, DETAIL_ERRORS, ERROR
from customers.models import Customer
from loyalty import services
from loyalty.api import serializers as s
from loyalty.filters import MembershipFilter, TierFilter, TransactionFilter
from loyalty.models import LoyaltyProgram, Membership, PointsTransaction, Reward, Tier

ACTION_ERRORS = {**DETAIL_ERRORS, 409: CONFLICT}


def _ledger_call(fn, **kwargs):
    try:
        return fn(**kwargs)
    except services.IdempotencyConflict as exc:
        raise Conflict(str(exc)) from None
    except services.LoyaltyError as exc:
        raise ValidationError({"non_field_errors": [str(exc)], "code": exc.code}) from None


def _crud_schema(serializer):
    return extend_schema_view(
        list=extend_schema(responses={200: serializer(many=True), **COMMON_ERRORS}),
        retrieve=extend_schema(responses={200: serializer, **DETAIL_ERRORS}),
        create=extend_schema(responses={201: serializer, **COMMON_ERRORS}),
        update=extend_schema(responses={200: serializer, **DETAIL_ERRORS}),
        partial_update=extend_schema(responses={200: serializer, **DETAIL_ERRORS}),
        destroy=extend_schema(responses={204: None, **DETAIL_ERRORS, 409: CONFLICT}),
    )


class _ProtectedDestroy:
    def perform_destroy(self, instance):
        try:
            instance.delete()
        except ProtectedError:
            raise Conflict("Still referenced by redemptions; deactivate it instead.") from None


@_crud_schema(s.ProgramSerializer)
class ProgramViewSet(_ProtectedDestroy, viewsets.ModelViewSet):
    scope_resource = "loyalty"
    lookup_value_regex = r"[^/]+"
    serializer_class = s.ProgramSerializer
    queryset = LoyaltyProgram.objects.order_by("-id")


@_crud_schema(s.TierSerializer)
class TierViewSet(viewsets.ModelViewSet):
    scope_resource = "loyalty"
    lookup_value_regex = r"[^/]+"
    serializer_class = s.TierSerializer
    filterset_class = TierFilter
    queryset = Tier.objects.order_by("-id")

    def perform_create(self, serializer):
        self._check_unique(serializer)
        serializer.save()

    def perform_update(self, serializer):
        self._check_unique(serializer)
        serializer.save()

    def _check_unique(self, serializer):
        data = serializer.validated_data
        program = data.get("program") or serializer.instance.program
        others = Tier.objects.filter(program=program)
        if serializer.instance is not None:
            others = others.exclude(pk=serializer.instance.pk)
        if "name" in data and others.filter(name=data["name"]).exists():
            raise ValidationError({"name": ["This program already has a tier with this name."]})
        if "threshold" in data and others.filter(threshold=data["threshold"]).exists():
            raise ValidationError({"threshold": ["This program already has a tier at this threshold."]})


@extend_schema_view(
    list=extend_schema(responses={200: s.MembershipSerializer(many=True), **COMMON_ERRORS}),
    retrieve=extend_schema(responses={200: s.MembershipSerializer, **DETAIL_ERRORS}),
)
class MembershipViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    scope_resource = "loyalty"
    lookup_value_regex = r"[^/]+"
    serializer_class = s.MembershipSerializer
    filterset_class = MembershipFilter
    queryset = (
        Membership.objects.filter(customer__deleted_at__isnull=True)
        .select_related("customer", "program", "tier")
        .order_by("-id")
    )

    @extend_schema(
        summary="Enrol a customer in a program (idempotent)",
        request=s.EnrolSerializer,
        responses={201: s.MembershipSerializer, **COMMON_ERRORS},
    )
    def create(self, request):
        serializer = s.EnrolSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        customer = Customer.objects.filter(external_id=data["customer"]).first()
        program = LoyaltyProgram.objects.filter(slug=data["program"]).first()
        errors = {}
        if customer is None:
            errors["customer"] = ["No customer with this external_id."]
        if program is None:
            errors["program"] = ["No program with this slug."]
        if errors:
            raise ValidationError(errors)
        membership = services.enrol(customer=customer, program=program)
        return Response(s.MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Award points",
        request=s.AwardSerializer,
        responses={200: s.TransactionSerializer, **ACTION_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def award(self, request, pk=None):
        membership = self.get_object()
        serializer = s.AwardSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        row = _ledger_call(
            services.award_points, membership=membership, source_type="api", **serializer.validated_data
        )
        return Response(s.TransactionSerializer(row).data)

    @extend_schema(
        summary="Adjust points (signed, with a reason)",
        request=s.AdjustSerializer,
        responses={200: s.TransactionSerializer, **ACTION_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def adjust(self, request, pk=None):
        membership = self.get_object()
        serializer = s.AdjustSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        row = _ledger_call(
            services.adjust_points, membership=membership, actor=request.user, **serializer.validated_data
        )
        return Response(s.TransactionSerializer(row).data)

    @extend_schema(
        summary="Redeem a reward",
        request=s.MemberRedeemSerializer,
        responses={200: s.RedemptionSerializer, **ACTION_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def redeem(self, request, pk=None):
        membership = self.get_object()
        serializer = s.MemberRedeemSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reward = Reward.objects.filter(pk=serializer.validated_data["reward"]).first()
        if reward is None:
            raise ValidationError({"reward": ["No such reward."]})
        redemption = _ledger_call(
            services.redeem_reward,
            membership=membership,
            reward=reward,
            idempotency_key=serializer.validated_data["idempotency_key"],
        )
        return Response(s.RedemptionSerializer(redemption).data)


@extend_schema_view(
    list=extend_schema(responses={200: s.TransactionSerializer(many=True), **COMMON_ERRORS}),
    retrieve=extend_schema(responses={200: s.TransactionSerializer, **DETAIL_ERRORS}),
)
class TransactionViewSet(viewsets.ReadOnlyModelViewSet):
    """The append-only points ledger; no writes here."""

    scope_resource = "loyalty"
    lookup_value_regex = r"[^/]+"
    serializer_class = s.TransactionSerializer
    filterset_class = TransactionFilter
    queryset = PointsTransaction.objects.order_by("-id")


@_crud_schema(s.RewardSerializer)
class RewardViewSet(_ProtectedDestroy, viewsets.ModelViewSet):
    scope_resource = "loyalty"
    lookup_value_regex = r"[^/]+"
    serializer_class = s.RewardSerializer
    queryset = Reward.objects.order_by("-id")

    @extend_schema(
        summary="Redeem this reward for a customer",
        request=s.RewardRedeemSerializer,
        responses={200: s.RedemptionSerializer, **ACTION_ERRORS, 400: ERROR},
    )
    @action(detail=True, methods=["post"])
    def redeem(self, request, pk=None):
        reward = self.get_object()
        serializer = s.RewardRedeemSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = Membership.objects.filter(
            program=reward.program_id, customer__external_id=serializer.validated_data["customer"]
        ).first()
        if membership is None:
            raise ValidationError({"customer": ["This customer is not a member of the reward's program."]})
        redemption = _ledger_call(
            services.redeem_reward,
            membership=membership,
            reward=reward,
            idempotency_key=serializer.validated_data["idempotency_key"],
        )
        return Response(s.RedemptionSerializer(redemption).data)
