"""Ctrl-C during `generate`: the call in flight is cancelled, what was spent is said and kept, exit 130."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from imagerelay.emulator import Emulator, Fault
from imagerelay.ledger import LEDGER_NAME
from tests.keys import outside_setting

KEY_VARS = {"xai": "XAI_API_KEY", "openai": "OPENAI_API_KEY", "replicate": "REPLICATE_API_TOKEN"}


def test_ctrl_c_cancels_the_prediction_keeps_the_receipt_says_what_was_spent_and_exits_130(
    emulator: Emulator, test_keys: dict[str, str], tmp_path: Path
) -> None:
    """SIGINT while a Replicate prediction runs: it is cancelled at Replicate, the receipt and the
    ledger keep the interrupted attempt and what it may cost, one line says so, exit 130."""
    emulator.script("replicate.create", Fault(prediction="slow", seconds=60))
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS.values()}
    env = {k: v for k, v in env.items() if not outside_setting(k)}
    (tmp_path / "config").mkdir()
    env.update(
        REPLICATE_API_TOKEN=test_keys["replicate"],
        IMAGERELAY_CONFIG_DIR=str(tmp_path / "config"),
        IMAGERELAY_PROVIDERS__REPLICATE__BASE_URL=emulator.base_url("replicate"),
        IMAGERELAY_PROVIDERS__REPLICATE__POLL_INTERVAL="0.05",
    )
    command = [sys.executable, "-m", "imagerelay.cli", "generate", "a fox", "-p",
               "replicate:black-forest-labs/flux-schnell", "--out", "out"]  # fmt: skip
    proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not emulator.requests_for("replicate.get") and time.monotonic() < deadline:
            time.sleep(0.02)
        [pid] = list(emulator.state("replicate").predictions)
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    [line] = err.strip().splitlines()
    assert line.startswith("interrupted: $0.0000 (estimated) spent on 0 saved image(s)")
    assert "up to $0.0030 more may be billed" in line
    assert f"prediction {pid} was cancelled" in line
    [cancel] = emulator.requests_for("replicate.cancel")
    assert cancel.path.endswith(f"/predictions/{pid}/cancel")
    assert emulator.state("replicate").prediction(pid).status(time.monotonic()) == "canceled"  # type: ignore[union-attr]
    [receipt_path] = (tmp_path / "out").glob("*-failed.json")
    assert str(receipt_path.relative_to(tmp_path)) in line
    receipt = json.loads(receipt_path.read_text())
    [attempt] = receipt["attempts"]
    assert (attempt["outcome"], attempt["prediction_id"], attempt["maybe_billed"]) == (
        "interrupted",
        pid,
        True,
    )
    assert attempt["sent"]["prompt"] == "a fox"
    assert receipt["possibly_billed_usd"] == 0.003
    with sqlite3.connect(tmp_path / "out" / LEDGER_NAME) as db:
        assert db.execute("SELECT receipt_id FROM generations").fetchall() == [(receipt["id"],)]
