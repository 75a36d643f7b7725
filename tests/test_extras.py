"""Provider fields (`--extra`, `PROVIDER.FIELD` CSV columns, `extras` in TOML/JSONL manifests) are
checked against the catalog before anything is sent: a misspelt field is refused with the nearest
name, a value the provider's schema cannot take is refused, both exit 2 with nothing sent; a
provider's rejection of a caller's field stops the request instead of paying a model that drops it.
The catalog's rules agree with the provider schemas they come from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from imagerelay.catalog import load_catalog
from imagerelay.emulator import Emulator
from imagerelay.emulator.replicate_models import MODELS
from tests.clikit import run_cli

CATALOG = load_catalog()
SPEC_PATH = Path(__file__).resolve().parent / "reference" / "openai-images.openapi.yaml"


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("extra", "provider", "expect"),
    [
        ("replicate.go_fast=maybe", "replicate", "replicate.go_fast: 'maybe' is not true or false"),
        ("gemini.thinking_level=hihg", "gemini", "gemini.thinking_level: 'hihg' is not one of minimal"),
        ("replicate.go_fasst=false", "replicate", "unknown field replicate.go_fasst"),
        ("gemini.thinking_levle=high", "gemini", "did you mean gemini.thinking_level?"),
        ("replicate.output_quality=150", "replicate", "replicate.output_quality: 150 is out of range"),
        ("openai.background=rainbow", "openai", "openai.background: 'rainbow' is not one of transparent"),
        ("openai.output_compression=500", "openai", "use 0 to 100"),
        ("xai.user=5", "xai", "xai.user: 5 is not text"),
    ],
)
def test_a_bad_or_misspelt_extra_is_refused_before_anything_is_sent(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: str,
    provider: str,
    expect: str,
) -> None:
    """--extra with a field no model of the provider takes, or a value its schema cannot take:
    exit 2, one line naming the field and the fix, and the emulator received nothing."""
    code, _, err = run_cli(
        capsys, monkeypatch, "generate", "x", "-o", "o", "--provider", provider, "--extra", extra
    )
    assert code == 2, err
    assert expect in one_line(err)
    assert cli_emulator.requests == []
    assert not Path("o").exists() or not any(Path("o").glob("*.json"))


def test_a_misspelt_field_suggests_the_nearest_name(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """go_fasst → "did you mean replicate.go_fast?"."""
    code, _, err = run_cli(capsys, monkeypatch, "generate", "x", "--extra", "replicate.go_fasst=false")
    assert code == 2
    assert "did you mean replicate.go_fast?" in one_line(err)
    assert cli_emulator.requests == []


def test_a_known_field_for_a_model_that_lacks_it_is_dropped_with_a_note(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """prompt_strength (flux-dev's) pinned to flux-schnell is not sent, and the receipt says so."""
    code, out, err = run_cli(
        capsys, monkeypatch, "generate", "x", "-o", "o", "--json",
        "--provider", "replicate:black-forest-labs/flux-schnell", "--extra", "replicate.prompt_strength=0.5",
    )  # fmt: skip
    assert code == 0, err
    receipt = json.loads(out)
    assert any("replicate.prompt_strength dropped" in n for n in receipt["notes"])
    [create] = cli_emulator.requests_for("replicate.create")
    assert "prompt_strength" not in create.json["input"]


def test_a_word_field_takes_the_number_it_spells(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--extra replicate.megapixels=1 (parsed as the number 1) goes up as "1", as the schema types it."""
    code, _, err = run_cli(
        capsys, monkeypatch, "generate", "x", "-o", "o",
        "--provider", "replicate:black-forest-labs/flux-schnell", "--extra", "replicate.megapixels=1",
    )  # fmt: skip
    assert code == 0, err
    [create] = cli_emulator.requests_for("replicate.create")
    assert create.json["input"]["megapixels"] == "1"


def test_a_rejected_caller_field_stops_instead_of_paying_a_model_that_ignores_it(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """num_inference_steps=10 is within what some FLUX model takes but over schnell's 4: schnell's
    422 ends the request (exit 1, nothing paid) instead of moving on to dearer models that drop it."""
    code, _, err = run_cli(
        capsys, monkeypatch, "generate", "x", "-o", "o", "--json",
        "--provider", "replicate", "--extra", "replicate.num_inference_steps=10",
    )  # fmt: skip
    assert code == 1, err
    assert "num_inference_steps" in err
    assert [r.route for r in cli_emulator.requests] == ["replicate.create"]
    [receipt_path] = Path("o").glob("*.json")
    receipt = json.loads(receipt_path.read_text())
    assert any("stopped rather than paying a model that would ignore it" in n for n in receipt["notes"])


@pytest.mark.parametrize(
    ("name", "text", "expect"),
    [
        (
            "ext.csv",
            "name,prompt,provider,replicate.go_fasst\na,x,replicate,false\n",
            "did you mean replicate.go_fast?",
        ),
        (
            "ext.toml",
            '[[items]]\nprompt = "x"\nextras = { gemini = { thinking_levle = "high" } }\n',
            "did you mean gemini.thinking_level?",
        ),
        (
            "ext.jsonl",
            '{"prompt": "x", "extras": {"replicate": {"go_fast": "maybe"}}}\n',
            "replicate.go_fast: 'maybe' is not true or false",
        ),
    ],
)
def test_a_manifest_with_a_bad_extra_is_refused_before_anything_is_sent(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    text: str,
    expect: str,
) -> None:
    """A misspelt PROVIDER.FIELD column or `extras` key, or a bad value, in any manifest format:
    exit 2 naming it, and no request reached the emulator."""
    Path(name).write_text(text)
    code, _, err = run_cli(capsys, monkeypatch, "batch", name, "--out", "out")
    assert code == 2, err
    assert expect in err
    assert "Traceback" not in err
    assert cli_emulator.requests == []


def test_every_shipped_extra_field_has_a_rule() -> None:
    """Each field a shipped model lists in `extra_fields` has its type in its provider's [extras]."""
    missing = [
        f"{p.name}.{f} ({m.id})"
        for p in CATALOG.providers.values()
        if p.name in ("xai", "openai", "replicate", "gemini")
        for m in p.models.values()
        for f in m.extra_fields
        if f not in p.extras
    ]
    assert missing == []


def test_openai_rules_agree_with_the_openapi_schema() -> None:
    """Each OpenAI extra the official schema documents has the schema's type and enum in the catalog."""
    schemas: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())["components"]["schemas"]
    props = {**schemas["CreateImageEditRequest"]["properties"], **schemas["CreateImageRequest"]["properties"]}
    compared = 0
    for name, rule in CATALOG.provider("openai").extras.items():
        prop = props.get(name)
        if prop is None:  # newer than the schema file (complexity, safety_identifier)
            continue
        for part in prop.get("anyOf", []):
            ref = part.get("$ref", "")
            if ref:
                prop = schemas[ref.rsplit("/", 1)[-1]]
        assert prop["type"] == rule.type, name
        assert tuple(prop.get("enum", ())) == rule.enum, name
        compared += 1
    assert compared >= 5


def test_replicate_rules_agree_with_the_model_schemas() -> None:
    """Each Replicate rule has the type and enum of every emulated model input of that name, and its
    range covers each model's own (the loosest: a model refuses what is outside its own)."""
    rules = CATALOG.provider("replicate").extras
    compared = 0
    for spec in MODELS.values():
        for name, field in spec.inputs.items():
            rule = rules.get(name)
            if rule is None:
                continue
            assert rule.type == field.type, name
            assert rule.enum == field.enum, name
            if field.minimum is not None:
                assert rule.minimum is not None, name
                assert rule.minimum <= field.minimum, name
            if field.maximum is not None:
                assert rule.maximum is not None, name
                assert rule.maximum >= field.maximum, name
            compared += 1
    assert compared >= 20
