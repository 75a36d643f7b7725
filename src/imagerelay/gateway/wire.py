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

import json
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError

from ..validation import plain
from .errors import GatewayError

__all__ = ["check_standard", "check_value", "derive", "field_rules"]

_FILE = Path(__file__).with_name("wire.json")
_REQUESTS = ("CreateImageRequest", "CreateImageEditRequest", "EditImageBodyJsonParam")
_SCALARS = ("string", "integer", "number", "boolean")
#: Fields OpenAI's SDK documents since the file was cut, typed as the SDK types them.
_NEWER: dict[str, dict[str, Any]] = {"safety_identifier": {"type": "string"}}


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


_PY: dict[str, type] = {"string": str, "integer": int, "number": float, "boolean": bool}


@cache
def _adapter(kind: str, low: float | None, high: float | None, *, strict: bool) -> TypeAdapter[Any]:
    """A field's type and range, strict for JSON (`"2"` is not 2, `true` is not 1), lax for
    multipart, where every value is text (`"2"` is 2, `"true"` is true)."""
    finite = False if kind == "number" else None  # a cost of NaN or Infinity is no cost
    constraints = Field(strict=strict, ge=low, le=high, allow_inf_nan=finite)
    return TypeAdapter(Annotated[_PY[kind], constraints])  # type: ignore[arg-type]  # a type known at run time


@cache
def _one_of(values: tuple[Any, ...]) -> TypeAdapter[Any]:
    return TypeAdapter(Literal[values])  # type: ignore[arg-type]  # values known only at run time


def _code(error_type: str, kind: str) -> str:
    """OpenAI's code for a refused value: invalid_type, invalid_value, integer_above_max_value …"""
    prefix = "integer" if kind == "integer" else "decimal"
    if error_type in ("greater_than", "greater_than_equal"):
        return f"{prefix}_below_min_value"
    if error_type in ("less_than", "less_than_equal"):
        return f"{prefix}_above_max_value"
    return "invalid_value" if error_type in ("literal_error", "finite_number") else "invalid_type"


def check_value(field: str, value: Any, rule: dict[str, Any], *, form: bool, param: str | None = None) -> Any:
    """`value` checked against `rule` (a multipart field's text read as the type first); returns it,
    as that type. The message is the one every validation error reads with (`validation.plain`)."""
    param = param or field
    kind = rule["type"]
    try:
        typed = _adapter(kind, rule.get("minimum"), rule.get("maximum"), strict=not form)
        value = typed.validate_python(value)
        if "enum" in rule:
            value = _one_of(tuple(rule["enum"])).validate_python(value)
    except ValidationError as exc:
        err = exc.errors()[0]
        code = _code(err["type"], kind)
        raise GatewayError(400, f"{param}: {plain(err)}", param=param, code=code) from None
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
