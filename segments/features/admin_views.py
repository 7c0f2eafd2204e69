"""The "Customer analytics" admin page: charts drawn on the server as SVG, no script, no CDN.

The page reads the selectors and turns their numbers into shapes (rectangles with coordinates and
colours computed here); the template only places them. Anyone with `segments:read` (admin,
marketer, analyst) sees it; the recompute button is for `segments:write` (admin, marketer).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from access.scopes import scopes_for_user
from segments.features import selectors, tasks

READ_SCOPE = "segments:read"
WRITE_SCOPE = "segments:write"

# Chart geometry, in SVG user units.
_CELL = 64
_BAR_HEIGHT = 22
_BAR_WIDTH = 360
_LABEL_WIDTH = 150
_HIST_WIDTH = 560
_HIST_HEIGHT = 160
_HIST_MARGIN = 40  # room on the left for the first rotated label


def can_view(user) -> bool:
    return READ_SCOPE in scopes_for_user(user)


def can_recompute(user) -> bool:
    return WRITE_SCOPE in scopes_for_user(user)


def _heat(value: float, top: float) -> tuple[str, str]:
    """Fill (light to dark blue by share of the largest cell) and a readable text colour."""
    share = value / top if top else 0.0
    lightness = 96 - 62 * share
    return f"hsl(212, 70%, {lightness:.0f}%)", "#fff" if lightness < 60 else "#1b2a3a"


def rfm_heatmap(grid: list[dict[str, Any]]) -> dict[str, Any]:
    """R (rows, 5 at the top) by F (columns, 1 at the left), customers per cell."""
    top = max((cell["customers"] for cell in grid), default=0)
    cells = []
    for cell in grid:
        fill, ink = _heat(cell["customers"], top)
        x = 40 + (cell["frequency"] - 1) * _CELL
        y = 10 + (5 - cell["recency"]) * _CELL
        cells.append(
            {
                **cell,
                "x": x,
                "y": y,
                "fill": fill,
                "ink": ink,
                "text_x": x + _CELL / 2,
                "text_y": y + _CELL / 2 + 5,
            }
        )
    axis = [{"score": score, "pos": 40 + (score - 1) * _CELL + _CELL / 2} for score in range(1, 6)]
    rows = [{"score": score, "pos": 10 + (5 - score) * _CELL + _CELL / 2 + 4} for score in range(1, 6)]
    return {
        "cells": cells,
        "size": _CELL,
        "columns": axis,
        "rows": rows,
        "width": 40 + 5 * _CELL + 10,
        "height": 10 + 5 * _CELL + 40,
        "axis_y": 10 + 5 * _CELL + 18,
        "title_y": 10 + 5 * _CELL + 36,
    }


def bar_chart(items: list[dict[str, Any]], *, label: str, value: str = "customers") -> dict[str, Any]:
    top = max((item[value] for item in items), default=0)
    bars = []
    for index, item in enumerate(items):
        width = (item[value] / top * _BAR_WIDTH) if top else 0
        y = index * (_BAR_HEIGHT + 6)
        bars.append(
            {
                "label": str(item[label]),
                "value": item[value],
                "share": item.get("share"),
                "y": y,
                "width": round(width, 1),
                "text_y": y + _BAR_HEIGHT / 2 + 5,
                "value_x": _LABEL_WIDTH + width + 6,
            }
        )
    return {
        "bars": bars,
        "label_width": _LABEL_WIDTH,
        "bar_height": _BAR_HEIGHT,
        "width": _LABEL_WIDTH + _BAR_WIDTH + 110,
        "height": max(len(items) * (_BAR_HEIGHT + 6), _BAR_HEIGHT),
    }


def histogram(distribution: dict[str, Any] | None, *, money: bool) -> dict[str, Any] | None:
    """Vertical bars of a stored distribution (bin edges and counts), the overflow bin last."""
    if not distribution or not distribution.get("counts"):
        return None
    edges, counts = distribution["bins"], list(distribution["counts"])
    labels = [
        f"{edges[i]:,.0f}–{edges[i + 1]:,.0f}" if money else f"{edges[i]:.1f}–{edges[i + 1]:.1f}"
        for i in range(len(counts))
    ]
    if distribution.get("overflow"):
        counts.append(distribution["overflow"])
        labels.append(f"> {edges[-1]:,.0f}" if money else f"> {edges[-1]:.1f}")
    top = max(counts) or 1
    slot = _HIST_WIDTH / len(counts)
    bars = []
    for index, (count, text) in enumerate(zip(counts, labels, strict=True)):
        height = count / top * _HIST_HEIGHT
        bars.append(
            {
                "x": round(_HIST_MARGIN + index * slot + 2, 1),
                "y": round(10 + _HIST_HEIGHT - height, 1),
                "width": round(slot - 4, 1),
                "height": round(height, 1),
                "count": count,
                "label": text,
                "label_x": round(_HIST_MARGIN + index * slot + slot / 2, 1),
            }
        )
    return {
        "bars": bars,
        "width": _HIST_MARGIN + _HIST_WIDTH,
        "height": _HIST_HEIGHT + 60,
        "base_y": 10 + _HIST_HEIGHT,
        "label_y": 10 + _HIST_HEIGHT + 14,
    }


def dashboard_context(*, user) -> dict[str, Any]:
    rfm = selectors.rfm_summary()
    clusters = selectors.cluster_summary()
    clv = selectors.clv_summary()
    feature_names = clusters.get("features") or []
    profile_rows = [
        {
            **profile,
            "share_percent": profile["share"] * 100,
            "cells": [
                {"value": profile["mean"].get(name), "level": profile["level"].get(name, "")}
                for name in feature_names
            ],
        }
        for profile in clusters.get("clusters") or []
    ]
    return {
        "rfm": rfm,
        "heatmap": rfm_heatmap(rfm["grid"]) if rfm["customers_scored"] else None,
        "group_bars": bar_chart(rfm["groups"], label="group") if rfm["customers_scored"] else None,
        "clusters": clusters,
        "cluster_bars": bar_chart(
            [
                {**p, "name": f"{p['cluster']}: {p['description']}"[:40]}
                for p in clusters.get("clusters") or []
            ],
            label="name",
        )
        if clusters.get("clusters")
        else None,
        "feature_names": feature_names,
        "profile_rows": profile_rows,
        "clv": clv,
        "clv_histogram": histogram(clv.get("clv"), money=True),
        "p_alive_histogram": histogram(clv.get("p_alive"), money=False),
        "runs": selectors.recent_runs(limit=10),
        "can_recompute": can_recompute(user),
    }


def analytics_view(request, *, model_admin):
    """GET: the page. POST: queue the pipeline (segments:write only), then back to the page."""
    if not can_view(request.user):
        raise PermissionDenied
    if request.method == "POST":
        if not can_recompute(request.user):
            raise PermissionDenied
        transaction.on_commit(lambda: tasks.analytics_pipeline.delay(None))
        messages.success(
            request,
            "Recompute queued: features and RFM, then clusters, then churn and CLV. Reload in a while.",
        )
        return HttpResponseRedirect(reverse("admin:segment_features_analyticsrun_changelist"))
    context = {
        **model_admin.admin_site.each_context(request),
        "title": "Customer analytics",
        "opts": model_admin.model._meta,
        **dashboard_context(user=request.user),
    }
    return TemplateResponse(request, "admin/segments/features/dashboard.html", context)
