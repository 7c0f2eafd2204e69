"""Template tags of the themed admin: the dashboard and the navigation grouped by task."""

from __future__ import annotations

from django import template
from django.urls import NoReverseMatch, reverse
from django.utils.safestring import mark_safe

from core import charts
from core.dashboard import cached_dashboard_numbers

register = template.Library()
CHANNEL_LABELS = {"email": "Email", "push": "Push", "sms": "SMS"}

#: The marketer's tasks, in menu order; each admin model goes under one of them.
TASKS = ("Audience", "Campaigns", "Recommendations", "Analytics", "Settings")
_BY_MODEL = {
    "segments.customerfeatures": "Analytics",
    "campaigns.send": "Analytics",
    "campaigns.trackingevent": "Analytics",
    "campaigns.conversion": "Analytics",
    "campaigns.campaignrun": "Analytics",
    "catalog.product": "Recommendations",
    "catalog.category": "Recommendations",
}
_BY_APP = {
    "customers": "Audience",
    "segments": "Audience",
    "loyalty": "Audience",
    "campaigns": "Campaigns",
    "catalog": "Recommendations",
    "recommender": "Recommendations",
    "experiments": "Analytics",
    "access": "Settings",
    "auth": "Settings",
    "webhooks": "Settings",
    "django_celery_beat": "Settings",
}


def task_of(app_label: str, object_name: str) -> str:
    return _BY_MODEL.get(f"{app_label}.{object_name.lower()}") or _BY_APP.get(app_label, "Settings")


def _change_url(name: str, pk) -> str:
    try:
        return reverse(f"admin:{name}_change", args=[pk])
    except NoReverseMatch:  # that admin is not installed
        return ""


@register.filter
def by_task(app_list) -> list[dict]:
    """Regroup the admin's per-app list into the marketer's tasks (same dicts Django builds)."""
    groups: dict[str, list[dict]] = {task: [] for task in TASKS}
    for app in app_list or []:
        for model in app.get("models", []):
            groups[task_of(app["app_label"], model["object_name"])].append(
                {**model, "app_label": app["app_label"]}
            )
    return [
        {"name": task, "app_label": task.lower(), "models": sorted(models, key=lambda m: str(m["name"]))}
        for task, models in groups.items()
        if models
    ]


@register.simple_tag
def dashboard() -> dict:
    data = cached_dashboard_numbers()
    segments = [{**s, "url": _change_url("segments_segment", s["id"])} for s in data["top_segments"]]
    labels = [day[5:] for day in data["days"]]
    series = data["series"]
    return {
        **data,
        "top_segments": segments,
        "engagement_chart": mark_safe(  # noqa: S308 - built from numbers and escaped labels
            charts.line_chart(
                labels=labels,
                series=[
                    ("Sent", series["sent"]),
                    ("Opens", series["opens"]),
                    ("Clicks", series["clicks"]),
                ],
                title="Sent, opens and clicks per day",
                width=1000,
                height=240,
            )
        ),
        "conversion_chart": mark_safe(  # noqa: S308
            charts.line_chart(
                labels=labels,
                series=[("Conversions", series["conversions"])],
                title="Conversions per day",
                height=150,
            )
        ),
        "revenue_chart": mark_safe(  # noqa: S308
            charts.line_chart(
                labels=labels, series=[("Revenue", series["revenue"])], title="Revenue per day", height=150
            )
        ),
        "reach_chart": mark_safe(  # noqa: S308
            charts.bar_chart(
                bars=[(CHANNEL_LABELS.get(channel, channel), n) for channel, n in data["reach"].items()],
                title="Consented reach per channel",
            )
        ),
        "segments_chart": mark_safe(  # noqa: S308
            charts.bar_chart(
                bars=[(s["name"], s["member_count"]) for s in data["top_segments"]], title="Top segments"
            )
        ),
    }


@register.filter
def pct(value) -> str:
    """A rate (0..1) as a percentage with one decimal; a dash when there is none."""
    if value in (None, ""):
        return "–"
    return f"{float(value) * 100:.1f}\u00a0%"


@register.simple_tag
def campaign_report_charts(report: dict) -> dict:
    """The report's funnel (per variant) and its engagement over time, as SVG."""
    funnel = []
    for row in report["variants"]:
        for label, key in (
            ("delivered", "delivered"),
            ("opened", "opens_human"),
            ("clicked", "clicks"),
            ("converted", "conversions"),
        ):
            funnel.append((f"{row['variant']} · {label}", float(row.get(key) or 0)))
    buckets = report.get("over_time") or []
    labels = [str(b["bucket"])[5:16].replace("T", " ") for b in buckets]
    return {
        "funnel": mark_safe(charts.bar_chart(bars=funnel, title="Funnel per variant", colour_cycle=4)),  # noqa: S308
        "over_time": mark_safe(  # noqa: S308
            charts.line_chart(
                labels=labels or [""],
                series=[
                    ("Sent", [float(b["sent"]) for b in buckets] or [0]),
                    ("Opens", [float(b["opens_human"]) for b in buckets] or [0]),
                    ("Clicks", [float(b["clicks"]) for b in buckets] or [0]),
                    ("Conversions", [float(b["conversions"]) for b in buckets] or [0]),
                ],
                title="Engagement over time",
                height=200,
            )
        ),
    }
