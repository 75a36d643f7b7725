"""ImageRequest: what a caller may ask for, and the plain message for what it may not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from imagerelay.request import MAX_N, MAX_PROMPT_CHARS, ImageRequest, parse_aspect_ratio, parse_size


def _message(**fields: Any) -> str:
    """The one message pydantic carries for a rejected request (without its "Value error, ")."""
    fields.setdefault("prompt", "a red fox in snow")
    with pytest.raises(ValidationError) as info:
        ImageRequest(**fields)
    errors = info.value.errors()
    assert len(errors) == 1, errors
    err = errors[0]
    return str(err.get("ctx", {}).get("error") or err["msg"])


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({"prompt": ""}, "the prompt is empty", id="empty-prompt"),
        pytest.param({"prompt": " \t\n "}, "the prompt is empty", id="whitespace-prompt"),
        pytest.param({"prompt": "a fox\x00 in snow"}, "NUL byte", id="nul-byte"),
        pytest.param({"prompt": "x" * 100_000}, "100,000 characters, over the 32,000 limit", id="long"),
        pytest.param({"n": 0}, "n must be between 1 and 10 (got 0)", id="n-0"),
        pytest.param({"n": 1000}, "n must be between 1 and 10 (got 1000)", id="n-1000"),
        pytest.param({"size": "banana"}, "size 'banana' is not WIDTHxHEIGHT", id="size-banana"),
        pytest.param({"size": "0x0"}, "size '0x0' is out of range", id="size-0x0"),
        pytest.param({"aspect_ratio": "16:0"}, "aspect ratio '16:0' is out of range", id="ratio-16:0"),
        pytest.param({"aspect_ratio": "99:1"}, "between 1:4 and 4:1", id="ratio-99:1"),
        pytest.param(
            {"size": "1024x1024", "aspect_ratio": "1:1"}, "--size or --aspect-ratio, not both", id="both"
        ),
        pytest.param({"mask": "mask.png"}, "a mask needs a reference image", id="mask-alone"),
        pytest.param({"references": ("a.jpg",) * 17}, "17 references given", id="17-references"),
    ],
)
def test_invalid_request_has_a_plain_message(fields: dict[str, Any], expected: str) -> None:
    """Each invalid request is refused with one plain-language message naming the problem."""
    assert expected in _message(**fields)


def test_limits_are_the_documented_ones() -> None:
    """A request takes 1–10 images and prompts up to 32,000 characters (OpenAI's limit)."""
    assert (MAX_N, MAX_PROMPT_CHARS) == (10, 32_000)
    assert ImageRequest(prompt="x" * 32_000, n=10).n == 10
    with pytest.raises(ValidationError):
        ImageRequest(prompt="x" * 32_001)


def test_size_and_ratio_are_normalised() -> None:
    """Sizes are written WxH whatever the separator and spacing; ratios lose their spaces."""
    assert ImageRequest(prompt="x", size=" 1792 X 1024 ").size == "1792x1024"
    assert ImageRequest(prompt="x", size="1024×768").size == "1024x768"
    assert ImageRequest(prompt="x", aspect_ratio="16 : 9").aspect_ratio == "16:9"
    assert ImageRequest(prompt="x", size="auto").size == "auto"


def test_parse_size_and_ratio_values() -> None:
    """parse_size gives (width, height); parse_aspect_ratio gives width/height, decimals allowed."""
    assert parse_size("1792x1024") == (1792, 1024)
    assert parse_aspect_ratio("16:9") == pytest.approx(16 / 9)
    assert parse_aspect_ratio("9:19.5") == pytest.approx(9 / 19.5)
    with pytest.raises(ValueError, match="each side must be 64–8192"):
        parse_size("10000x1024")


def test_mode_follows_references() -> None:
    """A request is in `reference` mode exactly when it carries reference images."""
    assert ImageRequest(prompt="x").mode == "text"
    assert ImageRequest(prompt="x", references=("a.jpg",), mask="m.png").mode == "reference"


def test_unknown_field_and_bad_enum_are_refused() -> None:
    """A misspelt field or an unknown quality is an error, not silently ignored."""
    with pytest.raises(ValidationError, match="extra"):
        ImageRequest(prompt="x", sise="1024x1024")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="quality"):
        ImageRequest(prompt="x", quality="ultra")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="seed"):
        ImageRequest(prompt="x", seed=-1)


@pytest.mark.parametrize(
    ("fields", "cli_args"),
    [
        pytest.param({"size": "banana"}, ["--size", "banana"], id="size"),
        pytest.param({"quality": "ultra"}, ["--quality", "ultra"], id="quality"),
        pytest.param({"aspect_ratio": "16:0"}, ["--aspect-ratio", "16:0"], id="ratio"),
        pytest.param(
            {"size": "1024x1024", "aspect_ratio": "1:1"}, ["--size", "1024x1024", "-a", "1:1"], id="both"
        ),
        pytest.param({"n": 0}, ["-n", "0"], id="n"),
    ],
)
def test_the_same_mistake_reads_the_same_from_library_cli_and_manifest(
    fields: dict[str, Any],
    cli_args: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One formatter: the library's InvalidRequest, the CLI's error line and a manifest's problem say
    the same sentence for the same mistake (only the fix for n differs in a manifest: split the item)."""
    from imagerelay.errors import InvalidRequest, ManifestError
    from imagerelay.manifest import load_manifest
    from imagerelay.relay import Relay
    from tests.clikit import run_cli

    with pytest.raises(InvalidRequest) as info:
        Relay(keys={}, out_dir=tmp_path).plan("a fox", **fields)
    library = str(info.value)
    code, _, err = run_cli(capsys, monkeypatch, "plan", "a fox", *cli_args, "--env", "sandbox")
    assert code == 2
    assert err.strip() == f"error: {library}"
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"prompt": "a fox", **fields}) + "\n", encoding="utf-8")
    with pytest.raises(ManifestError) as bad:
        load_manifest(path)
    [line] = bad.value.problems
    if "n" in fields:
        assert library == f"n must be between 1 and {MAX_N} (got 0): use a batch manifest for more"
        assert line == f"line 1: n must be between 1 and {MAX_N}: split the item into several items for more"
    else:
        assert line == f"line 1: {library}"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({"n": "two"}, "n: must be a whole number (got 'two')", id="n-words"),
        pytest.param(
            {"prompt": None},
            "the prompt must be text saying what the image should show (got None)",
            id="no-prompt",
        ),
        pytest.param(
            {"prompt": 42}, "the prompt must be text saying what the image should show (got 42)", id="int"
        ),
        pytest.param(
            {"resolution": "8k"}, "resolution: must be one of 1k, 2k, 4k (got '8k')", id="resolution"
        ),
        pytest.param(
            {"quality": "ultra"},
            "quality: must be one of low, medium, high, xhigh, max (got 'ultra')",
            id="quality",
        ),
        pytest.param(
            {"output_format": "gif"}, "output_format: must be one of png, jpeg, webp (got 'gif')", id="fmt"
        ),
        pytest.param({"seed": -1}, "seed: must be at least 0 (got -1)", id="seed"),
        pytest.param({"references": 5}, "references: must be a list (got 5)", id="references-int"),
        pytest.param({"references": ("a.jpg", 5)}, "references.1: must be text (got 5)", id="reference-int"),
        pytest.param({"extras": [1]}, "extras: must be a table of names to values (got a list)", id="extras"),
    ],
)
def test_a_library_caller_s_mistake_is_one_plain_line_naming_the_field(
    fields: dict[str, Any], expected: str
) -> None:
    """`generate(...)`'s fields, wrong: one line naming the field, what it must be (the allowed values
    where there is a list) and what was given — never pydantic's "Input should be …"."""
    from imagerelay.errors import InvalidRequest
    from imagerelay.request import as_request

    prompt = fields.pop("prompt", "a fox")
    with pytest.raises(InvalidRequest) as info:
        as_request(prompt, fields)
    assert str(info.value) == expected


def test_one_path_or_a_path_object_is_a_reference() -> None:
    """`references="fox.jpg"` is one reference, and `Path`s are taken as references and masks."""
    assert ImageRequest(prompt="x", references="fox.jpg").references == ("fox.jpg",)  # type: ignore[arg-type]
    request = ImageRequest(
        prompt="x",
        references=(Path("fox.jpg"), "https://example.com/b.png"),  # type: ignore[arg-type]
        mask=Path("mask.png"),  # type: ignore[arg-type]
    )
    assert (request.references, request.mask) == (("fox.jpg", "https://example.com/b.png"), "mask.png")
    assert ImageRequest(prompt="x", references=Path("fox.jpg")).references == ("fox.jpg",)  # type: ignore[arg-type]


def test_words_from_a_fixed_list_are_taken_in_any_case() -> None:
    """`4K`, `HIGH` and `JPG` mean 4k, high and jpeg."""
    request = ImageRequest(prompt="x", resolution="4K", quality=" HIGH", output_format="JPG")  # type: ignore[arg-type]
    assert (request.resolution, request.quality, request.output_format) == ("4k", "high", "jpeg")
    assert ImageRequest(prompt="x", output_format="WebP").output_format == "webp"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--resolution", "4K"], "--resolution 4K"),
        (["--quality", "HIGH"], "--quality HIGH"),
        (["-f", "JPG"], "-f JPG"),
    ],
)
def test_the_cli_takes_those_words_in_any_case(
    args: list[str], expected: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`plan --resolution 4K`, `--quality HIGH`, `-f JPG` plan as their lower-case words do."""
    from tests.clikit import run_cli

    code, upper, err = run_cli(capsys, monkeypatch, "plan", "a fox", *args, "--env", "sandbox", "--json")
    assert code == 0, f"{expected}: {err}"
    lower = [a.lower() for a in args]
    code, same, err = run_cli(capsys, monkeypatch, "plan", "a fox", *lower, "--env", "sandbox", "--json")
    assert code == 0, err
    assert json.loads(upper) == json.loads(same)


def test_the_cli_names_the_field_and_its_allowed_values(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--resolution 8k` is one line naming the field and the values it takes, exit 2."""
    from tests.clikit import run_cli

    code, _, err = run_cli(capsys, monkeypatch, "plan", "a fox", "--resolution", "8k", "--env", "sandbox")
    assert code == 2
    assert err.strip() == "error: resolution: must be one of 1k, 2k, 4k (got '8k')"
