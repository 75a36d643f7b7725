"""What may have been billed is said wherever spend is: the failure line, the success line and
`history` (its column, its total, and `--json`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagerelay.emulator import Emulator, Fault
from tests.clikit import run_cli

XAI = "xai:grok-imagine-image"


def test_a_failure_line_ends_with_what_may_have_been_billed_and_the_receipt(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """xAI drops the connection after the request was sent: the one error line ends with
    "may have been billed: $0.0200 (xai:grok-imagine-image); receipt: PATH", PATH being the
    failure receipt on disk."""
    cli_emulator.script("xai.generations", Fault(drop=True, times=None))
    code, _, err = run_cli(
        capsys, monkeypatch, "generate", "pb cap", "-p", XAI, "-o", "pb", "--max-cost", "0.021"
    )
    assert code == 1
    line = err.strip().splitlines()[0]
    assert "may have been billed: $0.0200 (xai:grok-imagine-image); receipt: " in line
    path = Path(line.rsplit("receipt: ", 1)[1])
    assert path.is_file()
    assert json.loads(path.read_text())["possibly_billed_usd"] == pytest.approx(0.02)


def test_the_success_line_adds_what_an_earlier_attempt_may_have_been_billed(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """xAI is cut off after the request (possibly billed), Replicate makes the image: the success
    line says "(+ up to $0.0200 possibly billed by xai:grok-imagine-image)", and `history` shows
    that figure in its own column and total, and in `--json`."""
    cli_emulator.script("xai.generations", Fault(drop=True))
    monkeypatch.setenv(
        "IMAGERELAY_ROUTING__TEXT", json.dumps([XAI, "replicate:black-forest-labs/flux-schnell"])
    )
    code, _, err = run_cli(capsys, monkeypatch, "generate", "a fox", "-o", "o")
    assert code == 0, err
    assert "cost $0.0030 (estimated) (+ up to $0.0200 possibly billed by xai:grok-imagine-image)" in err

    code, out, err = run_cli(capsys, monkeypatch, "history", "--out", "o")
    assert code == 0, err
    [row, total] = out.strip().splitlines()
    assert "+$0.0200?" in row
    assert total.startswith("1 generation(s), 1 image(s), $0.0030 in all, + up to $0.0200 possibly billed")
    code, out, err = run_cli(capsys, monkeypatch, "history", "--out", "o", "--json")
    data = json.loads(out)
    assert data["possibly_billed_usd"] == pytest.approx(0.02)
    assert [g["possibly_billed_usd"] for g in data["generations"]] == [pytest.approx(0.02)]


def test_a_refused_key_is_not_tried_again_on_its_other_models_nor_the_next_items(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Gemini refuses its key (401) on the first item's first model: neither Gemini's other
    models in the plan nor the next items try that key again; xAI makes every image."""
    monkeypatch.setenv("GEMINI_API_KEY", "AIza" + "ZZWRONGKEY" + "0000")
    routing = ["gemini:gemini-nano-banana-2.1", "gemini:gemini-3-pro-image", XAI]
    monkeypatch.setenv("IMAGERELAY_ROUTING__TEXT", json.dumps(routing))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"prompt": f"item {i}"}) + "\n" for i in range(3)))
    code, out, err = run_cli(capsys, monkeypatch, "batch", str(manifest), "--out", "b", "-c", "1", "--json")
    assert code == 0, err
    assert json.loads(out)["done"] == 3
    assert len(cli_emulator.requests_for("gemini.generate")) == 1
    assert len(cli_emulator.requests_for("xai.generations")) == 3


def test_an_attempt_records_when_it_started_not_when_it_ended(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """With a 0.5 s answer, the attempt's started_at plus its duration is no later than the moment
    its receipt was written (recorded at the end, started_at would be half a second past it)."""
    import datetime as dt

    cli_emulator.latency = 0.5
    code, out, err = run_cli(capsys, monkeypatch, "generate", "a fox", "-p", XAI, "-o", "o", "--json")
    assert code == 0, err
    receipt = json.loads(out)
    [attempt] = receipt["attempts"]
    started = dt.datetime.fromisoformat(attempt["started_at"]).timestamp()
    written = Path(receipt["images"][0]["receipt_path"]).stat().st_mtime
    assert attempt["duration_s"] >= 0.5
    assert started + attempt["duration_s"] <= written + 0.01  # 10 ms: clock and mtime granularity
    assert dt.datetime.fromisoformat(receipt["created_at"]).timestamp() <= started


def test_the_batch_budget_line_shows_the_cap_as_given(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """`--max-cost 0.0999` stops the batch "at the $0.0999 batch budget", not at a rounded $0.10
    that reads as if the next $0.02 item fitted."""
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "".join(json.dumps({"prompt": f"item {i}", "provider": XAI}) + "\n" for i in range(6))
    )
    code, out, err = run_cli(capsys, monkeypatch, "batch", str(manifest), "--out", "b", "-c", "1",
                             "--max-cost", "0.0999", "--json")  # fmt: skip
    assert code == 3, err
    summary = json.loads(out)
    assert summary["done"] == 4
    assert summary["stopped"].startswith("stopped at the $0.0999 batch budget: $0.0800 spent on this batch")


def test_a_fallback_the_budget_cannot_hold_says_what_is_left_in_the_item_error(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """xAI fails (500, not billed) and GPT-image 2's worst case exceeds what the $0.05 batch budget
    has left for the item: the item's error says the model was not called and how much was left."""
    cli_emulator.script("xai.generations", Fault(status=500, times=None))
    monkeypatch.setenv("IMAGERELAY_ROUTING__TEXT", json.dumps([XAI, "openai:gpt-image-2"]))
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"prompt": "a fox"}) + "\n")
    code, out, err = run_cli(capsys, monkeypatch, "batch", str(manifest), "--out", "b", "--max-cost", "0.05",
                             "--json")  # fmt: skip
    assert code == 1, err
    [failure] = json.loads(out)["failures"]
    assert "openai:gpt-image-2 not called" in failure["error"]
    assert "over what is left of the budget ($0.0500 left for this request)" in failure["error"]
    assert cli_emulator.requests_for("openai.generations") == []


def test_a_batch_deliverable_deleted_or_overwritten_is_said_not_silently_paid_for_again(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """After a batch, one image is overwritten with junk and another deleted: the next run calls
    neither "already done" nor makes them again — each failure names the file and what happened
    (checked against the sha256 recorded when it was saved) — and `--remake` makes them again."""
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "".join(json.dumps({"prompt": f"item {i}", "provider": XAI}) + "\n" for i in range(3))
    )
    code, out, err = run_cli(capsys, monkeypatch, "batch", str(manifest), "--out", "b", "-c", "1", "--json")
    assert code == 0, err
    first, second, _ = json.loads(out)["saved"]
    Path(first).write_bytes(b"junk")
    Path(second).unlink()

    code, out, err = run_cli(capsys, monkeypatch, "batch", str(manifest), "--out", "b", "--json")
    assert code == 3, err
    summary = json.loads(out)
    assert (summary["done"], summary["skipped"], summary["failed"]) == (0, 1, 2)
    errors = sorted(f["error"] for f in summary["failures"])
    assert errors[0].startswith(f"{first} was changed (its sha256 is not the one its receipt holds)")
    assert errors[1].startswith(f"{second} was deleted")
    assert all("--remake" in e for e in errors)
    assert len(cli_emulator.requests_for("xai.generations")) == 3

    code, out, err = run_cli(capsys, monkeypatch, "batch", str(manifest), "--out", "b", "--remake", "--json")
    assert code == 0, err
    assert (json.loads(out)["done"], json.loads(out)["skipped"]) == (2, 1)
    assert len(cli_emulator.requests_for("xai.generations")) == 5
