"""Every payload of the injection corpus ends in a template error and executes nothing.

"Executes nothing" is checked with a Python audit hook (PEP 578): while a payload renders,
no process, file, socket, import, ``exec`` or ``compile`` event may happen. Templates are
compiled before the hook is armed (compiling is one place Jinja legitimately calls
``compile``/``exec``), so a payload that fails to compile is judged on that error alone.
The other is ``jinja2/debug.py``, which builds a fake traceback pointing at the template
line when a render fails; events raised from inside it are its own, not the template's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from campaigns.rendering import RenderLimits, TemplateError, check_source, render_parts
from tests.unit.rendering.sample_context import sample_context

CORPUS = json.loads((Path(__file__).with_name("injection_corpus.json")).read_text(encoding="utf-8"))[
    "payloads"
]
LIMITS = RenderLimits(time_limit=0.25)

_FORBIDDEN_EVENTS = (
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.kill",
    "subprocess.Popen",
    "open",
    "os.listdir",
    "os.scandir",
    "os.remove",
    "os.rename",
    "os.chdir",
    "os.putenv",
    "shutil.",
    "socket.",
    "ctypes.",
    "import",
    "exec",
    "compile",
    "code.__new__",
    "marshal.loads",
    "pickle.find_class",
    "builtins.input",
    "sys._getframe",
)
_JINJA_DEBUG = str(Path("jinja2") / "debug.py")
_armed = False
_inside_hook = False
_seen: list[str] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    global _inside_hook
    if not _armed or _inside_hook or not event.startswith(_FORBIDDEN_EVENTS):
        return
    _inside_hook = True  # sys._getframe raises an audit event of its own
    try:
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename.endswith(_JINJA_DEBUG):
                return
            frame = frame.f_back
        _seen.append(event)
    finally:
        _inside_hook = False


sys.addaudithook(_audit)  # hooks cannot be removed; this one only records while armed


def test_corpus_covers_the_named_attacks() -> None:
    templates = " ".join(entry["template"] for entry in CORPUS)
    for needle in (
        "__subclasses__",
        "cycler.__init__.__globals__",
        "_TemplateReference__context",
        "lipsum.__globals__",
        "request",
        "config",
        "joiner",
        "namespace",
        "'{0.__class__}'.format",
        "|attr('__class__')",
        "|format",
        ".append",
        "'a' * 10**9",
        "/etc/passwd",
        "{% extends '/etc/passwd' %}",
        "{% include '/etc/passwd' %}",
    ):
        assert needle in templates, needle
    assert len({entry["id"] for entry in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("entry", CORPUS, ids=[entry["id"] for entry in CORPUS])
def test_payload_is_a_template_error_and_runs_nothing(entry: dict[str, object]) -> None:
    global _armed
    part, template = str(entry["part"]), str(entry["template"])
    context = sample_context()
    try:
        check_source(part, template)
    except TemplateError as error:
        outcome: TemplateError | None = error
    else:
        _seen.clear()
        _armed = True
        try:
            render_parts({part: template}, context, limits=LIMITS)
        except TemplateError as error:
            outcome = error
        else:
            outcome = None
        finally:
            _armed = False
        assert _seen == [], f"the payload triggered {_seen}"
    assert outcome is not None, "the payload rendered without an error"
    problem = outcome.problems[0]
    assert problem.field == part
    accepted = set(entry["reasons"])  # type: ignore[arg-type]
    if accepted & {"value_limit", "output_limit", "recursion"}:
        accepted.add("time_limit")  # on a busy machine the deadline may come first
    assert problem.reason in accepted, (problem.reason, problem.message)
    assert problem.message
    assert context == sample_context(), "the payload changed the context"
