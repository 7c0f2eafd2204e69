"""Stored explanations: a reason code and the contributing product, rendered to text when read.

The batch scorer stores two small columns per row (``reason``, ``because_product``) instead of
a JSON body, so its COPY builds no JSON and PostgreSQL parses no jsonb per row. Readers (the
campaigns' selector, the API, the admin preview) render the same body the scorer used to store:
``{"reason": "because_you_bought", "text": "Because you bought Green tea", "because": ["SKU"]}``.
Rows that carry a JSON ``explanation`` (written before migration 0006, or by hand) keep it.
"""

from __future__ import annotations

from recommender.engine.types import REASON_TEXT, Reason

REASON_CODES = {reason: reason.name.lower() for reason in Reason}


def explanation_body(reason: int, because_id: int | None, label: tuple[str, str] | None) -> dict:
    """The explanation of a stored row: ``label`` is the because-product's (sku, name), or None
    when that product no longer exists (then the text names nobody, as it did when stored)."""
    reason_enum = Reason(int(reason))
    template = REASON_TEXT[reason_enum]
    body: dict = {"reason": REASON_CODES[reason_enum]}
    if because_id is not None and "{item}" in template:
        sku, name = label or ("", "")
        body["text"] = template.format(item=name or sku)
        body["because"] = [sku] if sku else []
    else:
        body["text"] = REASON_TEXT[Reason.MATCHES_YOUR_TASTE] if "{item}" in template else template
    return body


def stored_explanation(row) -> dict:
    """The explanation of a ``Recommendation`` read with ``select_related("because_product")``."""
    if row.explanation:
        return row.explanation
    if row.reason == Reason.NONE and row.because_product_id is None:
        return {}
    because = row.because_product
    label = (because.sku, because.name) if because is not None else None
    return explanation_body(row.reason, row.because_product_id, label)
