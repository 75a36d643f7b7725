"""OpenAI's image request fields as its official schema types them, checked before anything is sent.

`wire.json` is derived from OpenAI's OpenAPI file (`CreateImageRequest`, `CreateImageEditRequest`,
`EditImageBodyJsonParam`) by `derive`: each scalar field's type, and its values or range where
the file states them (merged over the three requests). The tests derive it again from the file
and compare; after updating the file, regenerate with
`python -m imagerelay.gateway.wire path/to/openai-images.openapi.yaml` (needs PyYAML).

What imagerelay takes beyond that is not copied here: qualities come from the catalog (`xhigh`,
`max`), sizes are any WxH the planner can serve, and `model` is imagerelay's own.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from functools import cache
from pathlib import Path
from typing import Any

from ..validation import kind_name, must_be, one_of
from .errors import GatewayError

__all__ = ["check_standard", "check_value", "derive", "field_rules"]

_FILE = Path(__file__).with_name("wire.json")
_REQUESTS = ("CreateImageRequest", "CreateImageEditRequest", "EditImageBodyJsonParam")
_SCALARS = ("string", "integer", "number", "boolean")
#: Fields OpenAI's SDK documents since the file was cut, typed as the SDK types them.
_NEWER: dict[str, dict[str, Any]] = {"safety_identifier": {"type": "string"}}
_INTEGER = re.compile(r"^-?\d{1,12}$")


def _resolve(prop: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    ref = prop.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
        return _resolve(schemas[ref.rsplit("/", 1)[1]], schemas)
    return prop


def _rule(prop: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any] | None:
    """A scalar property's rule ({type, enum?, minimum?, maximum?}), or None for files, lists, objects."""
    prop = _resolve(prop, schemas)
    options = [_resolve(o, schemas) for o in prop.get("anyOf", [prop])]
    options = [o for o in options if o.get("type") != "null"]
    types = {o.get("type") for o in options}
    if len(types) != 1 or not types <= set(_SCALARS) or any(o.get("format") == "binary" for o in options):
        return None
    rule: dict[str, Any] = {"type": types.pop()}
    if all("enum" in o for o in options):  # a plain string among the options means any string
        rule["enum"] = [v for o in options for v in o["enum"]]
    for bound in ("minimum", "maximum"):
        stated = [o[bound] for o in options if bound in o]
        if stated:
            rule[bound] = min(stated) if bound == "minimum" else max(stated)
    return rule


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """One field over several requests: any value one of them takes, within the widest stated range."""
    if a["type"] != b["type"]:
        raise ValueError(f"the requests type a field differently: {a['type']} and {b['type']}")
    out: dict[str, Any] = {"type": a["type"]}
    if "enum" in a and "enum" in b:
        out["enum"] = [*a["enum"], *(v for v in b["enum"] if v not in a["enum"])]
    for bound, pick in (("minimum", min), ("maximum", max)):
        stated = [r[bound] for r in (a, b) if bound in r]
        if stated:
            out[bound] = pick(stated)
    return out


def derive(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The rule of each scalar field of OpenAI's image requests, from the parsed OpenAPI file."""
    schemas = spec["components"]["schemas"]
    rules: dict[str, dict[str, Any]] = {}
    for name in _REQUESTS:
        for field, prop in schemas[name]["properties"].items():
            rule = _rule(prop, schemas)
            if rule is not None:
                rules[field] = _merge(rules[field], rule) if field in rules else rule
    return dict(sorted(rules.items()))


@cache
def field_rules() -> dict[str, dict[str, Any]]:
    """The derived rules (`wire.json`) and the fields the SDK added since."""
    rules: dict[str, dict[str, Any]] = json.loads(_FILE.read_text(encoding="utf-8"))
    return {**rules, **_NEWER}


def _shown(value: Any) -> str:
    """A value as the JSON body had it (`null`, `true`, `'two'`)."""
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_value(field: str, value: Any, rule: dict[str, Any], *, form: bool, param: str | None = None) -> Any:
    """`value` checked against `rule` (a multipart field's text read as the type first); returns it."""
    param = param or field
    kind = rule["type"]
    if form and isinstance(value, str) and kind != "string":
        text = value.strip()
        if kind == "boolean" and text.lower() in ("true", "false"):
            value = text.lower() == "true"
        elif kind == "integer" and _INTEGER.match(text):
            value = int(text)
        elif kind == "number":
            with contextlib.suppress(ValueError):  # else refused below, as the text it is
                value = float(text)
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
    }[kind]
    if not ok:
        raise GatewayError(
            400, f"{param}: {must_be(kind_name(kind), _shown(value))}", param=param, code="invalid_type"
        )
    if kind == "number" and not math.isfinite(value):
        raise GatewayError(
            400, f"{param}: {must_be('a finite number', _shown(value))}", param=param, code="invalid_value"
        )
    enum = rule.get("enum")
    if enum is not None and value not in enum:
        raise GatewayError(
            400, f"{param}: {must_be(one_of(enum), _shown(value))}", param=param, code="invalid_value"
        )
    low, high = rule.get("minimum"), rule.get("maximum")
    if (low is not None and value < low) or (high is not None and value > high):
        span = (
            f"from {low} to {high}"
            if low is not None and high is not None
            else (f"{low} or more" if low is not None else f"{high} or less")
        )
        # OpenAI's codes: integer_below_min_value, decimal_above_max_value …
        prefix = "integer" if kind == "integer" else "decimal"
        code = f"{prefix}_below_min_value" if low is not None and value < low else f"{prefix}_above_max_value"
        raise GatewayError(400, f"{param}: {must_be(span, _shown(value))}", param=param, code=code)
    return value


def check_standard(body: dict[str, Any], *, form: bool, extend: dict[str, list[str]]) -> dict[str, Any]:
    """The body with each standard field checked against OpenAI's schema (the values in `extend`
    also taken); multipart text read as its field's type."""
    rules = field_rules()
    out = dict(body)
    for field, value in body.items():
        rule = rules.get(field)
        if rule is None or value is None:
            continue
        if field in extend and "enum" in rule:
            rule = {**rule, "enum": [*rule["enum"], *(v for v in extend[field] if v not in rule["enum"])]}
        out[field] = check_value(field, value, rule, form=form)
    return out


if __name__ == "__main__":  # regenerate wire.json from the OpenAPI file
    import sys

    import yaml  # type: ignore[import-untyped]  # a test dependency: regenerating is a dev task

    derived = derive(yaml.safe_load(Path(sys.argv[1]).read_text(encoding="utf-8")))
    _FILE.write_text(json.dumps(derived, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {_FILE} ({len(derived)} fields)")
