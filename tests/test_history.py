"""`imagerelay history`: past generations and their spend, read from the ledger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagerelay.emulator import Emulator
from tests.clikit import run_cli
from tests.keys import POLLED


@pytest.fixture
def made(
    cli_emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> Path:
    """An output directory with a generate run on xAI, one on Replicate, and a two-item batch."""
    for p in POLLED:
        monkeypatch.setenv(f"IMAGERELAY_PROVIDERS__{p.upper()}__POLL_INTERVAL", "0.05")
    code, _, err = run_cli(capsys, monkeypatch, "generate", "a fox", "-n", "2", "--out", "out")
    assert code == 0, err
    pinned = "replicate:black-forest-labs/flux-schnell"
    code, _, err = run_cli(capsys, monkeypatch, "generate", "a cat", "--provider", pinned, "--out", "out")
    assert code == 0, err
    (tmp_path / "m.jsonl").write_text('{"prompt": "item one"}\n{"prompt": "item two"}\n')
    code, _, err = run_cli(capsys, monkeypatch, "batch", "m.jsonl", "--out", "out")
    assert code == 0, err
    return tmp_path / "out"


def test_history_lists_every_generation_and_the_total(
    made: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Single runs and batch items alike are listed, oldest first, with the total spend."""
    code, out, _ = run_cli(capsys, monkeypatch, "history", "--out", str(made))
    assert code == 0
    lines = out.splitlines()
    assert [line.split("  ")[-1] for line in lines[:-1]][:2] == ["a fox", "a cat"]
    assert sorted(line.split("  ")[-1] for line in lines[2:-1]) == ["item one", "item two"]
    assert "xai:grok-imagine-image" in lines[0]
    assert "$0.0030*" in lines[1]  # Replicate reports no cost: ours is an estimate, marked
    assert lines[-1] == "4 generation(s), 5 image(s), $0.0830 in all (* estimated)"


def test_history_json_and_filters(
    made: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--json is one object; --provider and --since narrow the rows and the total."""
    code, out, _ = run_cli(capsys, monkeypatch, "history", "--out", str(made), "--json")
    data = json.loads(out)
    assert code == 0
    assert (data["count"], data["images"], data["total_usd"]) == (4, 5, pytest.approx(0.083))
    assert data["ledger"].endswith("imagerelay.sqlite3")
    batch_rows = [g for g in data["generations"] if g["batch_item"]]
    assert len(batch_rows) == 2

    _, out, _ = run_cli(
        capsys, monkeypatch, "history", "--out", str(made), "--json", "--provider", "replicate"
    )
    assert [g["prompt"] for g in json.loads(out)["generations"]] == ["a cat"]
    _, out, _ = run_cli(
        capsys, monkeypatch, "history", "--out", str(made), "--json", "-p", "xai:grok-imagine-image-quality"
    )
    assert json.loads(out)["count"] == 0
    _, out, _ = run_cli(capsys, monkeypatch, "history", "--out", str(made), "--json", "--since", "2000-01-01")
    assert json.loads(out)["count"] == 4
    _, out, _ = run_cli(
        capsys, monkeypatch, "history", "--out", str(made), "--json", "--since", "2999-01-01T00:00"
    )
    assert json.loads(out) | {"ledger": ""} == {
        "generations": [], "count": 0, "images": 0, "total_usd": 0, "possibly_billed_usd": 0, "ledger": "",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--out", "nowhere"], "no ledger in 'nowhere'"),
        (["--out", ".", "--since", "last tuesday"], "--since 'last tuesday' is not a date"),
    ],
)
def test_history_bad_input_is_one_line_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    expected: str,
) -> None:
    """A directory without a ledger, or a --since that is not a date, is one line and exit 2."""
    monkeypatch.chdir(tmp_path)
    code, _out, err = run_cli(capsys, monkeypatch, "history", *args)
    assert code == 2
    assert expected in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "nowhere").exists()


def test_history_does_not_print_terminal_escapes(tmp_path: Path) -> None:
    """A prompt holding an escape sequence is listed without its control characters."""
    import subprocess
    import sys

    out = tmp_path / "out"
    prompt = "red \x1b[2J\x1b]0;owned\x07 fox"
    made = subprocess.run(
        [sys.executable, "-m", "imagerelay.cli", "generate", prompt, "--env", "sandbox", "--out", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "imagerelay.cli", "history", "--out", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert listed.returncode == 0
    assert "\x1b" not in listed.stdout
    assert "\x07" not in listed.stdout
    assert "red" in listed.stdout
