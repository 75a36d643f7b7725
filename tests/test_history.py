"""`imagerelay history`: past generations and their spend, read from the ledger."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
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


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--provider", "xia"], "unknown provider 'xia': did you mean 'xai'?"),
        (["--provider", "openai:gpt-imag-2"], "did you mean openai:gpt-image-2?"),
        (["--key", "nosuch"], "unknown gateway key 'nosuch'"),
        (["--key", "locl"], "did you mean 'local'?"),
    ],
)
def test_history_refuses_a_filter_that_names_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    expected: str,
) -> None:
    """A misspelt --provider, model or --key is refused (exit 2, did-you-mean) rather than answered
    with "0 generation(s)", which reads as nothing spent; a known one still filters."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, monkeypatch, "generate", "a fox", "--env", "sandbox", "-o", "out")
    assert code == 0, err
    code, _, err = run_cli(capsys, monkeypatch, "history", "--out", "out", *args)
    assert code == 2
    assert expected in err
    assert len(err.strip().splitlines()) == 1
    code, out, _ = run_cli(capsys, monkeypatch, "history", "--out", "out", "--provider", "xai")
    assert code == 0
    assert out.splitlines()[-1].startswith("1 generation(s)")


def _without_root_powers(args: list[str]) -> list[str]:
    """`args` run so that file permissions apply even to root (who otherwise writes anywhere)."""
    if os.geteuid() != 0:
        return args
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only directory cannot be made")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", *args]


def test_history_and_gallery_read_a_read_only_output_directory(tmp_path: Path) -> None:
    """history and gallery only read the ledger: in a directory they cannot write, history lists
    the runs (exit 0) and gallery says it cannot write its page, not that the ledger cannot open."""
    out = tmp_path / "out"
    cli = [sys.executable, "-m", "imagerelay.cli"]
    env = {**os.environ, "IMAGERELAY_ENV": "sandbox"}
    done = subprocess.run(
        [*cli, "generate", "a fox", "-o", str(out)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    out.chmod(0o555)
    try:
        history = subprocess.run(
            _without_root_powers([*cli, "history", "--out", str(out)]),
            env=env,
            capture_output=True,
            text=True,
        )
        gallery = subprocess.run(
            _without_root_powers([*cli, "gallery", "--out", str(out)]),
            env=env,
            capture_output=True,
            text=True,
        )
    finally:
        out.chmod(0o755)
    assert history.returncode == 0, history.stderr
    assert history.stdout.splitlines()[-1].startswith("1 generation(s)")
    assert gallery.returncode == 2
    assert "gallery.html" in gallery.stderr
    assert "ledger" not in gallery.stderr
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("imagerelay.sqlite3")) == [
        "imagerelay.sqlite3"
    ]
