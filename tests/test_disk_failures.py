"""A disk that fails after the provider delivered: the paid image is kept elsewhere, the spend is
recorded, and the command says so in one line (exit 1, never 2, never a traceback)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagerelay.emulator import Emulator
from imagerelay.imaging import probe
from imagerelay.ledger import LEDGER_NAME
from tests.clikit import run_cli
from tests.keys import outside_setting

KEY_VARS = {"xai": "XAI_API_KEY", "openai": "OPENAI_API_KEY", "replicate": "REPLICATE_API_TOKEN"}


def when_sent(emulator: Emulator, route: str, count: int, action: object) -> threading.Thread:
    """Run `action()` in a thread once `emulator` has received `count` requests on `route`."""

    def wait() -> None:
        deadline = time.monotonic() + 30
        while len(emulator.requests_for(route)) < count and time.monotonic() < deadline:
            time.sleep(0.005)
        action()  # type: ignore[operator]

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread


def make_unwritable(out: Path) -> None:
    """The output directory becomes unwritable mid-run, even for root: it moves away and a plain
    file takes its name (every write into it fails with ENOTDIR; open files stay usable)."""
    out.rename(out.with_name(out.name + ".moved"))
    out.write_text("not a directory any more")


def rescued(cache: Path) -> list[Path]:
    return sorted(p for p in (cache / "imagerelay" / "rescue").rglob("*") if p.suffix == ".jpg")


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The user cache directory (where rescued images go), inside the test's own directory."""
    path = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(path))
    return path


def test_generate_keeps_a_paid_image_the_output_cannot_take_and_exits_1(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    cache: Path,
) -> None:
    """The output directory fails while xAI generates: exit 1 (not 2), one line naming what was
    paid and where the image was kept, the receipt beside the rescued image and the ledger row
    both record the cost."""
    out = tmp_path / "out"
    cli_emulator.latency = 0.3
    watcher = when_sent(cli_emulator, "xai.generations", 1, lambda: make_unwritable(out))
    code, stdout, err = run_cli(capsys, monkeypatch, "generate", "a fox", "-p", "xai", "--out", str(out))
    watcher.join()
    assert code == 1
    assert stdout == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Not a directory" in lines[0]
    assert "$0.0200" in lines[0]
    [image] = rescued(cache)
    assert str(image.parent) in lines[0]
    assert probe(image.read_bytes()).width > 0
    receipt = json.loads(image.with_suffix(".json").read_text())
    assert receipt["cost_usd"] == pytest.approx(0.02)
    assert receipt["images"][0]["path"] == str(image)
    assert len(cli_emulator.requests_for("xai.generations")) == 1
    with sqlite3.connect(tmp_path / "out.moved" / LEDGER_NAME) as db:
        assert db.execute("SELECT cost_usd, images FROM generations").fetchall() == [(0.02, 1)]


def test_batch_stops_keeps_the_paid_image_and_a_rerun_moves_it_back_paying_nothing_twice(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    cache: Path,
) -> None:
    """The output directory fails during the first of three items: that image is kept in the
    rescue directory, no further item starts, exit 1 with no traceback and the spend recorded; once
    the directory is back, a rerun moves the image into it and pays only for the two others."""
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "".join(json.dumps({"prompt": f"item {i}", "provider": "xai"}) + "\n" for i in range(3))
    )
    out = tmp_path / "out"
    cli_emulator.latency = 0.3
    watcher = when_sent(cli_emulator, "xai.generations", 1, lambda: make_unwritable(out))
    code, stdout, err = run_cli(
        capsys, monkeypatch, "batch", str(manifest), "--out", str(out), "-c", "1", "--json"
    )
    watcher.join()
    assert code == 1
    assert "Traceback" not in err
    summary = json.loads(stdout)
    assert (summary["done"], summary["failed"], summary["remaining"]) == (0, 1, 2)
    assert summary["spent_usd"] == pytest.approx(0.02)
    assert "no new item was started" in summary["stopped"]
    [image] = rescued(cache)
    assert str(image.parent) in summary["failures"][0]["error"]
    assert len(cli_emulator.requests_for("xai.generations")) == 1

    out.unlink()
    out.with_name("out.moved").rename(out)
    cli_emulator.latency = 0.0
    code, stdout, err = run_cli(capsys, monkeypatch, "batch", str(manifest), "--out", str(out), "--json")
    assert code == 0, err
    again = json.loads(stdout)
    assert (again["done"], again["skipped"]) == (2, 1)
    assert len(cli_emulator.requests_for("xai.generations")) == 3
    assert (out / image.name).is_file()
    assert (out / image.name).with_suffix(".json").is_file()
    assert not image.exists()
    assert again["batch_spent_usd"] == pytest.approx(0.06)


# ---- a real full disk: a tiny tmpfs (needs root and mount) -------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs at tmp_path/disk, unmounted after; skipped where it cannot be mounted."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8); the unwritable-directory tests cover this")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); the other tests cover this")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def fill(disk: Path) -> None:
    """Write to `disk` until it is full (unbuffered, so that nothing is left to flush)."""
    fd = os.open(disk / f"filler-{uuid.uuid4().hex}", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    with pytest.raises(OSError, match="No space left") as info:
        (disk / "probe").write_bytes(b"\0" * 65536)
    assert info.value.errno == errno.ENOSPC


@pytest.mark.parametrize("command", ["generate", "batch"])
def test_a_full_disk_mid_run_keeps_the_paid_image_and_exits_1(
    emulator: Emulator, test_keys: dict[str, str], tmp_path: Path, tiny_disk: Path, command: str
) -> None:
    """ENOSPC after xAI delivered, for `generate` and `batch` as real processes: exit 1, no
    traceback, a line saying what was paid and where the image is, the image in the rescue
    directory on another disk with its receipt."""
    out = tiny_disk / "out"
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"prompt": "a fox", "provider": "xai"}) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS.values()}
    env = {k: v for k, v in env.items() if not outside_setting(k)}
    (tmp_path / "config").mkdir()
    env.update(
        XAI_API_KEY=test_keys["xai"],
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        IMAGERELAY_CONFIG_DIR=str(tmp_path / "config"),
        IMAGERELAY_PROVIDERS__XAI__BASE_URL=emulator.base_url("xai"),
    )
    args = ["generate", "a fox", "-p", "xai"] if command == "generate" else ["batch", str(manifest)]
    emulator.latency = 1.0
    watcher = when_sent(emulator, "xai.generations", 1, lambda: fill(tiny_disk))
    done = subprocess.run(
        [sys.executable, "-m", "imagerelay.cli", *args, "--out", str(out)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    watcher.join()
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    if command == "generate":  # one line, a failing ledger (same disk) folded into it
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "No space left on device" in done.stderr
    assert "$0.0200" in done.stderr
    [image] = rescued(tmp_path / "cache")
    assert str(image.parent) in done.stderr
    assert probe(image.read_bytes()).width > 0
    assert json.loads(image.with_suffix(".json").read_text())["cost_usd"] == pytest.approx(0.02)
    assert len(emulator.requests_for("xai.generations")) == 1


def test_an_image_whose_metadata_cannot_be_embedded_is_written_as_delivered(tmp_path: Path) -> None:
    """Bytes first: when splicing the provenance into a delivered image fails (here its bytes are not
    the format the check found), the delivered bytes are written unchanged and the note says why."""
    from imagerelay.backends.base import Delivered
    from imagerelay.receipt import Receipt
    from imagerelay.store import Store, save_delivered
    from tests.images import RED, jpeg_bytes, png_bytes

    delivered = jpeg_bytes((64, 48), RED)
    wrong = probe(png_bytes((64, 48), RED))  # what a confused check might report: a PNG
    store = Store(tmp_path / "out")
    store.ensure()
    receipt = Receipt(id=uuid.uuid4().hex, prompt="a red square")
    saved, note = save_delivered(
        store, receipt, Delivered(data=delivered, info=wrong), provider="xai", model="m", name="sq", index=1
    )
    assert Path(saved.path).read_bytes() == delivered
    assert saved.sha256 == saved.delivered_sha256
    assert note is not None
    assert note.startswith(f"metadata not embedded in {Path(saved.path).name}: ValueError")


def test_an_image_rescued_while_the_ledger_was_full_too_is_booked_and_not_paid_again(
    emulator: Emulator, test_keys: dict[str, str], tmp_path: Path, tiny_disk: Path
) -> None:
    """The disk holding the output and its ledger fills while xAI generates: the image goes to the
    rescue directory and the ledger records nothing. Once there is room, the same batch moves the
    image (and its receipt) back, books its cost, and pays for nothing again; `history` agrees."""
    out = tiny_disk / "out"
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"prompt": "a fox", "provider": "xai"}) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARS.values()}
    env = {k: v for k, v in env.items() if not outside_setting(k)}
    (tmp_path / "config").mkdir()
    env.update(
        XAI_API_KEY=test_keys["xai"],
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        IMAGERELAY_CONFIG_DIR=str(tmp_path / "config"),
        IMAGERELAY_PROVIDERS__XAI__BASE_URL=emulator.base_url("xai"),
    )
    command = [sys.executable, "-m", "imagerelay.cli", "batch", str(manifest), "--out", str(out), "--json"]
    emulator.latency = 1.0
    watcher = when_sent(emulator, "xai.generations", 1, lambda: fill(tiny_disk))
    first = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    watcher.join()
    assert first.returncode == 1, first.stderr
    [image] = rescued(tmp_path / "cache")
    with sqlite3.connect(out / LEDGER_NAME) as db:
        assert db.execute("SELECT COUNT(*) FROM generations").fetchone() == (0,)  # it was full too

    for filler in tiny_disk.glob("filler-*"):
        filler.unlink()
    emulator.latency = 0.0
    second = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert (summary["done"], summary["skipped"]) == (0, 1)
    assert summary["batch_spent_usd"] == pytest.approx(0.02)
    assert len(emulator.requests_for("xai.generations")) == 1
    assert (out / image.name).is_file()
    assert not image.exists()
    receipt = json.loads((out / image.name).with_suffix(".json").read_text())
    assert receipt["images"][0]["path"] == str(out / image.name)
    history = subprocess.run([sys.executable, "-m", "imagerelay.cli", "history", "--out", str(out), "--json"],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert history.returncode == 0, history.stderr
    rows = json.loads(history.stdout)
    rows = rows["generations"] if isinstance(rows, dict) else rows
    assert [round(r["cost_usd"], 4) for r in rows] == [0.02]
