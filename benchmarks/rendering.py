"""Cost of rendering and building one campaign email, with and without the sandbox guards.

Prints one JSON object. Per-message costs are CPU time of this thread (``time.thread_time``,
best of several repeats), so that other processes on a shared machine do not inflate them;
the isolated renderer's round trip, which spans two processes, is wall-clock (median).

    PYTHONPATH=. python benchmarks/rendering.py [--quick]

The message: ``TYPICAL_EMAIL`` of ``tests/unit/rendering/sample_context.py`` -- the shipped
base layout, a greeting, a points balance and a grid of four recommendations; subject,
preheader and HTML written, text part generated from the HTML.

* ``render_unguarded_ms`` -- the same templates in a plain ``ImmutableSandboxedEnvironment``
  (same loader and filter functions, Jinja's own code generator, no budget hooks, no
  value markers): what rendering costs without our limits.
* ``render_guarded_ms`` -- ``render_message_parts``: the context check, limits and value markers.
* ``render_guarded_no_markers_ms`` -- the same with the HTML part rendered plainly.
* ``render_email_ms`` -- ``render_email``, as a send calls it (adds the context contract check).
* ``build_email_ms`` -- ``build_email`` when the body plan of the skeleton is cached (every
  message of a campaign after the first of each skeleton): values, links, pixel, headers,
  quoted-printable MIME.
* ``build_email_planned_per_message_ms`` -- ``build_email`` with the plan made for the message
  (CSS inlining, link and text planning each time): what per-message inlining would cost.
* ``css_inline_ms`` -- css-inline alone on the rendered HTML.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import css_inline  # noqa: E402
from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: E402

from campaigns.rendering import (  # noqa: E402
    EmailTemplates,
    IsolatedRenderer,
    Mailbox,
    RenderLimits,
    TemplateError,
    Tracking,
    build_email,
    check_plain,
    render_email,
    render_message_parts,
    render_parts,
)
from campaigns.rendering.body_plan import _cached_plan, plan_body  # noqa: E402
from campaigns.rendering.environment import (  # noqa: E402
    SHIPPED_ROOT,
    ShippedTemplates,
    bounded_range,
    environment,
    render_part,
)
from campaigns.rendering.filters import filter_table  # noqa: E402
from campaigns.rendering.limits import RenderBudget, budget_scope  # noqa: E402
from tests.unit.rendering.sample_context import TYPICAL_EMAIL, sample_context  # noqa: E402


def cpu_ms(function, number: int, repeat: int) -> float:
    function()
    return min(timeit.repeat(function, number=number, repeat=repeat, timer=time.thread_time)) / number * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    args = parser.parse_args()
    number, repeat = (50, 3) if args.quick else (300, 7)

    context = sample_context()
    templates = EmailTemplates(**TYPICAL_EMAIL)
    rendered = render_email(templates, context)
    build_options = {
        "sender": Mailbox("news@shop.example.com", "Example Shop"),
        "recipient": Mailbox("ann@example.com", "Ann Example"),
        "ledger_key": "run-1:A:42:email",
        "message_id_domain": "shop.example.com",
        "unsubscribe_url": context["links"]["unsubscribe_url"],
        "tracking": Tracking(
            rewrite_link=lambda url, index: f"https://t.example.com/c/42/{index}",
            open_pixel_url="https://t.example.com/o/42.gif",
            utm={"source": "reachly", "medium": "email", "campaign": "spring"},
            untracked_urls=[context["links"]["preferences_url"]],
        ),
    }

    # Baseline: Jinja's sandbox with the same loader and filters, none of our hooks.
    plain = {}
    for kind, part in (("html", "html"), ("text", "subject"), ("text", "preheader")):
        env = ImmutableSandboxedEnvironment(
            loader=ShippedTemplates(SHIPPED_ROOT / "email", (".html",) if kind == "html" else (".txt",)),
            autoescape=kind == "html",
            trim_blocks=True,
            lstrip_blocks=True,
        )
        env.filters = filter_table()
        env.globals["range"] = bounded_range
        plain[part] = env.from_string(TYPICAL_EMAIL[part])

    def render_unguarded() -> None:
        with budget_scope(RenderBudget(RenderLimits(), time.monotonic() + 60, context)):
            for template in plain.values():
                template.render(context)

    def render_guarded() -> None:
        render_message_parts(TYPICAL_EMAIL, context)

    def render_no_markers() -> None:
        check_plain(context)
        budget = RenderBudget(RenderLimits(), time.monotonic() + 60, context)
        for part, source in TYPICAL_EMAIL.items():
            render_part(part, source, context, budget=budget, markers=False)

    def render_whole_email() -> None:
        render_email(templates, context)

    def build_cached() -> None:
        build_email(rendered, **build_options)

    def build_planned() -> None:
        _cached_plan.cache_clear()
        build_email(rendered, **build_options)

    html = rendered.html
    inliner = css_inline.CSSInliner(keep_style_tags=False, keep_at_rules=True, load_remote_stylesheets=False)

    unguarded = cpu_ms(render_unguarded, number, repeat)
    guarded = cpu_ms(render_guarded, number, repeat)
    no_markers = cpu_ms(render_no_markers, number, repeat)
    whole_email = cpu_ms(render_whole_email, number, repeat)
    build = cpu_ms(build_cached, number, repeat)
    build_planned_ms = cpu_ms(build_planned, max(number // 5, 10), repeat)
    inline = cpu_ms(lambda: inliner.inline(html), number, repeat)
    plan = cpu_ms(
        lambda: (_cached_plan.cache_clear(), plan_body(rendered.html_part, preheader=True, text=True)),
        max(number // 5, 10),
        repeat,
    )

    # Compiling a template the first time (then cached by source).
    env = environment("html")
    compile_ms = cpu_ms(lambda: env.compile(TYPICAL_EMAIL["html"], name="html", filename="<html>"), 20, 3)

    # The deadline in a tight nested loop.
    limit = 0.2
    started = time.monotonic()
    with contextlib.suppress(TemplateError):
        render_parts(
            {"html": "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"},
            context,
            limits=RenderLimits(time_limit=limit),
        )
    overshoot_ms = (time.monotonic() - started - limit) * 1000

    # The isolated renderer's round trip (wall clock, median).
    with IsolatedRenderer() as isolated:
        render_email(templates, context, renderer=isolated)
        walls = []
        for _ in range(20 if args.quick else 100):
            started = time.perf_counter()
            render_email(templates, context, renderer=isolated)
            walls.append((time.perf_counter() - started) * 1000)
    in_process_walls = []
    for _ in range(20 if args.quick else 100):
        started = time.perf_counter()
        render_email(templates, context)
        in_process_walls.append((time.perf_counter() - started) * 1000)

    per_message = whole_email + build
    print(
        json.dumps(
            {
                "benchmark": "rendering",
                "message": "TYPICAL_EMAIL: base layout, greeting, points balance, 4 recommendations; text generated",
                "html_chars_rendered": len(html),
                "render_unguarded_ms": round(unguarded, 3),
                "render_guarded_ms": round(guarded, 3),
                "render_guarded_no_markers_ms": round(no_markers, 3),
                "guard_overhead_pct": round((guarded / unguarded - 1) * 100, 1),
                "guard_overhead_without_markers_pct": round((no_markers / unguarded - 1) * 100, 1),
                "render_email_ms": round(whole_email, 3),
                "build_email_ms": round(build, 3),
                "build_email_planned_per_message_ms": round(build_planned_ms, 3),
                "body_plan_ms": round(plan, 3),
                "css_inline_ms": round(inline, 3),
                "compile_html_template_ms": round(compile_ms, 3),
                "render_and_build_ms": round(per_message, 3),
                "messages_per_second_per_core": round(1000 / per_message),
                "time_limit_s": limit,
                "time_limit_overshoot_ms": round(overshoot_ms, 1),
                "isolated_render_email_wall_ms_median": round(statistics.median(walls), 3),
                "in_process_render_email_wall_ms_median": round(statistics.median(in_process_walls), 3),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_average_1m": round(os.getloadavg()[0], 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
