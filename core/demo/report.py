"""Stage 7: out/demo-report.json (deterministic numbers), out/report.html (self-contained, SVG plots)."""

from __future__ import annotations

import io
import json
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from django.template.loader import render_to_string  # noqa: E402
from django.utils.safestring import mark_safe  # noqa: E402

from core.demo.analysis import ARM_LABELS  # noqa: E402
from core.demo.analytics import FM_STEPS  # noqa: E402
from core.demo.context import DemoContext  # noqa: E402
from core.demo.runner import DEMO_PASSWORD, DEMO_USER  # noqa: E402

REPORT_VERSION = 1
INK, ACCENT, MUTED, GOOD = "#1f2937", "#2563eb", "#9ca3af", "#059669"

plt.rcParams.update(
    {
        "svg.hashsalt": "reachly-demo",
        "svg.fonttype": "none",
        "font.size": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.edgecolor": MUTED,
        "axes.labelcolor": INK,
        "xtick.color": INK,
        "ytick.color": INK,
    }
)


def _svg(fig) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def plot_models(recommender: dict[str, Any]) -> str:
    k = recommender["k"]
    rows = [r for r in recommender["comparison"] if "skipped" not in r][::-1]
    names = [r["algorithm"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
    y = np.arange(len(rows))
    ax.barh(y + 0.2, [r[f"ndcg@{k}"] for r in rows], height=0.4, color=ACCENT, label=f"nDCG@{k}")
    ax.barh(y - 0.2, [r[f"recall@{k}"] for r in rows], height=0.4, color=MUTED, label=f"recall@{k}")
    ax.set_yticks(y, [f"{n}  (chosen)" if r.get("chosen") else n for n, r in zip(names, rows, strict=True)])
    ax.set_xlabel(
        f"on the last {int(recommender['split']['test_ratio'] * 100)} % of purchases (temporal split)"
    )
    ax.legend(loc="lower right", frameon=False)
    return _svg(fig)


def plot_rfm(grid: list[list[int]]) -> str:
    data = np.asarray(grid)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.imshow(data, cmap="Blues", aspect="auto")
    ax.set_xticks(range(len(FM_STEPS)), [f"{v:g}" for v in FM_STEPS])
    ax.set_yticks(range(5), ["5", "4", "3", "2", "1"])
    ax.set_xlabel("FM score: (frequency + monetary) / 2")
    ax.set_ylabel("R score (5 = most recent)")
    peak = data.max() or 1
    for (row, col), value in np.ndenumerate(data):
        if value:
            ax.text(
                col, row, str(value), ha="center", va="center", color="white" if value > peak / 2 else INK
            )
    for spine in ax.spines.values():
        spine.set_visible(False)
    return _svg(fig)


def plot_funnel(report: dict[str, Any]) -> str:
    steps = [
        ("delivered", "Delivered"),
        ("opens_human", "Opened"),
        ("clicks", "Clicked"),
        ("conversions", "Converted"),
    ]
    variants = [v for v in ("A", "B") if v in report["variants"]]
    fig, ax = plt.subplots(figsize=(7, 3))
    x = np.arange(len(steps))
    width = 0.38
    for i, name in enumerate(variants):
        values = [report["variants"][name][key] or 0 for key, _ in steps]
        bars = ax.bar(x + (i - 0.5) * width, values, width, color=[ACCENT, MUTED][i], label=ARM_LABELS[name])
        ax.bar_label(bars, padding=2, fontsize=8)
    ax.set_xticks(x, [label for _, label in steps])
    ax.set_ylabel("customers")
    ax.legend(frameon=False)
    return _svg(fig)


def plot_effects(experiment: dict[str, Any]) -> str:
    rows = [
        ("Order rate, A vs B (points)", experiment["order_rate_a_vs_b"], 100),
        ("Clicked, A vs B (points)", experiment["click_rate_a_vs_b"], 100),
        ("Order rate, email vs control (points)", experiment["email_vs_control"], 100),
    ]
    fig, ax = plt.subplots(figsize=(7, 2.4))
    for i, (_label, comparison, scale) in enumerate(rows):
        if comparison is None or comparison["effect"] is None:
            continue
        effect = comparison["effect"] * scale
        low, high = comparison["ci_low"] * scale, comparison["ci_high"] * scale
        color = GOOD if low > 0 else (INK if high >= 0 else "#dc2626")
        ax.errorbar(effect, i, xerr=[[effect - low], [high - effect]], fmt="o", color=color, capsize=5, lw=2)
        ax.text(high, i + 0.22, f"{effect:+.1f} [{low:.1f}, {high:.1f}]", fontsize=8, ha="right", color=INK)
    ax.axvline(0, color=MUTED, lw=1, ls="--")
    ax.set_yticks(range(len(rows)), [r[0] for r in rows])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel("difference with 95 % confidence interval")
    return _svg(fig)


def plot_clv(values: np.ndarray) -> str:
    fig, ax = plt.subplots(figsize=(7, 2.6))
    clipped = np.clip(values, 0, np.quantile(values, 0.99))
    ax.hist(clipped, bins=40, color=ACCENT)
    ax.set_xlabel("predicted 12-month CLV (GBP), synthetic year, top 1 % clipped")
    ax.set_ylabel("customers")
    return _svg(fig)


def write_json(ctx: DemoContext) -> None:
    body = {"version": REPORT_VERSION, "seed": ctx.seed, "options": _options(ctx), **ctx.report}
    (ctx.out / "demo-report.json").write_text(json.dumps(body, indent=2, sort_keys=True, default=str) + "\n")


def _options(ctx: DemoContext) -> dict[str, Any]:
    return {"limit_customers": ctx.options.limit_customers, "fast": ctx.fast}


def write_timings(ctx: DemoContext) -> None:
    (ctx.out / "demo-timings.json").write_text(json.dumps(ctx.timings, indent=2, sort_keys=True) + "\n")


def write_html(ctx: DemoContext) -> None:
    report = ctx.report
    plots = {
        "models": plot_models(report["recommender"]),
        "rfm": plot_rfm(report["analytics"]["rfm_grid"]["counts"]),
        "funnel": plot_funnel(report["campaign"]["report"]),
        "effects": plot_effects(report["experiment"]),
        "clv": plot_clv(ctx.extras["clv_values"]),
    }
    k = report["recommender"]["k"]
    models = [
        {
            "algorithm": r["algorithm"],
            "skipped": r.get("skipped"),
            "chosen": r.get("chosen", False),
            "metrics": [
                r.get(key) for key in (f"ndcg@{k}", f"precision@{k}", f"recall@{k}", f"map@{k}", "coverage")
            ],
            "fit_seconds": ctx.timings.get("recommender_fit_seconds", {}).get(r["algorithm"]),
        }
        for r in report["recommender"]["comparison"]
    ]
    arms = [
        {
            "label": ARM_LABELS[name],
            "order_rate_percent": None if row["order_rate"] is None else row["order_rate"] * 100,
            **row,
        }
        for name, row in report["experiment"]["arms"].items()
    ]
    html = render_to_string(
        "demo/report.html",
        {
            "r": report,
            "plots": {name: mark_safe(svg) for name, svg in plots.items()},  # noqa: S308 - our own SVG
            "models": models,
            "k": k,
            "arms": arms,
            "timings": ctx.timings,
            "options": _options(ctx),
            "seed": ctx.seed,
            "login": {"user": DEMO_USER, "password": DEMO_PASSWORD},
        },
    )
    (ctx.out / "report.html").write_text(html)


def run(ctx: DemoContext) -> None:
    write_json(ctx)
    write_html(ctx)
    ctx.say(f"  wrote {ctx.out / 'report.html'} and {ctx.out / 'demo-report.json'}")


def print_summary(ctx: DemoContext) -> None:
    r = ctx.report
    chosen = r["recommender"]["chosen"]
    k = r["recommender"]["k"]
    funnel = r["campaign"]["report"]["totals"]
    lines = [
        "",
        "Summary",
        f"  customers {r['import']['customers']}, products {r['import']['products']}, orders {r['import']['orders']}"
        f" ({r['import']['dropped_total']} lines dropped); loyalty members {r['loyalty']['members']}",
        f"  recommender: {chosen['algorithm']}, nDCG@{k} "
        f"{chosen['test_metrics'][f'ndcg@{k}']:.4f} on held-out purchases; "
        f"{chosen['recommendations']:,} recommendations stored",
        f"  segments: {', '.join(f'{k} {v}' for k, v in r['analytics']['segments'].items())}",
        f"  campaign: {funnel['sent']} sent, {funnel['opens_human']} opened, {funnel['clicks']} clicked, "
        f"{funnel['conversions']} conversions, revenue {funnel['revenue']}",
        f"  verdict: {r['experiment']['decision']}",
        f"  took {ctx.timings['total_seconds']} s",
        "",
        f"Open the report:  {ctx.out / 'report.html'}",
        f"Sample emails:    {ctx.out / 'eml'}",
        f"Open the admin:   make run, then http://localhost:8000/admin/ (login {DEMO_USER} / {DEMO_PASSWORD})",
    ]
    database = ctx.extras.get("database_file")
    if database is not None:
        lines.append(
            "                  (with PostgreSQL and Redis running, `make run` uses them; "
            f"DATABASE_URL=sqlite:///{database} make run opens the demo's data)"
        )
    ctx.say("\n".join(lines))
