"""A server-rendered SVG bar chart comparing model versions (no JavaScript, no CDN).

Every label goes through ``escape``; numbers are formatted by us, so the SVG is safe to mark
safe and to embed in an admin page.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

SERIES = (
    ("ndcg@10", "nDCG@10", "#417690"),
    ("precision@10", "Precision@10", "#79aec8"),
    ("recall@10", "Recall@10", "#e8a33d"),
    ("coverage", "Coverage", "#6b9e5b"),
)


def metrics_chart_svg(versions: Sequence, *, width: int = 720, height: int = 260) -> SafeString:
    """Grouped bars: one group per version (oldest left), one bar per metric, scale 0..max."""
    rows = [v for v in versions if isinstance(v.metrics, dict) and any(k in v.metrics for k, _, _ in SERIES)]
    if not rows:
        return mark_safe('<p class="help">No version has validation metrics yet.</p>')  # noqa: S308
    values = [[float(v.metrics.get(key) or 0.0) for key, _, _ in SERIES] for v in rows]
    top = max(max(r) for r in values) or 1.0
    left, bottom, right, top_pad = 40, 40, 10, 30
    plot_w, plot_h = width - left - right, height - bottom - top_pad
    group_w = plot_w / len(rows)
    bar_w = max(2.0, group_w * 0.8 / len(SERIES))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="Validation metrics per model version" style="font: 11px sans-serif">',
        f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{width - right}" y2="{top_pad + plot_h}" stroke="#999"/>',
    ]
    for tick in range(5):
        value = top * tick / 4
        y = top_pad + plot_h - plot_h * tick / 4
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#666">{value:.2f}</text>')
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#eee"/>')
    for g, (version, row) in enumerate(zip(rows, values, strict=True)):
        x0 = left + g * group_w + group_w * 0.1
        for s, ((_, label, colour), value) in enumerate(zip(SERIES, row, strict=True)):
            h = plot_h * value / top
            x = x0 + s * bar_w
            y = top_pad + plot_h - h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 1:.1f}" height="{h:.1f}" fill="{colour}">'
                f"<title>v{version.pk} {escape(label)} {value:.4f}</title></rect>"
            )
        caption = f"v{version.pk} {version.algorithm}"
        parts.append(
            f'<text x="{x0 + len(SERIES) * bar_w / 2:.1f}" y="{top_pad + plot_h + 14}" text-anchor="middle">'
            f"{escape(caption[:18])}</text>"
        )
    for s, (_, label, colour) in enumerate(SERIES):
        x = left + s * 120
        parts.append(f'<rect x="{x}" y="6" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="15">{escape(label)}</text>')
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated label is escaped above
