"""One request's run inside the relay: the deadline, skipped candidates, the describe fallback
failing, the hooks, receipts whose hooks fail, disk work off the event loop, the relay's lifecycle."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from imagerelay.catalog import load_catalog
from imagerelay.describe import vision_model
from imagerelay.emulator import Emulator, Fault
from imagerelay.errors import GenerationFailed, UserError
from imagerelay.hooks import PredictionCreated, RunHooks
from imagerelay.imaging import probe
from imagerelay.relay import Relay
from tests.images import RED, jpeg_bytes, png_bytes, write
from tests.relaykit import emulator_settings, make_relay, routes

SCHNELL = "replicate:black-forest-labs/flux-schnell"


class Clock:
    """A monotonic clock that only moves when someone sleeps (a sleep may take far longer than asked,
    as on a laptop that was suspended)."""

    def __init__(self, step: float) -> None:
        self.now = 1000.0
        self.step = step
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += self.step


async def test_request_deadline_stops_before_the_next_candidate(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """When the request's deadline has passed once a candidate gives up, the next one is not tried:
    the run stops, says so in the receipt, and fails with that receipt."""
    emulator.script("xai.generations", Fault(status=503, times=None))
    clock = Clock(step=100.0)
    settings = emulator_settings(
        emulator,
        routing={"text": ["xai:grok-imagine-image", SCHNELL]},
        retry={"attempts": 2, "deadline": 30.0},
    )
    async with Relay(
        settings, keys=test_keys, out_dir=tmp_path / "out", clock=clock, sleep=clock.sleep
    ) as relay:
        with pytest.raises(GenerationFailed) as info:
            await relay.generate("a lighthouse")
    assert routes(emulator) == ["xai.generations", "xai.generations"]  # Replicate never asked
    assert len(clock.waits) == 1  # one backoff, which outlasted the deadline
    receipt = info.value.receipt
    assert f"request deadline (30s) reached before {SCHNELL}" in receipt.notes
    assert [a.outcome for a in receipt.attempts] == ["transient", "transient"]


async def test_a_candidate_whose_reference_cannot_be_prepared_is_skipped(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """A reference that cannot be made to fit one provider's limits skips that provider's candidate
    (noted, nothing sent to it) and the next candidate serves the request."""
    ref = write(tmp_path, "ref.png", png_bytes((640, 480), RED))
    catalog = load_catalog()
    xai = catalog.providers["xai"]
    tiny = xai.reference_limits.model_copy(update={"max_bytes": 64})
    catalog.providers["xai"] = xai.model_copy(update={"reference_limits": tiny})
    settings = emulator_settings(
        emulator, routing={"reference": ["xai:grok-imagine-image", "openai:gpt-image-2.6-flare"]}
    )
    async with Relay(settings, catalog=catalog, keys=test_keys, out_dir=tmp_path / "out") as relay:
        receipt = await relay.generate("in this style", references=(str(ref),))
    assert not [r for r in routes(emulator) if r.startswith("xai.")]
    assert receipt.provider == "openai"
    [skipped] = [n for n in receipt.notes if n.startswith("xai:grok-imagine-image skipped: ")]
    assert "reference 1" in skipped


async def test_describe_fallback_failing_keeps_the_receipt_and_fails(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """When the vision model cannot describe the reference, no text model is called; the failure is
    one attempt of the receipt (with what the failed reference model cost), and a note says why."""
    ref = write(tmp_path, "ref.jpg", jpeg_bytes((96, 64), RED))
    emulator.script("xai.edits", Fault(status=503, times=None))
    emulator.script("xai.chat", Fault(status=500, times=None))
    routing = {"reference": ["xai:grok-imagine-image"], "text": [SCHNELL], "reference_fallback": "describe"}
    async with make_relay(emulator, tmp_path, test_keys, routing=routing, retry={"attempts": 1}) as relay:
        with pytest.raises(GenerationFailed) as info:
            await relay.generate("in this style", references=(str(ref),))
    receipt = info.value.receipt
    assert "replicate.create" not in routes(emulator)
    assert [(a.model, a.outcome) for a in receipt.attempts] == [
        ("grok-imagine-image", "transient"),
        (vision_model(relay.settings.vision, relay.catalog)[1], "transient"),
    ]
    assert any(n.startswith("describe fallback failed: ") for n in receipt.notes)
    assert len(info.value.failures) == 2


async def test_a_failing_receipt_hook_does_not_undo_a_saved_result(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A receipt hook that raises is logged; the saved images and their receipt are still returned,
    and the hooks after it still run."""
    after: list[str] = []

    def broken(receipt: Any) -> None:
        raise RuntimeError("the hook's own bug")

    relay = make_relay(emulator, tmp_path, test_keys)
    relay.on_receipt[:0] = [broken, lambda r: after.append(r.id)]
    with caplog.at_level(logging.ERROR, logger="imagerelay"):
        async with relay:
            receipt = await relay.generate("a fox")
    assert receipt.images
    assert Path(receipt.images[0].path).is_file()
    assert Path(receipt.images[0].receipt_path or "").is_file()
    assert after == [receipt.id]
    assert any(
        "receipt hook" in r.getMessage() and "the hook's own bug" in r.exc_text for r in caplog.records
    )


async def test_hooks_name_the_files_and_report_images_and_predictions_as_they_happen(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """`RunHooks` give the receipt its id and the files their name, and report each prediction (typed,
    with its model) before any image of it, and each image once it is on disk."""
    seen: list[Any] = []
    hooks = RunHooks(
        receipt_id="ab" * 16,
        name="Harbour at dawn",
        on_prediction=seen.append,
        on_image=lambda image, receipt: seen.append(Path(image.path).is_file()),
    )
    async with make_relay(emulator, tmp_path, test_keys) as relay:
        receipt = await relay.generate("a harbour", provider=SCHNELL, n=2, hooks=hooks)
    assert receipt.id == "ab" * 16
    assert all(
        Path(i.path).name.split("-", 2)[2].startswith("harbour-at-dawn-abababab-") for i in receipt.images
    )
    [created] = [e for e in seen if isinstance(e, PredictionCreated)]
    assert created == PredictionCreated(SCHNELL, receipt.attempts[0].prediction_id or "")
    assert seen == [created, True, True]


async def test_a_prediction_hook_that_fails_does_not_abandon_the_paid_prediction(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A prediction hook that raises (a full disk under the ledger, say) is logged; the prediction
    it was told of is still waited for and its image saved: one create, nothing paid twice."""

    def broken(event: PredictionCreated) -> None:
        raise OSError(28, "No space left on device")

    with caplog.at_level(logging.WARNING, logger="imagerelay"):
        async with make_relay(emulator, tmp_path, test_keys) as relay:
            receipt = await relay.generate("a fox", provider=SCHNELL, hooks=RunHooks(on_prediction=broken))
    assert len(receipt.images) == 1
    assert Path(receipt.images[0].path).is_file()
    assert len(emulator.requests_for("replicate.create")) == 1
    assert any("No space left on device" in r.getMessage() for r in caplog.records)


async def test_a_retry_after_a_dead_resumed_prediction_makes_a_fresh_one(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """A resumed prediction is used by one attempt only: when that attempt fails (its prediction and
    the fresh one it made both ended dead), the retry creates a prediction and never polls the
    resumed one again."""
    emulator.script(
        "replicate.create",
        Fault(prediction="canceled", seconds=0.05),  # the one an earlier run left
        Fault(prediction="aborted", seconds=0.05),  # the fresh one the resume makes
    )
    path = SCHNELL.split(":", 1)[1]
    async with httpx.AsyncClient() as raw:
        made = await raw.post(
            emulator.base_url("replicate") + f"/models/{path}/predictions",
            json={"input": {"prompt": "a lighthouse", "num_outputs": 1}},
            headers={"authorization": f"Bearer {test_keys['replicate']}"},
        )
    pid = made.json()["id"]
    await asyncio.sleep(0.1)  # it ends canceled meanwhile (a lower bound: it only has to have ended)
    async with make_relay(emulator, tmp_path, test_keys, retry={"attempts": 3}) as relay:
        receipt = await relay.generate(
            "a lighthouse", provider=SCHNELL, hooks=RunHooks(resume={SCHNELL: pid})
        )
    assert len(receipt.images) == 1
    assert len(emulator.requests_for("replicate.create")) == 3  # the resumed one, the dead one, the good one
    polls_of_resumed = [r for r in emulator.requests_for("replicate.get") if r.path.endswith(f"/{pid}")]
    assert len(polls_of_resumed) == 1
    assert [a.outcome for a in receipt.attempts] == ["transient", "success"]


async def test_one_requests_disk_work_does_not_stall_the_others(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one request's image is still being written (held here), another request on the same
    relay is served from start to finish: writes happen in worker threads, not on the event loop."""
    import imagerelay.store

    entered, release = threading.Event(), threading.Event()
    order: list[str] = []
    real = imagerelay.store.atomic_write

    def held(path: Path, data: bytes, **kw: Any) -> None:
        if "slow-fox" in path.name and path.suffix == ".jpg":
            entered.set()
            release.wait(30)  # bounded, so an event-loop write fails the order below instead of hanging
            order.append("slow image written")
        real(path, data, **kw)

    monkeypatch.setattr(imagerelay.store, "atomic_write", held)
    async with make_relay(emulator, tmp_path, test_keys) as relay:
        slow = asyncio.create_task(relay.generate("slow fox"))
        await asyncio.to_thread(entered.wait, 30)
        fast = await relay.generate("quick hare")
        order.append("other request done")
        release.set()
        held_back = await slow
    assert order == ["other request done", "slow image written"]
    assert fast.images
    assert held_back.images
    assert probe(Path(held_back.images[0].path).read_bytes()).format == "jpeg"


async def test_a_closed_relay_refuses_to_be_used_again(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """After `aclose()` the relay sends nothing more: `generate`, `open` and `plan` refuse with one
    line saying to make a new relay."""
    relay = make_relay(emulator, tmp_path, test_keys)
    async with relay:
        await relay.generate("a fox")
    sent = len(emulator.requests)
    with pytest.raises(UserError, match="this Relay is closed: make a new one"):
        await relay.generate("another fox")
    with pytest.raises(UserError, match="closed"):
        await relay.open()
    with pytest.raises(UserError, match="closed"):
        relay.plan("a fox")
    assert len(emulator.requests) == sent
