"""A server-rendered SVG of each variant's cumulative effect with its interval over time.

Plain SVG markup built here (no JavaScript, nothing fetched from a CDN): a shaded band for the
interval, a line for the effect, and the zero line that the band must leave for a result to be
clear. Every piece of text is escaped; numbers are formatted by us, never taken from input.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")
WIDTH, HEIGHT = 720, 280
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 20, 40


def _format(value: float, percent: bool) -> str:
    return f"{value * 100:+.1f} %" if percent else f"{value:+.3g}"


def effect_chart(points: list[dict], *, percent: bool, title: str = "") -> str:
    """SVG for `series` points of the results service ({at, comparisons: [{variant, effect, ci_low, ci_high}]})."""
    lines: dict[str, list[tuple[datetime, float | None, float | None, float | None]]] = {}
    for point in points:
        at = datetime.fromisoformat(point["at"])
        for c in point["comparisons"]:
            lines.setdefault(c["variant"], []).append((at, c["effect"], c["ci_low"], c["ci_high"]))
    values = [v for series in lines.values() for _, *triple in series for v in triple if v is not None]
    if not values:
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="60" role="img" '
            'aria-label="No data yet"><text x="10" y="30">Not enough data for a chart yet.</text></svg>'
        )
    low, high = min(values + [0.0]), max(values + [0.0])
    if high - low < 1e-12:
        low, high = low - 1, high + 1
    pad = (high - low) * 0.08
    low, high = low - pad, high + pad
    times = sorted({at for series in lines.values() for at, *_ in series})
    start, end = times[0], times[-1]
    span = (end - start).total_seconds() or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(at: datetime) -> float:
        return LEFT + plot_w * ((at - start).total_seconds() / span if len(times) > 1 else 0.5)

    def y(value: float) -> float:
        return TOP + plot_h * (high - value) / (high - low)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(title or "Cumulative effect over time")}" class="effect-chart">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" stroke="#ccc"/>',
        f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(0):.1f}" y2="{y(0):.1f}" stroke="#333" '
        'stroke-dasharray="4 3"/>',
    ]
    for value in (high - pad, 0.0, low + pad):
        parts.append(
            f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" font-size="11" text-anchor="end">'
            f"{escape(_format(value, percent))}</text>"
        )
    for at, anchor in ((start, "start"), (end, "end")):
        parts.append(
            f'<text x="{x(at):.1f}" y="{HEIGHT - 12}" font-size="11" text-anchor="{anchor}">'
            f"{escape(at.strftime('%Y-%m-%d %H:%M'))}</text>"
        )
    for index, (variant, series) in enumerate(lines.items()):
        colour = COLOURS[index % len(COLOURS)]
        banded = [(at, lo, hi) for at, _, lo, hi in series if lo is not None and hi is not None]
        if banded:
            upper = " ".join(f"{x(at):.1f},{y(hi):.1f}" for at, _, hi in banded)
            lower = " ".join(f"{x(at):.1f},{y(lo):.1f}" for at, lo, _ in reversed(banded))
            parts.append(
                f'<polygon points="{upper} {lower}" fill="{colour}" fill-opacity="0.18" stroke="none"/>'
            )
        effect = [(at, e) for at, e, _, _ in series if e is not None]
        if effect:
            path = " ".join(f"{x(at):.1f},{y(e):.1f}" for at, e in effect)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
            for at, e in effect:
                parts.append(f'<circle cx="{x(at):.1f}" cy="{y(e):.1f}" r="2.5" fill="{colour}"/>')
        parts.append(
            f'<text x="{LEFT + 8}" y="{TOP + 16 + 14 * index}" font-size="12" fill="{colour}">'
            f"{escape(variant)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
