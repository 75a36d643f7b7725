"""A batch cut short while Replicate works resumes with exactly one prediction per item."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from imagerelay.batch import run_batch
from imagerelay.emulator import Emulator, Fault
from imagerelay.ledger import LEDGER_NAME, Ledger
from imagerelay.manifest import load_manifest
from imagerelay.relay import Relay
from tests.keys import outside_setting
from tests.relaykit import emulator_settings

SCHNELL = "replicate:black-forest-labs/flux-schnell"
KEY_VARS = {"xai": "XAI_API_KEY", "openai": "OPENAI_API_KEY", "replicate": "REPLICATE_API_TOKEN"}


def jsonl(path: Path, *items: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    return path


@pytest.mark.parametrize("dead", ["canceled", "aborted", "failed"])
async def test_a_dead_resumed_prediction_is_dropped_and_one_new_one_made(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str], dead: str
) -> None:
    """A prediction recorded before an interruption that ended canceled, aborted or failed while we
    were away is polled once, dropped, and exactly one fresh prediction is made: no re-polling of
    the dead one, no cooldown of the model."""
    emulator.script("replicate.create", Fault(prediction=dead, seconds=0.5, error="GPU lost"))
    out = tmp_path / "out"
    manifest = load_manifest(jsonl(tmp_path / "m.jsonl", {"prompt": "a fox", "provider": SCHNELL}))
    key = manifest.items[0].key
    settings = emulator_settings(emulator, providers={"replicate": {"poll_interval": 0.05}})
    with Ledger.open(out) as ledger:
        async with Relay(settings, keys=test_keys, out_dir=out) as relay:
            task = asyncio.create_task(run_batch(manifest, relay, ledger))
            for _ in range(250):
                if ledger.resumable_predictions(key):
                    break
                await asyncio.sleep(0.02)
            [(_, pid)] = ledger.resumable_predictions(key).items()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        while emulator.state("replicate").prediction(pid).status(time.monotonic()) != dead:  # type: ignore[union-attr]
            await asyncio.sleep(0.05)
        polls_before = len(emulator.requests_for("replicate.get"))

        relay = Relay(settings, keys=test_keys, out_dir=out)
        relay.on_receipt.append(ledger.record_receipt)
        async with relay:
            summary = await run_batch(manifest, relay, ledger)
            assert relay.cooling() == {}
        assert (summary.done, summary.failed) == (1, 0)
        assert ledger.resumable_predictions(key) == {}
    creates = emulator.requests_for("replicate.create")
    assert len(creates) == 2
    dead_polls = [r for r in emulator.requests_for("replicate.get")[polls_before:] if r.path.endswith(pid)]
    assert len(dead_polls) == 1


def batch_env(emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]) -> dict[str, str]:
    """The environment of an `imagerelay` subprocess pointed at `emulator` (Replicate only)."""
    (tmp_path / "config").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS.values() and not outside_setting(k)}
    env.update(
        REPLICATE_API_TOKEN=test_keys["replicate"],
        IMAGERELAY_CONFIG_DIR=str(tmp_path / "config"),
        IMAGERELAY_PROVIDERS__REPLICATE__BASE_URL=emulator.base_url("replicate"),
        IMAGERELAY_PROVIDERS__REPLICATE__MAX_REQUESTS_PER_MINUTE="6000",
        IMAGERELAY_PROVIDERS__REPLICATE__POLL_INTERVAL="0.05",
    )
    return env


def test_a_batch_killed_before_the_create_answered_finds_its_predictions_instead_of_paying_again(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """SIGKILL while two creates were accepted but not yet answered (no id recorded anywhere), then
    the same command: each item's prediction is found in GET /v1/predictions and re-attached —
    exactly one create per item, both items done."""
    emulator.script("replicate.create", Fault(answer_after=60, times=2))
    items = [{"prompt": f"lighthouse {i}", "name": f"post-{i}", "provider": SCHNELL} for i in range(2)]
    path = jsonl(tmp_path / "m.jsonl", *items)
    out = tmp_path / "out"
    env = batch_env(emulator, tmp_path, test_keys)
    command = [
        sys.executable,
        "-m",
        "imagerelay.cli",
        "batch",
        str(path),
        "--out",
        str(out),
        "-c",
        "2",
        "--json",
    ]
    first = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while (
            len(emulator.state("replicate").predictions) < 2
            and time.monotonic() < deadline
            and first.poll() is None
        ):
            time.sleep(0.02)
        assert first.poll() is None, first.communicate()
        assert len(emulator.state("replicate").predictions) == 2
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
    with sqlite3.connect(out / LEDGER_NAME) as db:
        assert db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == 0  # killed in the window
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2

    second = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert (summary["done"], summary["failed"]) == (2, 0)
    assert len(emulator.requests_for("replicate.create")) == 2
    assert len(emulator.state("replicate").predictions) == 2
    assert emulator.requests_for("replicate.list")
    with sqlite3.connect(out / LEDGER_NAME) as db:
        recorded = {pid for (pid,) in db.execute("SELECT prediction_id FROM predictions")}
        per_item = db.execute("SELECT i.name, COUNT(m.path) FROM items i JOIN images m ON m.item_key = i.key "
                              "GROUP BY i.key ORDER BY i.name").fetchall()  # fmt: skip
    assert recorded == set(emulator.state("replicate").predictions)
    assert per_item == [("post-0", 1), ("post-1", 1)]
    for image in out.glob("*.webp"):
        receipt = json.loads(image.with_suffix(".json").read_text())
        [attempt] = receipt["attempts"]
        assert attempt["sent"] == {"resumed_prediction": attempt["prediction_id"]}
        assert (
            emulator.state("replicate").predictions[attempt["prediction_id"]].input["prompt"]
            == receipt["prompt"]
        )


async def test_a_resumed_prediction_replicate_no_longer_knows_is_replaced_on_the_same_model(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """A prediction recorded before an interruption answers 404 on resume: it is dropped, exactly
    one new prediction is made on the same model (no cooldown, no dearer fallback), and the receipt
    says so in a note."""
    emulator.script("replicate.create", Fault(prediction="slow", seconds=30))
    out = tmp_path / "out"
    manifest = load_manifest(jsonl(tmp_path / "m.jsonl", {"prompt": "a fox", "provider": "replicate"}))
    key = manifest.items[0].key
    settings = emulator_settings(emulator, providers={"replicate": {"poll_interval": 0.05}})
    with Ledger.open(out) as ledger:
        async with Relay(settings, keys=test_keys, out_dir=out) as relay:
            task = asyncio.create_task(run_batch(manifest, relay, ledger))
            for _ in range(250):
                if ledger.resumable_predictions(key):
                    break
                await asyncio.sleep(0.02)
            [(_, pid)] = ledger.resumable_predictions(key).items()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        emulator.state("replicate").forget(pid)

        relay = Relay(settings, keys=test_keys, out_dir=out)
        relay.on_receipt.append(ledger.record_receipt)
        async with relay:
            summary = await run_batch(manifest, relay, ledger)
            assert relay.cooling() == {}
        assert (summary.done, summary.failed) == (1, 0)
    creates = emulator.requests_for("replicate.create")
    assert [c.path.rsplit("/models/", 1)[1] for c in creates] == [
        "black-forest-labs/flux-schnell/predictions"
    ] * 2
    [image] = out.glob("*.webp")
    receipt = json.loads(image.with_suffix(".json").read_text())
    assert receipt["model"] == "black-forest-labs/flux-schnell"
    assert [a["outcome"] for a in receipt["attempts"]] == ["success"]
    assert any(pid in note and "404" in note for note in receipt["notes"])
