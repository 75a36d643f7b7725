"""pydantic's complaints in plain words: the one formatter behind every validation message.

A request (library, CLI, manifest, gateway), a settings file and a catalog file all say the same
mistake the same way: what the value must be, the allowed values where there is a list of them,
and what was given. Where it is (a field, a flag, a file) is the caller's to say in front.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

__all__ = ["allowed_values", "kind_name", "must_be", "one_of", "plain", "shown"]

#: What a value of each kind must be, by pydantic's error type (its `…_type` / `…_parsing`) or
#: JSON Schema's type name.
_KINDS = {
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "string": "text",
    "str": "text",
    "bytes": "text",
    "tuple": "a list",
    "list": "a list",
    "set": "a list",
    "frozen_set": "a list",
    "dict": "a table of names to values",
    "model": "a table of settings",
    "date": "a date (YYYY-MM-DD)",
    "datetime": "a date and time (YYYY-MM-DDTHH:MM)",
    "url": "a URL",
}
_BOUNDS = {
    "greater_than": "more than {gt}",
    "greater_than_equal": "at least {ge}",
    "less_than": "less than {lt}",
    "less_than_equal": "at most {le}",
    "too_short": "at least {min_length} long",
    "too_long": "at most {max_length} long",
    "string_too_short": "at least {min_length} characters",
    "string_too_long": "at most {max_length} characters",
}


def must_be(what: str, got: str) -> str:
    """How every validation message says it: `must be <what> (got <the value, as shown>)`."""
    return f"must be {what} (got {got})"


def one_of(values: Iterable[object]) -> str:
    """`one of png, jpeg, webp`."""
    return "one of " + ", ".join(str(v) for v in values)


def kind_name(kind: str) -> str:
    """What a value of `kind` (pydantic's or JSON Schema's type name) must be, in words."""
    return _KINDS.get(kind, f"a {kind}")


def allowed_values(err: ErrorDetails) -> list[str]:
    """The values a `literal_error` (or enum) allows, as pydantic listed them."""
    expected = str(err.get("ctx", {}).get("expected", ""))
    return re.findall(r"'([^']*)'", expected)


def plain(err: ErrorDetails) -> str:
    """One of pydantic's errors as a plain sentence without its location: `must be one of 1k, 2k,
    4k (got '8k')`. Our own validators' messages (a `ValueError`'s text) are returned as they are."""
    kind, ctx = err["type"], err.get("ctx", {})
    ours = ctx.get("error")
    if kind == "value_error" and ours is not None:
        return str(ours)
    got = shown(err.get("input"))
    if kind == "missing":
        return "is required"
    if kind in ("literal_error", "enum"):
        allowed = allowed_values(err)
        if allowed:
            return must_be(one_of(allowed), got)
    if kind in _BOUNDS:
        try:
            return must_be(_BOUNDS[kind].format(**ctx), got)
        except KeyError:
            pass
    base = kind.removesuffix("_type").removesuffix("_parsing").removesuffix("_from_float")
    if base in _KINDS:
        return must_be(_KINDS[base], got)
    return f"{err['msg'][:1].lower()}{err['msg'][1:]} (got {got})"


def shown(value: Any) -> str:
    """The offending value, briefly: `'two'`, `None`, `a list`, `a table`."""
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, (list, tuple)):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "…"
