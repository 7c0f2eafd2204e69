from datetime import UTC, datetime, timedelta

import pytest

from loyalty.models import PointsLot, PointsTransaction, Redemption
from loyalty.services import (
    IdempotencyConflict,
    InsufficientPoints,
    RewardNotAvailable,
    adjust_points,
    award_points,
    enrol,
    expire_points,
    redeem_reward,
    reevaluate_tiers,
)
from tests.factories.customers import CustomerFactory
from tests.factories.loyalty import LoyaltyProgramFactory, MembershipFactory, RewardFactory, TierFactory
from webhooks.models import OutboxMessage

pytestmark = pytest.mark.django_db
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_award_is_idempotent_and_conflicting_key_refused():
    m = MembershipFactory()
    first = award_points(membership=m, points=100, idempotency_key="k1", reason="welcome")
    again = award_points(membership=m, points=100, idempotency_key="k1", reason="welcome")
    assert first.pk == again.pk and m.balance == 100
    with pytest.raises(IdempotencyConflict):
        award_points(membership=m, points=50, idempotency_key="k1", reason="welcome")
    assert OutboxMessage.objects.filter(topic="points.changed").count() == 1


def test_redemption_consumes_oldest_lots_first_and_never_goes_negative():
    program = LoyaltyProgramFactory(points_expiry_days=30)
    m = MembershipFactory(program=program)
    award_points(membership=m, points=60, idempotency_key="a", occurred_at=T0)
    award_points(membership=m, points=60, idempotency_key="b", occurred_at=T0 + timedelta(days=5))
    reward = RewardFactory(program=program, cost_points=80)
    redemption = redeem_reward(membership=m, reward=reward, idempotency_key="r1")
    assert redeem_reward(membership=m, reward=reward, idempotency_key="r1").pk == redemption.pk
    assert m.balance == 40
    lots = list(PointsLot.objects.order_by("expires_at").values_list("remaining", flat=True))
    assert lots == [0, 40]
    with pytest.raises(InsufficientPoints):
        redeem_reward(membership=m, reward=reward, idempotency_key="r2")
    assert Redemption.objects.count() == 1
    m.refresh_from_db()
    assert (
        m.balance
        == 40
        == PointsTransaction.objects.filter(membership=m).order_by("-id").first().balance_after
    )


def test_negative_balance_only_when_program_allows():
    m = MembershipFactory(program__allow_negative_balance=True)
    adjust_points(membership=m, points=-30, idempotency_key="fix", reason="goodwill reversal")
    assert m.balance == -30
    strict = MembershipFactory()
    with pytest.raises(InsufficientPoints):
        adjust_points(membership=strict, points=-1, idempotency_key="fix", reason="oops")


def test_reward_rules():
    program = LoyaltyProgramFactory()
    gold = TierFactory(program=program, name="Gold", threshold=1000)
    m = MembershipFactory(program=program)
    award_points(membership=m, points=500, idempotency_key="a")
    with pytest.raises(RewardNotAvailable):
        redeem_reward(
            membership=m, reward=RewardFactory(program=program, minimum_tier=gold), idempotency_key="x"
        )
    with pytest.raises(RewardNotAvailable):
        redeem_reward(membership=m, reward=RewardFactory(), idempotency_key="y")
    with pytest.raises(RewardNotAvailable):
        redeem_reward(membership=m, reward=RewardFactory(program=program, active=False), idempotency_key="z")


def test_expiry_is_set_based_and_idempotent(django_assert_max_num_queries):
    program = LoyaltyProgramFactory(points_expiry_days=10)
    members = [MembershipFactory(program=program) for _ in range(20)]
    for m in members:
        award_points(membership=m, points=10, idempotency_key="old", occurred_at=T0)
        award_points(membership=m, points=7, idempotency_key="new", occurred_at=T0 + timedelta(days=20))
    with django_assert_max_num_queries(16):
        expired = expire_points(now=T0 + timedelta(days=15))
    assert expired == 200
    assert expire_points(now=T0 + timedelta(days=15)) == 0
    members[0].refresh_from_db()
    assert members[0].balance == 7
    assert PointsTransaction.objects.filter(kind="expire").count() == 20


def test_tiers_follow_lifetime_points():
    program = LoyaltyProgramFactory()
    bronze = TierFactory(program=program, name="Bronze", threshold=0)
    silver = TierFactory(program=program, name="Silver", threshold=100)
    m = enrol(customer=CustomerFactory(), program=program)
    assert m.tier == bronze
    award_points(membership=m, points=150, idempotency_key="a")
    assert m.tier == silver and m.tier_changed_at is not None
    silver.threshold = 200
    silver.save()
    assert reevaluate_tiers(program=program) == 1
    m.refresh_from_db()
    assert m.tier == bronze
    assert reevaluate_tiers() == 0


def test_scheduled_tasks_run_through_celery(settings):
    """The beat entries name real tasks; run eagerly here, they call the same set-based services."""
    from loyalty import tasks
    from webhooks.tasks import dispatch_due

    settings.CELERY_TASK_ALWAYS_EAGER = True
    assert {"loyalty.expire_points", "loyalty.reevaluate_tiers", "webhooks.dispatch_due"} <= set(
        settings.CELERY_BEAT_SCHEDULE
    )
    program = LoyaltyProgramFactory(points_expiry_days=1)
    m = MembershipFactory(program=program)
    award_points(membership=m, points=5, idempotency_key="a", occurred_at=T0)
    assert tasks.expire_points.apply().get() == 5
    assert tasks.reevaluate_tiers.apply(args=[program.pk]).get() == 0
    assert dispatch_due.apply().get()["fanned_out"] == 0
