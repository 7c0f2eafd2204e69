"""Server-rendered SVG charts for the admin (no JavaScript, no CDN: the admin works offline).

Pure functions from numbers to markup; every label goes through `escape`, so a segment or
campaign name can never inject markup into the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

PALETTE = ("#4f46e5", "#0d9488", "#f59e0b", "#e11d48", "#0284c7", "#7c3aed")


def _fmt(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def line_chart(
    *,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    width: int = 560,
    height: int = 180,
    title: str = "",
) -> str:
    """Several series over the same x labels, with a y scale from zero to the largest value."""
    left, right, top, bottom = 40, 24, 12, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(labels), 1)
    peak = max([max(values, default=0) for _, values in series] + [0]) or 1
    step = plot_w / max(n - 1, 1)

    def x(i: int) -> float:
        return left + i * step

    def y(v: float) -> float:
        return top + plot_h - (v / peak) * plot_h

    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg">'
    ]
    for frac in (0, 0.5, 1):
        gy = y(peak * frac)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{gy:.1f}" y2="{gy:.1f}" class="grid"/>')
        parts.append(
            f'<text x="{left - 6}" y="{gy + 4:.1f}" text-anchor="end" class="tick">{_fmt(peak * frac)}</text>'
        )
    every = max(1, n // 6)
    for i, label in enumerate(labels):
        if i % every == 0 or i == n - 1:
            parts.append(
                f'<text x="{x(i):.1f}" y="{height - 6}" text-anchor="middle" class="tick">{escape(label)}</text>'
            )
    for index, (name, values) in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}">'
            f"<title>{escape(name)}</title></polyline>"
        )
        if n <= 40:  # dots show single points and make few-point series readable
            parts.extend(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"/>'
                for i, v in enumerate(values)
            )
    parts.append("</svg>")
    legend = "".join(
        f'<span class="legend-item"><i style="background:{PALETTE[i % len(PALETTE)]}"></i>{escape(name)}'
        f" ({_fmt(sum(values))})</span>"
        for i, (name, values) in enumerate(series)
    )
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def bar_chart(
    *,
    bars: Sequence[tuple[str, float]],
    width: int = 560,
    bar_height: int = 22,
    title: str = "",
    colour_cycle: int | None = None,
) -> str:
    """Horizontal bars, largest first as given, each labelled with its value."""
    label_w, value_w = 150, 60
    plot_w = width - label_w - value_w
    peak = max([v for _, v in bars] + [0]) or 1
    height = max(len(bars), 1) * (bar_height + 6) + 4
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, (label, value) in enumerate(bars):
        top = 4 + i * (bar_height + 6)
        w = max(plot_w * value / peak, 1 if value else 0)
        short = label if len(label) <= 22 else label[:21] + "…"
        parts.append(
            f'<text x="{label_w - 8}" y="{top + bar_height * 0.7:.1f}" text-anchor="end" class="label">'
            f"{escape(short)}</text>"
            f'<rect x="{label_w}" y="{top}" width="{w:.1f}" height="{bar_height}" rx="3" '
            f'fill="{PALETTE[i % (colour_cycle or len(PALETTE))]}"><title>{escape(label)}: {_fmt(value)}</title></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{top + bar_height * 0.7:.1f}" class="value">{_fmt(value)}</text>'
        )
    if not bars:
        parts.append(f'<text x="{width / 2}" y="18" text-anchor="middle" class="tick">No data yet</text>')
    parts.append("</svg>")
    return "".join(parts)
