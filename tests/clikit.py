"""Run the `imagerelay` console entry point in-process, as a test would type it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from imagerelay.cli import main


def run_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    """Run `imagerelay *args` in-process; returns (exit code, stdout, stderr).

    `sys.argv` is set for the call only (through `monkeypatch`); a `SystemExit` becomes its code
    (0 when `main()` returns or exits without one), and the output is what `capsys` captured since
    it was last read.
    """
    monkeypatch.setattr("sys.argv", ["imagerelay", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def sandbox_generate(tmp_path: Path, provider: str, *args: str) -> dict[str, Any]:
    """`imagerelay generate "a lighthouse" *args --env sandbox` via Typer's runner; returns the
    receipt of its one image after checking that the image is on disk, decodes, came from
    `provider` and that the last attempt succeeded."""
    from typer.testing import CliRunner

    from imagerelay.cli import app
    from imagerelay.imaging import probe

    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["generate", "a lighthouse", *args, "--env", "sandbox", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    [receipt_path] = out.glob("*.json")
    receipt: dict[str, Any] = json.loads(receipt_path.read_text())
    [saved] = receipt["images"]
    assert Path(saved["path"]).is_file()
    assert probe(Path(saved["path"]).read_bytes()).width == saved["width"]
    assert receipt["attempts"][-1]["outcome"] == "success"
    assert receipt["provider"] == provider
    return receipt
