"""Run the `imagerelay` console entry point in-process, as a test would type it."""

from __future__ import annotations

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
