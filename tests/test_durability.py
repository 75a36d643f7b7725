"""Durable writes made cheaper, not weaker: one directory fsync covers an image and its receipt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import imagerelay.store
from imagerelay.emulator import Emulator
from imagerelay.hooks import RunHooks
from imagerelay.receipt import Receipt, SavedImage
from tests.relaykit import make_relay


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What reaches the disk, in order: each durable write (by suffix) and each directory fsync."""
    seen: list[str] = []
    write, sync = imagerelay.store.atomic_write, imagerelay.store.sync_directory

    def watched_write(path: Path, data: bytes, **kwargs: Any) -> None:
        write(path, data, **kwargs)
        later = not kwargs.get("sync_dir", True)
        seen.append(f"write {Path(path).suffix}" + (" (name not synced)" if later else ""))

    def watched_sync(directory: Path) -> None:
        sync(directory)
        seen.append("sync directory")

    monkeypatch.setattr(imagerelay.store, "atomic_write", watched_write)
    monkeypatch.setattr(imagerelay.store, "sync_directory", watched_sync)
    return seen


async def test_one_directory_fsync_follows_the_images_and_their_receipts(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str], events: list[str]
) -> None:
    """Each file is fsynced before its rename; the directory is fsynced once, after the last
    receipt's rename, so the names of every image and receipt of the request are durable together."""
    async with make_relay(emulator, tmp_path, test_keys) as relay:
        receipt = await relay.generate("two foxes", n=2)
    assert len(receipt.images) == 2
    assert events == [
        "write .jpg (name not synced)",
        "write .jpg (name not synced)",
        "write .json (name not synced)",
        "write .json (name not synced)",
        "sync directory",
    ]


async def test_an_image_is_durable_by_name_before_a_hook_is_told_of_it(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str], events: list[str]
) -> None:
    """An `on_image` hook (a batch records the image as saved) runs only after the directory
    holding the image's name was fsynced."""

    def told(image: SavedImage, receipt: Receipt) -> None:
        events.append("hook told")

    async with make_relay(emulator, tmp_path, test_keys) as relay:
        await relay.generate("a fox", hooks=RunHooks(on_image=told))
    assert events[:3] == ["write .jpg (name not synced)", "sync directory", "hook told"]
    assert events[-1] == "sync directory"  # and the receipt's name after it
