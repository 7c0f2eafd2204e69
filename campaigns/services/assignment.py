"""Which arm of a campaign a customer lands in: global holdout, control group or a variant.

Everything goes through `assign_arm`, built on `experiments.assignment` (the shared stable-hash
bucketing, reproducible outside Python). Assignment must be reproducible: a ledger writer that
crashes and runs again has to reach the same decision for every customer it already wrote, and an
experiment's analysis has to be able to recompute who was in which arm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings

from experiments.assignment import GLOBAL_HOLDOUT_SALT, assign_variant, assignment_point, in_global_holdout

HOLDOUT = "holdout"
CONTROL = "control"
VARIANT = "variant"
ROLLOUT = "rollout"


@dataclass(frozen=True)
class ArmDesign:
    salt: str
    weights: Sequence[float]
    control_percent: float
    holdout_percent: float
    holdout_salt: str

    @classmethod
    def for_campaign(cls, campaign, weights: Sequence[float]) -> ArmDesign:
        return cls(
            salt=campaign.assignment_salt,
            weights=tuple(weights),
            control_percent=float(campaign.control_percent or 0),
            holdout_percent=float(getattr(settings, "CAMPAIGN_GLOBAL_HOLDOUT_PERCENT", 0) or 0),
            holdout_salt=getattr(settings, "CAMPAIGN_GLOBAL_HOLDOUT_SALT", GLOBAL_HOLDOUT_SALT),
        )


def assign_arm(*, customer_id: int, design: ArmDesign) -> tuple[str, int | None]:
    """(arm, index of the variant in `design.weights` or None for holdout/control).

    The global holdout is keyed on its own salt only, so a held-out customer is held out of
    every campaign; the control group uses the campaign's salt with a suffix and the variant
    split the campaign's salt itself, so they are independent of each other and of other
    campaigns (experiments.assignment's stable hash).
    """
    if design.holdout_percent > 0 and in_global_holdout(
        customer_id, share=design.holdout_percent / 100, salt=design.holdout_salt
    ):
        return HOLDOUT, None
    if (
        design.control_percent > 0
        and assignment_point(f"{design.salt}:control", customer_id) * 100 < design.control_percent
    ):
        return CONTROL, None
    return VARIANT, assign_variant(design.salt, customer_id, design.weights)
