"""Missing values in marketer templates: strict when printed, falsy when tested (see environment.py)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from jinja2 import StrictUndefined
from jinja2.runtime import Undefined
from jinja2.sandbox import SecurityError
from jinja2.utils import missing

from campaigns.rendering.context import CONTEXT_NAMES


class MissingValue(StrictUndefined):
    """Strict when printed, iterated or computed with; falsy when tested in an ``if``.

    A missing value reached through a refused attribute (``''.__class__``) is not
    falsy: testing it raises the security error, so a probe cannot tell "refused" from
    "absent" by branching on it.
    """

    __slots__ = ()
    __eq__ = Undefined.__eq__
    __ne__ = Undefined.__ne__
    __hash__ = Undefined.__hash__

    def __bool__(self) -> bool:
        if self._undefined_exception is SecurityError:
            self._fail_with_undefined_error()
        return False

    @property
    def _undefined_message(self) -> str:
        if self._undefined_hint:
            return self._undefined_hint
        name = self._undefined_name
        owner = self._undefined_obj
        if owner is missing:
            return (
                f"{name!r} is not a variable here (variables: {', '.join(CONTEXT_NAMES)}); "
                "check the spelling, or guard it with |default(...)"
            )
        if owner is None:
            return f"cannot read {name!r} of an empty value (None); check it with {{% if ... %}} first"
        if isinstance(owner, Mapping):
            keys = [k for k in owner if isinstance(k, str)]
            close = difflib.get_close_matches(str(name), keys, n=1)
            hint = (
                f"did you mean {close[0]!r}?"
                if close
                else f"fields: {', '.join(sorted(keys)[:15]) or 'none'}"
            )
            return f"no field {name!r} here ({hint}); use |default(...) for optional fields"
        if isinstance(owner, (list, tuple)) and isinstance(name, int):
            return f"there is no item {name} in a list of {len(owner)}"
        return f"a {type(owner).__name__} value has no {name!r}"
