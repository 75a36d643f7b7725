"""The ledger: every generation recorded, committed at once, crash-safe, keyless, movable."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sqlite3
from pathlib import Path

import pytest

from imagerelay.batch import run_batch
from imagerelay.emulator import Emulator, Fault
from imagerelay.errors import OutputError
from imagerelay.ledger import LEDGER_NAME, Ledger, LedgerError
from imagerelay.manifest import load_manifest
from imagerelay.receipt import Receipt, SavedImage
from imagerelay.relay import Relay
from imagerelay.store import Store
from tests.clikit import run_cli
from tests.images import RED, jpeg_bytes
from tests.relaykit import emulator_settings


def _image(path: Path) -> SavedImage:
    data = jpeg_bytes((32, 32), RED)
    path.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    return SavedImage(
        path=str(path), sha256=sha, width=32, height=32, format="jpeg", bytes=len(data),
        provider="xai", model="grok-imagine-image",
    )  # fmt: skip


def test_generate_records_successes_and_failures(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """`imagerelay generate` adds a ledger row per run, with its images — and a failed run too."""
    code, out, _ = run_cli(capsys, monkeypatch, "generate", "a fox", "-n", "2", "--out", "out")
    assert code == 0
    cli_emulator.script("xai.generations", Fault(blocked=True))
    code, _, _ = run_cli(capsys, monkeypatch, "generate", "a blocked fox", "--out", "out")
    assert code == 1
    with sqlite3.connect(tmp_path / "out" / LEDGER_NAME) as db:
        rows = db.execute(
            "SELECT prompt, provider, images, cost_usd, item_key FROM generations ORDER BY created_ts"
        )
        assert rows.fetchall() == [
            ("a fox", "xai", 2, pytest.approx(0.04), None),
            ("a blocked fox", None, 0, 0, None),
        ]
        paths = sorted(p for (p,) in db.execute("SELECT path FROM images"))
    assert paths == sorted(Path(p).name for p in out.split())


def test_rows_are_committed_the_moment_they_are_written(tmp_path: Path) -> None:
    """The ledger is in WAL mode and an image row is visible to another reader at once."""
    with Ledger.open(tmp_path) as ledger:
        ledger.record_image("r1", _image(tmp_path / "a.jpg"))
        with sqlite3.connect(tmp_path / LEDGER_NAME) as other:
            assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert other.execute("SELECT path, receipt_id FROM images").fetchall() == [("a.jpg", "r1")]


def test_paths_are_relative_so_the_directory_can_move(tmp_path: Path) -> None:
    """Images are recorded relative to the directory: a moved directory still knows its images."""
    manifest = load_manifest(_jsonl(tmp_path / "m.jsonl", '{"prompt": "a"}'))
    [item] = manifest.items
    with Ledger.open(tmp_path / "one") as ledger:
        ledger.sync_items(manifest.name, manifest.items)
        ledger.start_run(item.key, "r1", n=1, estimate_usd=0.02)
        ledger.record_image("r1", _image(tmp_path / "one" / "a.jpg"))
    shutil.move(tmp_path / "one", tmp_path / "two")
    with Ledger.open(tmp_path / "two") as ledger:
        assert ledger.item_records([item.key])[item.key].saved == 1
        (tmp_path / "two" / "a.jpg").unlink()  # a deleted image no longer counts, and is named
        record = ledger.item_records([item.key])[item.key]
        assert (record.saved, record.missing) == (0, (str(tmp_path / "two" / "a.jpg"),))


def test_an_image_saved_but_not_recorded_is_adopted(tmp_path: Path) -> None:
    """An image a killed run renamed into place but never recorded is found by its request id."""
    manifest = load_manifest(_jsonl(tmp_path / "m.jsonl", '{"prompt": "a"}'))
    [item] = manifest.items
    out = tmp_path / "out"
    with Ledger.open(out) as ledger:
        ledger.sync_items(manifest.name, manifest.items)
        ledger.start_run(
            item.key, "ab12cd34" + "0" * 24, n=1, estimate_usd=0.02, planned="xai:grok-imagine-image"
        )
        stem = Store(out).stem("a", "ab12cd34" + "0" * 24, 1)
        (out / f"{stem}.jpg").write_bytes(jpeg_bytes((32, 32), RED))
        (out / "20260101-000000-a-ab12cd34-2.jpg").write_bytes(b"not an image")
        assert ledger.adopt_orphans() == 1
        assert ledger.item_records([item.key])[item.key].saved == 1
        assert ledger.batch_spent(manifest.name) == pytest.approx(0.02)
        assert ledger.adopt_orphans() == 0


async def test_no_key_reaches_the_ledger_or_any_file(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """After a batch with every kind of call, no API key appears in any file of the directory."""
    from imagerelay.gallery import write_gallery

    emulator.script("xai.generations", Fault(status=401))  # xAI refuses: its key is echoed in the error
    manifest = load_manifest(
        _jsonl(
            tmp_path / "m.jsonl",
            '{"prompt": "a"}',
            '{"prompt": "b", "provider": "replicate:black-forest-labs/flux-schnell"}',
            '{"prompt": "c", "provider": "openai"}',
        )
    )
    out = tmp_path / "out"
    with Ledger.open(out) as ledger:
        relay = Relay(
            emulator_settings(emulator),
            keys=test_keys,
            out_dir=out,
            on_receipt=[ledger.record_receipt],
            record=False,
        )
        async with relay:
            await run_batch(manifest, relay, ledger)
    write_gallery(out)
    blob = b"".join(p.read_bytes() for p in out.iterdir() if p.is_file())
    assert blob.count(b"grok-imagine-image") > 0
    for key in test_keys.values():
        assert key.encode() not in blob


def test_a_file_or_a_foreign_database_is_refused(tmp_path: Path) -> None:
    """--out that is a file, or a ledger file that is not a database, is a clear UserError."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a directory"):
        Ledger.open(tmp_path / "file")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / LEDGER_NAME).write_bytes(b"definitely not sqlite" * 100)
    with pytest.raises(LedgerError, match="cannot be used as a ledger"):
        Ledger.open(tmp_path / "d")
    with pytest.raises(LedgerError, match="no ledger in"):
        Ledger.open(tmp_path / "empty", create=False)
    assert not (tmp_path / "empty").exists()


def test_second_batch_in_the_same_directory_is_refused(tmp_path: Path) -> None:
    """Two batches in one directory could pay twice for an item: the second waits for the first to end."""
    with Ledger.open(tmp_path) as first:
        first.lock()
        with Ledger.open(tmp_path) as second, pytest.raises(LedgerError, match="another batch is running"):
            second.lock()
    with Ledger.open(tmp_path) as third:
        third.lock()


def test_record_receipt_never_fails_a_generation(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A ledger that cannot be written is a warning: the images and their receipts are already saved."""
    ledger = Ledger.open(tmp_path)
    ledger.close()
    with caplog.at_level(logging.WARNING, logger="imagerelay"):
        ledger.record_receipt(Receipt(id="r1", prompt="a"))
    assert "was not updated for receipt r1" in caplog.text


def test_receipt_updates_the_images_recorded_before_it(tmp_path: Path) -> None:
    """An image recorded on save, then finalised (metadata embedded), keeps one row with the final hash."""
    with Ledger.open(tmp_path) as ledger:
        image = _image(tmp_path / "a.jpg")
        ledger.record_image("r1", image)
        final = image.model_copy(update={"sha256": "f" * 64, "bytes": 999})
        ledger.record_receipt(
            Receipt(id="r1", prompt="a", images=[final], provider="xai", model="m", cost_usd=0.02)
        )
        rows = ledger._conn.execute("SELECT path, sha256, bytes FROM images").fetchall()
        assert rows == [("a.jpg", "f" * 64, 999)]
        [body] = list(ledger.receipts())
        assert json.loads(body)["cost_usd"] == 0.02


def _jsonl(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


_HOLD = """
import sys, time
from datetime import datetime, UTC
from imagerelay.ledger import Ledger
from imagerelay.ledger.gateway import BudgetWindow
ledger = Ledger.open(sys.argv[1])
window = BudgetWindow(0.05, datetime(2000, 1, 1, tzinfo=UTC))
assert ledger.hold_budget(sys.argv[2], "k", 0.04, [window], max_age=3600) is None
print("held", flush=True)
time.sleep(float(sys.argv[3]))
"""


def test_a_budget_hold_counts_while_its_process_lives_and_never_after(tmp_path: Path) -> None:
    """A gateway key's budget held by another live process is seen here and refuses what does not
    fit; once that process is gone (killed, never released) its hold counts no more; and a hold
    older than `max_age` counts for nothing even while its process lives."""
    import subprocess
    import sys
    from datetime import UTC, datetime

    from imagerelay.ledger.gateway import BudgetWindow

    window = BudgetWindow(0.05, datetime(2000, 1, 1, tzinfo=UTC))
    Ledger.open(tmp_path).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(tmp_path), "a" * 32, "60"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with Ledger.open(tmp_path) as ledger:
            standing = ledger.key_standing("k", window, max_age=3600)
            assert (standing.held, standing.holds) == (0.04, 1)
            refused = ledger.hold_budget("b" * 32, "k", 0.02, [window], max_age=3600)
            assert refused is not None
            assert refused.held == 0.04
            assert ledger.key_standing("k", window, max_age=0).holds == 0  # too old to be running
            holder.kill()
            holder.wait()
            assert ledger.key_standing("k", window, max_age=3600).holds == 0
            assert ledger.hold_budget("b" * 32, "k", 0.02, [window], max_age=3600) is None
            assert ledger.key_standing("k", window, max_age=3600).held == 0.02
            ledger.release_budget("b" * 32)
            assert ledger.key_standing("k", window, max_age=3600).holds == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
