"""The gateway's field rules are OpenAI's official schema, not a copy that drifts from it."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from imagerelay.gateway import wire

SPEC = Path(__file__).resolve().parent / "reference" / "openai-images.openapi.yaml"


def test_the_packaged_rules_are_derived_from_the_official_schema() -> None:
    """`wire.json` equals what `derive` reads from OpenAI's OpenAPI file today (regenerate it with
    `python -m imagerelay.gateway.wire tests/reference/openai-images.openapi.yaml`)."""
    derived = wire.derive(yaml.safe_load(SPEC.read_text(encoding="utf-8")))
    packaged = json.loads(Path(wire.__file__).with_name("wire.json").read_text(encoding="utf-8"))
    assert packaged == derived
    assert derived["background"] == {"type": "string", "enum": ["transparent", "opaque", "auto"]}
    assert derived["output_compression"] == {"type": "integer", "minimum": 0, "maximum": 100}
    assert derived["n"] == {"type": "integer", "minimum": 1, "maximum": 10}
    assert "image" not in derived  # files are checked as uploads, not as values
