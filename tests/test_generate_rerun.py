"""`generate` killed while Replicate works, then run again into the same output: the prediction
already paid for is re-attached to, never created again."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagerelay.emulator import Emulator, Fault
from imagerelay.ledger import LEDGER_NAME
from tests.keys import outside_setting

SCHNELL = "replicate:black-forest-labs/flux-schnell"
KEY_VARS = ("XAI_API_KEY", "OPENAI_API_KEY", "REPLICATE_API_TOKEN", "GEMINI_API_KEY", "GOOGLE_API_KEY")


def replicate_env(emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]) -> dict[str, str]:
    """The environment of an `imagerelay` subprocess pointed at `emulator` (Replicate only)."""
    (tmp_path / "config").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS and not outside_setting(k)}
    env.update(
        REPLICATE_API_TOKEN=test_keys["replicate"],
        IMAGERELAY_CONFIG_DIR=str(tmp_path / "config"),
        IMAGERELAY_PROVIDERS__REPLICATE__BASE_URL=emulator.base_url("replicate"),
        IMAGERELAY_PROVIDERS__REPLICATE__POLL_INTERVAL="0.05",
    )
    return env


def recorded_predictions(out: Path) -> list[str]:
    try:
        with sqlite3.connect(out / LEDGER_NAME) as db:
            return [pid for (pid,) in db.execute("SELECT prediction_id FROM predictions")]
    except sqlite3.Error:
        return []


def kill_when(proc: subprocess.Popen[str], ready: object) -> None:
    deadline = time.monotonic() + 60
    try:
        while not ready() and time.monotonic() < deadline and proc.poll() is None:  # type: ignore[operator]
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("window", ["polling", "create"])
def test_generate_killed_mid_prediction_then_run_again_re_attaches_instead_of_paying_again(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str], window: str
) -> None:
    """SIGKILL while the prediction runs (its id in the ledger) or before the create answered (no
    id anywhere), then the same command: one create in all, the image saved, the receipt's
    attempt re-attached to the first prediction."""
    if window == "polling":
        emulator.script("replicate.create", Fault(prediction="slow", seconds=2))
    else:
        emulator.script("replicate.create", Fault(answer_after=60))
    out = tmp_path / "out"
    env = replicate_env(emulator, tmp_path, test_keys)
    command = [sys.executable, "-m", "imagerelay.cli", "generate", "a lighthouse", "-p", SCHNELL,
               "--out", str(out), "--json"]  # fmt: skip
    first = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)  # fmt: skip
    if window == "polling":
        kill_when(first, lambda: recorded_predictions(out))
    else:
        kill_when(first, lambda: emulator.state("replicate").predictions)
        assert recorded_predictions(out) == []  # killed before the id was known
    [pid] = list(emulator.state("replicate").predictions)

    second = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert len(emulator.requests_for("replicate.create")) == 1
    receipt = json.loads(second.stdout)
    [attempt] = receipt["attempts"]
    assert (attempt["outcome"], attempt["prediction_id"]) == ("success", pid)
    assert attempt["sent"] == {"resumed_prediction": pid}
    assert len(receipt["images"]) == 1
    assert any(f"re-attached to prediction {pid}" in note for note in receipt["notes"])
    with sqlite3.connect(out / LEDGER_NAME) as db:
        assert db.execute("SELECT COUNT(*), SUM(cost_usd) FROM generations").fetchone() == (1, 0.003)
        assert db.execute("SELECT item_key FROM generations").fetchone() == (None,)

    third = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert third.returncode == 0, third.stderr
    # Asked again after it finished: a new image (the user asked again), no list lookup needed.
    assert len(emulator.requests_for("replicate.create")) == 2
    assert json.loads(third.stdout)["attempts"][0]["prediction_id"] != pid
