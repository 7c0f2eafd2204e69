"""The isolated renderer: same results as in process, and a hard kill for what is not bounded."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from campaigns.rendering import (
    EmailTemplates,
    IsolatedRenderer,
    RenderLimits,
    TemplateError,
    render_email,
    render_message_parts,
)
from tests.unit.rendering.sample_context import TYPICAL_EMAIL, sample_context


@pytest.fixture(scope="module")
def isolated() -> Iterator[IsolatedRenderer]:
    renderer = IsolatedRenderer(kill_after_extra_seconds=0.3)
    yield renderer
    renderer.close()


def test_the_child_renders_exactly_what_the_process_renders(isolated: IsolatedRenderer) -> None:
    templates = EmailTemplates(**TYPICAL_EMAIL)  # type: ignore[arg-type]
    assert render_email(templates, sample_context(), renderer=isolated) == render_email(
        templates, sample_context()
    )
    parts = {"subject": "Hi {{ customer.first_name }}", "push_body": "{{ loyalty.points|number }}"}
    assert isolated(parts, sample_context(), limits=RenderLimits()) == render_message_parts(
        parts, sample_context()
    )
    assert isolated.child_pid != os.getpid()


def test_template_errors_come_back_with_their_lines(isolated: IsolatedRenderer) -> None:
    with pytest.raises(TemplateError) as caught:
        isolated({"subject": "ok", "html": "<p>\n{{ nope }}</p>"}, sample_context(), limits=RenderLimits())
    assert caught.value.as_dicts() == [{"field": "html", "line": 2, "message": caught.value.message}]
    with pytest.raises(TemplateError) as caught:
        isolated(
            {"html": "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}"},
            sample_context(),
            limits=RenderLimits(time_limit=0.1),
        )
    assert caught.value.reason == "time_limit" and caught.value.line == 1


def test_a_child_stuck_past_the_deadline_is_killed_and_replaced(isolated: IsolatedRenderer) -> None:
    # Compiling is not under the in-process deadline. 9,090 arithmetic expressions (the 100,000
    # characters a part may have) take 1.8 s to compile on an idle 2-core box, five times the
    # parent's 0.35 s; plain `{{ name }}` output compiles in 0.3 s and made this test a race.
    slow_to_compile = "{{1+a*2-b}}" * 9090
    before, pid = isolated.restarts, isolated.child_pid
    with pytest.raises(TemplateError) as caught:
        isolated({"html": slow_to_compile}, sample_context(), limits=RenderLimits(time_limit=0.05))
    assert caught.value.reason == "time_limit"
    assert "stopped" in caught.value.message
    assert isolated.restarts == before + 1
    assert isolated({"subject": "again"}, sample_context(), limits=RenderLimits()) == {"subject": "again"}
    assert isolated.child_pid != pid


def test_the_child_sees_no_secrets(isolated: IsolatedRenderer, monkeypatch: pytest.MonkeyPatch) -> None:
    isolated.close()
    monkeypatch.setenv("SECRET_KEY", "do-not-leak")
    isolated({"subject": "x"}, sample_context(), limits=RenderLimits())
    with open(f"/proc/{isolated.child_pid}/environ", "rb") as environ:
        assert b"SECRET_KEY" not in environ.read()
