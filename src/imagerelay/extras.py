"""Provider fields (`extras`, `--extra PROVIDER.FIELD=VALUE`) checked against the catalog before
anything is sent.

A field no model of its provider takes is a typo (`go_fasst`): refused with the nearest name, as a
misspelt manifest field is, so an image is never paid for without what the caller asked. A value
the provider's schema cannot take (`go_fast=maybe`, `thinking_level=hihg`) is refused too: sent,
it would be rejected by every model that takes the field and accepted only by those that drop it.
A known field sent to a model that lacks it stays a note (the planner's).
"""

from __future__ import annotations

import difflib
import math
from typing import TYPE_CHECKING, Any

from .errors import InvalidRequest

if TYPE_CHECKING:
    from .catalog import Catalog, ExtraRule

__all__ = ["check_extras"]


def check_extras(extras: dict[str, dict[str, Any]], catalog: Catalog) -> dict[str, dict[str, Any]]:
    """`extras` with each value as the provider takes it (`megapixels=1` → "1"); `InvalidRequest`
    naming the first unknown provider, unknown field or unfit value."""
    unknown = sorted(set(extras) - set(catalog.providers))
    if unknown:
        raise InvalidRequest(
            f"extras for unknown provider {unknown[0]!r}{_near(unknown[0], list(catalog.providers))}: "
            f"use {', '.join(catalog.providers)} (PROVIDER.FIELD=VALUE)"
        )
    out: dict[str, dict[str, Any]] = {}
    for provider, fields in extras.items():
        spec = catalog.providers[provider]
        taken = sorted({f for m in spec.models.values() for f in m.extra_fields})
        out[provider] = {}
        for name, value in fields.items():
            if name not in taken:
                near = difflib.get_close_matches(name, taken, n=1, cutoff=0.6)
                fix = (
                    f"did you mean {provider}.{near[0]}?"
                    if near
                    else (f"{provider} takes {', '.join(taken)}" if taken else f"{provider} takes no extras")
                )
                raise InvalidRequest(f"unknown field {provider}.{name}: no {provider} model takes it; {fix}")
            rule = spec.extras.get(name)
            out[provider][name] = value if rule is None else _fit(f"{provider}.{name}", rule, value)
    return out


def _near(word: str, options: list[str]) -> str:
    near = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _fit(where: str, rule: ExtraRule, value: Any) -> Any:
    """`value` as `rule` takes it, or `InvalidRequest` saying what is wrong and what it takes."""
    shown = repr(value) if isinstance(value, str) else _json(value)
    if rule.type == "boolean":
        if isinstance(value, bool):
            return value
        raise InvalidRequest(f"{where}: {shown} is not true or false")
    if rule.type in ("integer", "number"):
        number = _number(value, whole=rule.type == "integer")
        if number is None:
            what = "a whole number" if rule.type == "integer" else "a number"
            span = _range(rule)
            raise InvalidRequest(f"{where}: {shown} is not {what}" + (f" ({span})" if span else ""))
        if (rule.minimum is not None and number < rule.minimum) or (
            rule.maximum is not None and number > rule.maximum
        ):
            raise InvalidRequest(f"{where}: {shown} is out of range: use {_range(rule)}")
        return number
    # A string. A number for a field of words ("1", "0.25") is the word it spells.
    if isinstance(value, int | float) and not isinstance(value, bool) and rule.enum:
        value = f"{value:g}"
    if not isinstance(value, str):
        raise InvalidRequest(f"{where}: {shown} is not text")
    if rule.enum:
        words = [w.lower() for w in rule.enum] if rule.ignore_case else list(rule.enum)
        if (value.lower() if rule.ignore_case else value) not in words:
            near = difflib.get_close_matches(value.lower() if rule.ignore_case else value, words, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise InvalidRequest(f"{where}: {value!r} is not one of {', '.join(rule.enum)}{hint}")
    return value


def _number(value: Any, *, whole: bool) -> int | float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    if whole:
        return int(value) if float(value).is_integer() else None
    return value


def _range(rule: ExtraRule) -> str:
    lo, hi = rule.minimum, rule.maximum
    if lo is not None and hi is not None:
        return f"{lo:g} to {hi:g}"
    if lo is not None:
        return f"at least {lo:g}"
    return f"at most {hi:g}" if hi is not None else ""


def _json(value: Any) -> str:
    import json

    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
