"""Files imagerelay writes follow the umask, as any program's do, and are still written atomically."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagerelay.emulator import Emulator, Fault
from imagerelay.ledger import LEDGER_NAME
from tests.clikit import run_cli


@pytest.fixture(params=[0o022, 0o027, 0o002], ids=lambda m: f"umask-{m:03o}")
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The process umask for the test; restored after."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_images_receipts_gallery_and_ledger_follow_the_umask(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    umask: int,
) -> None:
    """Every file a generate, a failed generate and a gallery write has mode 0666 less the umask
    (0644 under umask 022), not 0600."""
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, monkeypatch, "generate", "a fox", "--out", str(out))
    assert code == 0, err
    cli_emulator.script("xai.generations", Fault(blocked=True))
    code, _, err = run_cli(capsys, monkeypatch, "generate", "a wolf", "--provider", "xai", "--out", str(out))
    assert code == 1, err
    code, _, err = run_cli(capsys, monkeypatch, "gallery", "--out", str(out))
    assert code == 0, err

    files = {p.name: p for p in out.iterdir() if not p.name.startswith(".")}
    kinds = {
        "image": [p for p in files.values() if p.suffix == ".jpg"],
        "receipt": [p for p in files.values() if p.suffix == ".json" and "failed" not in p.name],
        "failure receipt": [p for p in files.values() if p.name.endswith("-failed.json")],
        "gallery": [files["gallery.html"]],
        "ledger": [files[LEDGER_NAME]],
    }
    expected = 0o666 & ~umask
    for kind, paths in kinds.items():
        assert paths, f"no {kind} was written"
        for path in paths:
            assert mode(path) == expected, f"{kind} {path.name} is {mode(path):o}, not {expected:o}"
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]
