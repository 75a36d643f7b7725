"""`imagerelay generate` end to end through the real entry point, against the emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagerelay.emulator import Emulator, Fault
from imagerelay.imaging import probe, read_metadata
from tests.clikit import run_cli
from tests.images import RED, jpeg_bytes, write
from tests.keys import ALL_KEY_VARS


def test_sandbox_generate_saves_image_and_receipt(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """--env sandbox needs no key: the image path goes to stdout, the image carries its provenance."""
    for var in ALL_KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    code, out, err = run_cli(
        capsys, monkeypatch, "generate", "a lighthouse", "--env", "sandbox", "--out", str(tmp_path)
    )
    assert code == 0, err
    path = Path(out.strip())
    assert path.parent == tmp_path
    assert path.is_file()
    data = path.read_bytes()
    assert probe(data).format == "jpeg"
    meta = read_metadata(data)
    assert meta["DigitalSourceType"].endswith("trainedAlgorithmicMedia")
    assert meta["model"] == "grok-imagine-image"
    receipt = json.loads(path.with_suffix(".json").read_text())
    assert receipt["images"][0]["path"] == str(path)
    assert "saved 1 image(s) from xai:grok-imagine-image" in err


def test_json_output_is_exactly_one_receipt_object(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With --json, stdout is one JSON object holding images, attempts, notes and cost_usd."""
    code, out, _ = run_cli(
        capsys, monkeypatch, "generate", "a lighthouse", "--env", "sandbox", "--out", str(tmp_path),
        "--size", "1792x1024", "--json",
    )  # fmt: skip
    assert code == 0
    receipt = json.loads(out)
    assert {"images", "attempts", "notes", "cost_usd"} <= receipt.keys()
    assert any("16:9" in n for n in receipt["notes"])


def test_reference_generation_in_sandbox_uses_the_reference(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A sandbox edit is drawn from the reference: a red reference gives a reddish image."""
    ref = write(tmp_path, "red.jpg", jpeg_bytes((120, 80), RED))
    code, out, err = run_cli(
        capsys, monkeypatch, "generate", "same, at night", "--env", "sandbox", "--out", str(tmp_path / "o"),
        "--reference", str(ref), "--json",
    )  # fmt: skip
    assert code == 0, err
    receipt = json.loads(out)
    assert receipt["references"][0]["width"] == 120
    from PIL import Image

    with Image.open(receipt["images"][0]["path"]) as im:
        r, g, b = im.convert("RGB").resize((1, 1)).getpixel((0, 0))  # type: ignore[misc]
    assert r > g + 30
    assert r > b + 30


def test_dry_run_sends_nothing(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--dry-run prints the plan with its cost and exclusions and sends no request at all."""
    code, out, _ = run_cli(capsys, monkeypatch, "generate", "a fox", "-n", "6", "--dry-run", "--json")
    assert code == 0
    plan = json.loads(out)
    assert plan["candidates"][0]["model"] == "xai:grok-imagine-image"
    assert plan["estimate_usd"] > 0
    assert cli_emulator.requests == []


def test_content_blocked_exits_1(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A moderation refusal saves nothing and exits 1, saying so."""
    cli_emulator.script("xai.generations", Fault(blocked=True))
    code, out, err = run_cli(capsys, monkeypatch, "generate", "refused")
    assert code == 1
    assert out == ""
    assert "content_blocked" in err


def test_every_model_down_exits_1_with_each_reason(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When every candidate fails, exit 1 and one line per attempt names the model and why."""
    for route in ("xai.generations", "openai.generations", "replicate.create", "gemini.generate"):
        cli_emulator.script(route, Fault(status=503, times=None))
    code, _, err = run_cli(capsys, monkeypatch, "generate", "a fox")
    assert code == 1
    assert "Traceback" not in err
    for model in (
        "xai:grok-imagine-image",
        "replicate:black-forest-labs/flux-schnell",
        "openai:gpt-image-2.6-flare",
        "gemini:gemini-nano-banana-2.1",
    ):
        assert model in err


def test_bad_key_warns_and_falls_back(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused xAI key falls back to the next model and warns on stderr naming XAI_API_KEY, not the key."""
    monkeypatch.setenv("XAI_API_KEY", "xai-" + "0123456789abcdefWRONG")
    code, out, err = run_cli(capsys, monkeypatch, "generate", "a fox")
    assert code == 0
    assert out.strip()
    assert "XAI_API_KEY" in err
    assert "0123456789abcdefWRONG" not in out + err


def test_another_programs_config_dir_does_not_stop_imagerelay(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An unrelated ./config/default.toml is ignored; ./imagerelay.toml beside it is what applies."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "default.toml").write_text('[server]\nport = 8080\n[database]\nurl = "x"\n')
    (tmp_path / "config" / "sandbox.toml").write_text("[budget]\nmax_cost_per_request = 0.0001\n")
    code, out, err = run_cli(capsys, monkeypatch, "generate", "a lighthouse", "--env", "sandbox", "--json")
    assert code == 0, err
    assert Path(json.loads(out)["images"][0]["path"]).is_file()
    (tmp_path / "imagerelay.sandbox.toml").write_text("[budget]\nmax_cost_per_request = 0.0001\n")
    code, out, err = run_cli(capsys, monkeypatch, "generate", "a lighthouse", "--env", "sandbox")
    assert code == 1
    assert "no candidate fits the budget of $0.0001" in err


# -- exit codes and --json --------------------------------------------------------------------------


def test_four_images_of_six_exit_3_and_say_so_in_json(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partial delivery (4 of 6) exits 3, and its JSON receipt has exit_code 3 and the 4 images."""
    cli_emulator.script("replicate.create", Fault(), Fault(status=500, times=None))
    monkeypatch.setenv("IMAGERELAY_RETRY__ATTEMPTS", "1")
    code, out, err = run_cli(
        capsys, monkeypatch, "generate", "foxes", "-n", "6", "--json",
        "--provider", "replicate:black-forest-labs/flux-schnell",
    )  # fmt: skip
    assert code == 3, err
    receipt = json.loads(out)
    assert receipt["exit_code"] == 3
    assert (len(receipt["images"]), receipt["request"]["n"]) == (4, 6)
    assert all(Path(i["path"]).is_file() for i in receipt["images"])
    assert "partial: 4 of 6 image(s) saved (exit 3)" in err


def test_complete_delivery_json_has_exit_code_0(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every image asked for: exit 0, and the JSON receipt says exit_code 0."""
    code, out, err = run_cli(
        capsys,
        monkeypatch,
        "generate",
        "foxes",
        "-n",
        "2",
        "--env",
        "sandbox",
        "--out",
        str(tmp_path),
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["exit_code"] == 0
    assert "partial" not in err


@pytest.mark.parametrize("command", [["plan"], ["generate", "--dry-run"]])
def test_plan_no_model_can_serve_fails_as_generate_would(
    command: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A plan no model can serve (no key set) exits 2 like generate, still showing why each was left out."""
    monkeypatch.chdir(tmp_path)
    for var in ALL_KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    code, out, err = run_cli(capsys, monkeypatch, *command, "a fox", "--env", "development")
    assert code == 2
    assert "no model can serve this request" in out
    assert "no key" in out
    assert err.startswith("error: no model can serve this request")
    assert err.count("\n") == 1

    code, out, err = run_cli(capsys, monkeypatch, *command, "a fox", "--env", "development", "--json")
    assert code == 2
    payload = json.loads(out)
    assert (payload["error_type"], payload["exit_code"]) == ("InvalidRequest", 2)
    assert payload["plan"]["candidates"] == []
    assert payload["plan"]["excluded"]


def test_plan_over_budget_exits_1_like_generate(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan whose every model is over --max-cost exits 1, as generate does (BudgetExceeded); a
    plan that can be served exits 0 with exit_code 0 in its JSON."""
    code, out, err = run_cli(capsys, monkeypatch, "plan", "a fox", "--max-cost", "0.0001", "--json")
    assert code == 1, err
    assert json.loads(out)["error_type"] == "BudgetExceeded"
    code, out, err = run_cli(capsys, monkeypatch, "plan", "a fox", "--json")
    assert code == 0, err
    assert json.loads(out)["exit_code"] == 0
    assert cli_emulator.requests == []


@pytest.mark.parametrize(
    "args",
    [
        ["generate", "a fox", "-n", "abc", "--json"],
        ["generate", "--json", "a fox", "--no-such-option"],
        ["batch", "--json"],
        ["plan", "a fox", "--json", "--size"],
    ],
    ids=["bad-value", "unknown-option", "missing-argument", "missing-option-value"],
)
def test_usage_error_with_json_prints_one_json_object(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A usage error with --json exits 2 with one JSON object on stdout and one line on stderr."""
    code, out, err = run_cli(capsys, monkeypatch, *args)
    assert code == 2
    payload = json.loads(out)
    assert (payload["error_type"], payload["exit_code"]) == ("UsageError", 2)
    assert err.count("\n") == 1
    assert err.startswith("error: ")
    assert payload["error"] in err


def test_usage_error_without_json_prints_nothing_on_stdout(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --json (here only after `--`, as a prompt), a usage error leaves stdout empty."""
    code, out, err = run_cli(capsys, monkeypatch, "generate", "-n", "abc", "--", "--json")
    assert code == 2
    assert out == ""
    assert err.startswith("error: ")


def test_an_over_budget_refusal_is_short_and_names_the_cheapest(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Over the cap, one short line: the cheapest candidate and what it may cost, and how many
    others were left out — not every model of the catalog, retired ones included."""
    code, _, err = run_cli(
        capsys, monkeypatch, "generate", "x", "--env", "sandbox", "-o", str(tmp_path), "--max-cost", "0.001"
    )
    assert code == 1
    [line] = err.strip().splitlines()
    assert "the cheapest, replicate:black-forest-labs/flux-schnell, is estimated at $0.0030" in line
    assert "other model(s) cost more or cannot serve it" in line
    assert "retired" not in line
    assert len(line) < 300
