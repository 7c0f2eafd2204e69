"""Render in a child process that can be killed: the backstop behind the in-process limits.

The sandbox hooks (``environment.py``) stop every loop, call and operator we know of, and
every size check runs before the allocation it guards. What they cannot stop is compiling
a template -- not under the deadline; 4,000 ``{{ ... }}`` in 100 KB take about a second --
a single C-level operation that runs long on a value within the caps (a regex or text-wrap
pass over a megabyte is tens of milliseconds, not seconds, but the list is not provably
complete), or a bug in Jinja itself. A child process bounds all of that from outside:

* a wall-clock deadline enforced by the parent, which SIGKILLs the child when it passes
  (the child's own in-process deadline normally fires first and reports the line);
* an address-space limit (``RLIMIT_AS``), so an allocation bomb fails in the child;
* no file writes (``RLIMIT_FSIZE`` 0), no new processes (``RLIMIT_NPROC`` 0 where the
  kernel enforces it), no inherited environment: the child never sees ``SECRET_KEY``,
  database URLs or API keys, and is started with ``python -I``.

Where it is used (see docs/templates.md): previews, test sends and saving a template, i.e.
templates seen for the first time; a preview costs about 6 ms of wall clock this way
against 0.7 ms in process (``benchmarks/rendering.py``). Campaign sends render in process:
the template was compiled and previewed already, the in-process limits apply, and the Celery
task's own hard time limit is the backstop.

Protocol: the parent writes one length-prefixed pickle per message (the parent is trusted),
the child answers one length-prefixed JSON object per part (the child is not trusted, so
nothing it sends is unpickled).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import resource
import select
import struct
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

from campaigns.rendering.context import check_plain
from campaigns.rendering.environment import PART_KINDS, RenderedHtml
from campaigns.rendering.errors import TemplateError, TemplateProblem
from campaigns.rendering.limits import RenderBudget, RenderLimits

_FRAME = struct.Struct(">I")
_PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MEMORY_LIMIT = 768 * 1024 * 1024


class IsolatedRenderer:
    """A long-lived child renderer; thread-safe (calls are serialised), restarted after a kill."""

    def __init__(
        self,
        *,
        memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT,
        kill_after_extra_seconds: float = 0.5,
        max_reply_bytes: int = 16 * 1024 * 1024,
        startup_timeout: float = 30.0,
    ) -> None:
        self.memory_limit_bytes = memory_limit_bytes
        #: A new child's imports and shipped templates load before the first deadline starts.
        self.startup_timeout = startup_timeout
        self.kill_after_extra_seconds = kill_after_extra_seconds
        self.max_reply_bytes = max_reply_bytes
        self._lock = threading.Lock()
        self._child: subprocess.Popen[bytes] | None = None
        self._buffer = b""
        #: How many children were killed or died; for tests and monitoring.
        self.restarts = 0
        self._finalizer = weakref.finalize(self, IsolatedRenderer._stop_child, [None])

    # -- public -----------------------------------------------------------------------------

    def __call__(
        self, parts: Mapping[str, str], context: Mapping[str, Any], *, limits: RenderLimits
    ) -> dict[str, str | RenderedHtml]:
        """Same contract as ``environment.render_message_parts``."""
        unknown = [part for part in parts if part not in PART_KINDS]
        if unknown:
            raise ValueError(f"unknown message part(s) {unknown}; expected some of {', '.join(PART_KINDS)}")
        check_plain(dict(context))
        request = pickle.dumps(
            {"parts": list(parts.items()), "context": dict(context), "limits": limits},
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        with self._lock:
            rendered: dict[str, str | RenderedHtml] = {}
            problems: list[TemplateProblem] = []
            awaiting = next(iter(parts), "template")
            try:
                child = self._ensure_child()
                hard_deadline = time.monotonic() + limits.time_limit + self.kill_after_extra_seconds
                self._write(child, request)
                for part in parts:
                    awaiting = part
                    reply = self._read_reply(child, hard_deadline)
                    if reply.get("part") != part:
                        raise _ChildFailed("the renderer answered out of order", "crashed")
                    if reply.get("ok"):
                        rendered[part] = _rendered_from_reply(reply)
                    else:
                        problems.extend(
                            TemplateProblem(
                                part, p.get("line"), str(p["message"]), str(p.get("reason", "error"))
                            )
                            for p in reply["problems"]
                        )
                    if reply.get("stop"):
                        break
            except _ChildFailed as failure:
                self._kill()
                problems.append(TemplateProblem(awaiting, None, failure.message, failure.reason))
        if problems:
            raise TemplateError(problems)
        return rendered

    def close(self) -> None:
        with self._lock:
            self._kill(count=False)

    def __enter__(self) -> IsolatedRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def child_pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    # -- child management -----------------------------------------------------------------

    def _ensure_child(self) -> subprocess.Popen[bytes]:
        if self._child is not None and self._child.poll() is None:
            return self._child
        if self._child is not None:
            self._kill()
        bootstrap = (
            f"import sys; sys.path.insert(0, {str(_PROJECT_ROOT)!r}); "
            f"from campaigns.rendering.isolated import serve; serve({int(self.memory_limit_bytes)})"
        )
        self._child = subprocess.Popen(
            [sys.executable, "-I", "-c", bootstrap],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"},
            cwd="/",
            close_fds=True,
        )
        self._buffer = b""
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, IsolatedRenderer._stop_child, [self._child])
        try:
            ready = self._read_reply(self._child, time.monotonic() + self.startup_timeout)
        except _ChildFailed:
            ready = {}
        if ready != {"ready": True}:
            raise _ChildFailed("the template renderer did not start", "crashed")
        return self._child

    @staticmethod
    def _stop_child(holder: list[subprocess.Popen[bytes] | None]) -> None:
        for child in holder:
            if child is not None and child.poll() is None:
                child.kill()
                child.wait()

    def _kill(self, *, count: bool = True) -> None:
        if self._child is not None:
            if self._child.poll() is None:
                self._child.kill()
            self._child.wait()
            for stream in (self._child.stdin, self._child.stdout):
                if stream is not None:
                    stream.close()
            if count:
                self.restarts += 1
        self._child = None
        self._buffer = b""

    def _write(self, child: subprocess.Popen[bytes], payload: bytes) -> None:
        assert child.stdin is not None
        try:
            child.stdin.write(_FRAME.pack(len(payload)) + payload)
            child.stdin.flush()
        except (BrokenPipeError, OSError):
            raise _ChildFailed("the template renderer stopped unexpectedly", "crashed") from None

    def _read_exact(self, child: subprocess.Popen[bytes], size: int, deadline: float) -> bytes:
        assert child.stdout is not None
        descriptor = child.stdout.fileno()
        while len(self._buffer) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _ChildFailed("the template took too long to render and was stopped", "time_limit")
            ready, _, _ = select.select([descriptor], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(descriptor, 1 << 16)
            if not chunk:
                raise _ChildFailed(
                    "the template stopped the renderer (it probably needed too much memory)", "crashed"
                )
            self._buffer += chunk
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def _read_reply(self, child: subprocess.Popen[bytes], deadline: float) -> dict[str, Any]:
        (size,) = _FRAME.unpack(self._read_exact(child, _FRAME.size, deadline))
        if size > self.max_reply_bytes:
            raise _ChildFailed("the renderer sent an oversized answer", "output_limit")
        try:
            reply = json.loads(self._read_exact(child, size, deadline))
        except ValueError:
            raise _ChildFailed("the renderer sent an unreadable answer", "crashed") from None
        if not isinstance(reply, dict):
            raise _ChildFailed("the renderer sent an unreadable answer", "crashed")
        return reply


def _rendered_from_reply(reply: dict[str, Any]) -> str | RenderedHtml:
    """Check the shape of an answer from the (untrusted) child."""
    if "text" in reply and isinstance(reply["text"], str):
        return reply["text"]
    html = reply.get("html")
    if isinstance(html, dict):
        skeleton, escaped, raw = html.get("skeleton"), html.get("escaped"), html.get("raw")
        if (
            isinstance(skeleton, str)
            and isinstance(escaped, list)
            and isinstance(raw, list)
            and len(escaped) == len(raw)
            and all(isinstance(v, str) for v in escaped + raw)
        ):
            return RenderedHtml(skeleton, tuple(escaped), tuple(raw), marked=bool(html.get("marked")))
    raise _ChildFailed("the renderer sent an unreadable answer", "crashed")


class _ChildFailed(Exception):  # noqa: N818
    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


# ---------------------------------------------------------------------------------------
# The child


def _confine(memory_limit_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit_bytes, memory_limit_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    with contextlib.suppress(ValueError, OSError):  # not settable in some containers
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))


def _read_frame(stream: BinaryIO) -> bytes | None:
    header = stream.read(_FRAME.size)
    if len(header) < _FRAME.size:
        return None
    (size,) = _FRAME.unpack(header)
    payload = stream.read(size)
    return payload if len(payload) == size else None


def _write_frame(stream: BinaryIO, reply: dict[str, Any]) -> None:
    data = json.dumps(reply).encode("ascii")
    stream.write(_FRAME.pack(len(data)) + data)
    stream.flush()


def serve(memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT) -> None:
    """Child main loop: one message per request, one reply per part."""
    from campaigns.rendering.environment import environment, render_part

    for kind in set(PART_KINDS.values()):  # load shipped templates before confinement
        environment(kind)
    _confine(memory_limit_bytes)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    _write_frame(stdout, {"ready": True})
    while True:
        frame = _read_frame(stdin)
        if frame is None:
            return
        request = pickle.loads(frame)  # noqa: S301 -- written by our own parent process
        limits: RenderLimits = request["limits"]
        context = request["context"]
        budget = RenderBudget(limits, time.monotonic() + limits.time_limit, context)
        for part, source in request["parts"]:
            try:
                result = render_part(part, source, context, budget=budget)
                if isinstance(result, RenderedHtml):
                    html = {
                        "skeleton": result.skeleton,
                        "escaped": list(result.escaped),
                        "raw": list(result.raw),
                        "marked": result.marked,
                    }
                    _write_frame(stdout, {"part": part, "ok": True, "html": html})
                else:
                    _write_frame(stdout, {"part": part, "ok": True, "text": result})
            except TemplateError as exc:
                stop = exc.reason == "time_limit"
                problems = [p.as_dict() for p in exc.problems]
                _write_frame(stdout, {"part": part, "ok": False, "problems": problems, "stop": stop})
                if stop:
                    break
            except MemoryError:
                problem = {"line": None, "message": "the template needed too much memory", "reason": "memory"}
                _write_frame(stdout, {"part": part, "ok": False, "problems": [problem], "stop": False})
