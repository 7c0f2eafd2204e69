"""Which arm of a campaign a customer lands in: global holdout, control group or a variant.

Everything goes through `assign_arm`, so switching to `experiments.assignment` (the shared
stable-hash bucketing) is a one-line change there. Assignment must be reproducible: a ledger
writer that crashes and runs again has to reach the same decision for every customer, or the
unique key (run, variant, customer, channel) would let one customer get two variants.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings

HOLDOUT = "holdout"
CONTROL = "control"
VARIANT = "variant"

_SCALE = float(1 << 64)


def _unit(salt: str, customer_id: int) -> float:
    """A uniform number in [0, 1) fixed by (salt, customer): the same input, the same bucket."""
    digest = hashlib.sha256(f"{salt}:{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


@dataclass(frozen=True)
class ArmDesign:
    salt: str
    weights: Sequence[int]
    control_percent: float
    holdout_percent: float
    holdout_salt: str

    @classmethod
    def for_campaign(cls, campaign, weights: Sequence[int]) -> ArmDesign:
        return cls(
            salt=campaign.assignment_salt,
            weights=tuple(weights),
            control_percent=float(campaign.control_percent or 0),
            holdout_percent=float(getattr(settings, "CAMPAIGN_GLOBAL_HOLDOUT_PERCENT", 0) or 0),
            holdout_salt=getattr(settings, "CAMPAIGN_GLOBAL_HOLDOUT_SALT", "global-holdout"),
        )


def assign_arm(*, customer_id: int, design: ArmDesign) -> tuple[str, int | None]:
    """(arm, index of the variant in `design.weights` or None for holdout/control).

    The global holdout is keyed on its own salt only, so a held-out customer is held out of
    every campaign; the control group and the variant split use the campaign's salt with
    different suffixes, so they are independent of each other and of other campaigns.
    """
    if design.holdout_percent > 0 and _unit(design.holdout_salt, customer_id) * 100 < design.holdout_percent:
        return HOLDOUT, None
    if (
        design.control_percent > 0
        and _unit(f"{design.salt}:control", customer_id) * 100 < design.control_percent
    ):
        return CONTROL, None
    total = sum(design.weights)
    point = _unit(f"{design.salt}:variant", customer_id) * total
    running = 0
    for index, weight in enumerate(design.weights):
        running += weight
        if point < running:
            return VARIANT, index
    return VARIANT, len(design.weights) - 1
