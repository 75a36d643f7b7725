"""Disk and decoding work runs in worker threads: one request's slow step never stalls another."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import imagerelay.backends.http
import imagerelay.store
from imagerelay.emulator import Emulator
from imagerelay.ledger import Ledger
from tests.relaykit import make_relay


def _slow_image(args: tuple[Any, ...]) -> bool:
    return "slow-fox" in Path(args[0]).name and Path(args[0]).suffix == ".jpg"


def _slow_receipt(args: tuple[Any, ...]) -> bool:
    return "slow-fox" in Path(args[0]).name and Path(args[0]).suffix == ".json"


def _slow_row(args: tuple[Any, ...]) -> bool:
    return bool(args[1].prompt == "slow fox")


def _first(args: tuple[Any, ...]) -> bool:
    return True  # the slow request starts first, so the first call is its own


# (module or class, attribute, which call to hold): every blocking step of saving one image.
STEPS: dict[str, tuple[Any, str, Callable[[tuple[Any, ...]], bool]]] = {
    "decoding and verifying the image": (imagerelay.backends.http, "verified_image", _first),
    "writing the image (fsync)": (imagerelay.store, "atomic_write", _slow_image),
    "writing the receipt (fsync)": (imagerelay.store, "atomic_write", _slow_receipt),
    "syncing the directory": (imagerelay.store, "sync_directory", _first),
}


@pytest.mark.parametrize("step", list(STEPS))
async def test_a_held_step_of_one_request_does_not_stall_another(
    step: str, emulator: Emulator, tmp_path: Path, test_keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one request is held inside `step`, a second request on the same relay is served
    from start to finish: the step runs in a worker thread, not on the event loop."""
    owner, name, holds = STEPS[step]
    real = getattr(owner, name)
    entered, release = threading.Event(), threading.Event()
    order: list[str] = []
    held_once = threading.Lock()

    def held(*args: Any, **kwargs: Any) -> Any:
        if holds(args) and held_once.acquire(blocking=False):
            entered.set()
            release.wait(30)  # bounded: a step run on the loop fails the order below, not hangs
            order.append("held step done")
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, held)
    async with make_relay(emulator, tmp_path, test_keys) as relay:
        slow = asyncio.create_task(relay.generate("slow fox"))
        assert await asyncio.to_thread(entered.wait, 30)
        fast = await relay.generate("quick hare")
        order.append("other request done")
        release.set()
        held_back = await slow
    assert order == ["other request done", "held step done"]
    assert fast.images
    assert held_back.images
    assert Path(held_back.images[0].path).is_file()
    assert Path(held_back.images[0].path).with_suffix(".json").is_file()


async def test_a_held_ledger_row_does_not_stall_another_requests_files(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one request's ledger row is held, another request's image and receipt reach the disk:
    the row is added in a worker thread (rows are added one at a time, so its own row follows)."""
    real_row, real_write = Ledger.record_receipt, imagerelay.store.atomic_write
    entered, release, other_written = threading.Event(), threading.Event(), threading.Event()
    order: list[str] = []

    def held_row(self: Ledger, receipt: Any, **kwargs: Any) -> None:
        if receipt.prompt == "slow fox":
            entered.set()
            release.wait(30)  # bounded: a row added on the loop fails the order below, not hangs
            order.append("held row added")
        real_row(self, receipt, **kwargs)

    def watched(path: Path, data: bytes, **kwargs: Any) -> None:
        real_write(path, data, **kwargs)
        if "quick-hare" in path.name and path.suffix == ".json":
            order.append("other receipt written")
            other_written.set()

    monkeypatch.setattr(Ledger, "record_receipt", held_row)
    monkeypatch.setattr(imagerelay.store, "atomic_write", watched)
    async with make_relay(emulator, tmp_path, test_keys) as relay:
        slow = asyncio.create_task(relay.generate("slow fox"))
        assert await asyncio.to_thread(entered.wait, 30)
        fast = asyncio.create_task(relay.generate("quick hare"))
        assert await asyncio.to_thread(other_written.wait, 30)
        release.set()
        held_back, served = await slow, await fast
    assert order == ["other receipt written", "held row added"]
    assert held_back.images
    assert served.images
    assert relay.ledger is None  # closed with the relay; both rows were added before
    with Ledger.open(tmp_path / "out", create=False) as ledger:
        assert ledger.receipt(held_back.id) is not None
        assert ledger.receipt(served.id) is not None
