"""The gateway's words: its field rules are OpenAI's official schema (not a copy that drifts from
it), and the fixes it tells a client name request fields and config, not CLI flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from imagerelay.errors import ImageRelayError, OutputError
from imagerelay.gateway import wire
from imagerelay.gateway.errors import from_relay_error
from imagerelay.store import Store

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


def test_a_storage_error_tells_the_operator_the_gateways_setting_not_a_flag(tmp_path: Path) -> None:
    """The library's "pass --out DIR" (an output path that is a file) reaches an HTTP client as the
    gateway's own output setting."""
    blocker = tmp_path / "out"
    blocker.write_text("a file")
    with pytest.raises(OutputError) as caught:
        Store(blocker).ensure()
    assert "--out" in caught.value.message
    message = from_relay_error(caught.value).message
    assert "--" not in message.replace("serve --out", "")
    assert "[output] dir" in message


def test_a_message_with_no_flag_is_left_as_it_is() -> None:
    """Only the CLI's phrases are replaced: anything else reaches the client word for word."""
    assert from_relay_error(ImageRelayError("something else went wrong")).message.endswith(
        "something else went wrong"
    )
