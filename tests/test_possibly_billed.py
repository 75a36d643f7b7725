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
