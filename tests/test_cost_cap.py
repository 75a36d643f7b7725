"""A cost cap is never broken: not per request (`--max-cost`, `[budget] max_cost_per_request`),
not per batch. A matrix of requests runs in-process against one emulator with caps placed just
above and just below each estimate and each worst case; the cost recorded never exceeds the cap."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagerelay.batch import run_batch
from imagerelay.emulator import Emulator, Fault
from imagerelay.errors import BudgetExceeded, GenerationFailed
from imagerelay.ledger import Ledger
from imagerelay.manifest import load_manifest
from imagerelay.relay import Relay
from tests.conftest import TEST_KEYS
from tests.images import BLUE, RED, jpeg_bytes, write
from tests.relaykit import emulator_settings

#: Just above / just below: far under a cent, far over float noise.
EPS = 1e-4
SIZES = (None, "1024x1024", "1792x1024")
#: (model, reference counts, n values) — each model with what it can take.
MODELS: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = [
    ("xai:grok-imagine-image", (0, 1, 2), (1, 2)),
    ("xai:grok-imagine-image-2.0", (0, 1, 2), (1, 2)),
    ("openai:gpt-image-2", (0, 1, 2), (1, 2)),
    ("openai:gpt-image-2.6-flare", (0, 1), (1, 2)),
    ("replicate:black-forest-labs/flux-schnell", (0,), (1, 2)),
    ("replicate:black-forest-labs/flux-2-pro", (0, 1, 2), (1, 2)),
    ("replicate:black-forest-labs/flux-kontext-pro", (1,), (1, 2)),
]
CASES = [
    (model, size, refs, n)
    for model, ref_counts, ns in MODELS
    for size, refs, n in itertools.product(SIZES, ref_counts, ns)
]


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    """One emulator for the whole matrix."""
    with Emulator(keys=TEST_KEYS, url_ttl=600, marked=False) as emulator:
        yield emulator
        assert not emulator.errors, emulator.errors


@pytest.fixture(scope="module")
def references(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A landscape and a portrait reference (OpenAI's `auto` follows the first one's shape)."""
    d = tmp_path_factory.mktemp("refs")
    return (
        str(write(d, "landscape.jpg", jpeg_bytes((1280, 800), RED))),
        str(write(d, "portrait.jpg", jpeg_bytes((640, 960), BLUE))),
    )


def _relay(emu: Emulator, out: Path, **overrides: Any) -> Relay:
    settings = emulator_settings(emu, **overrides)
    return Relay(settings, keys=TEST_KEYS, out_dir=out)


async def test_no_request_of_the_matrix_costs_more_than_its_cap(
    emu: Emulator, references: tuple[str, str], tmp_path: Path
) -> None:
    """Every request of the matrix, capped just below and just above its estimate and its worst
    case: none records a cost over its cap; one capped under its worst case sends nothing; one
    capped over its worst case is served."""
    runs = served = refused = 0
    async with _relay(emu, tmp_path / "out") as relay:
        for model, size, ref_count, n in CASES:
            fields: dict[str, Any] = {"provider": model, "n": n, "references": references[:ref_count]}
            if size:
                fields["size"] = size
            plan = relay.plan("a harbour at dawn", **fields)
            [cand] = plan.candidates
            caps = sorted(
                {cand.estimate_usd - EPS, cand.estimate_usd + EPS, cand.worst_usd - EPS, cand.worst_usd + EPS}
            )
            for cap in caps:
                if cap < 0:
                    continue
                runs += 1
                sent_before = _generation_calls(emu)
                try:
                    receipt = await relay.generate("a harbour at dawn", max_cost=cap, **fields)
                except BudgetExceeded:
                    assert cap < cand.worst_usd, (model, size, ref_count, n, cap)
                    assert _generation_calls(emu) == sent_before  # refused before anything was sent
                    refused += 1
                    continue
                except GenerationFailed as exc:  # pragma: no cover - the emulator has no faults here
                    pytest.fail(f"{model} {size} refs={ref_count} n={n}: {exc}")
                cost = receipt.cost_usd + receipt.possibly_billed_usd
                assert cost <= cap + 1e-9, (model, size, ref_count, n, cap, receipt.cost_usd)
                assert cap >= cand.worst_usd
                assert len(receipt.images) == n
                served += 1
    assert runs >= 200
    assert served >= 80
    assert refused >= 80


def _generation_calls(emu: Emulator) -> int:
    return sum(
        r.route in ("xai.generations", "xai.edits", "openai.generations", "openai.edits", "replicate.create")
        for r in emu.requests
    )


async def test_landscape_reference_with_size_auto_is_estimated_at_what_openai_makes(
    emu: Emulator, references: tuple[str, str], tmp_path: Path
) -> None:
    """A landscape reference with size auto: OpenAI answers 1536x1024, and the recorded cost is the
    estimate made before the call (not the 1024x1024 one); a cap under the worst case refuses."""
    fields: dict[str, Any] = {"provider": "openai:gpt-image-2", "references": references[:1]}
    async with _relay(emu, tmp_path / "out") as relay:
        cand = relay.plan("restyle", **fields).candidates[0]
        receipt = await relay.generate("restyle", max_cost=cand.worst_usd, **fields)
        with pytest.raises(BudgetExceeded, match="at most"):
            await relay.generate("restyle", max_cost=cand.worst_usd - EPS, **fields)
    [image] = receipt.images
    assert (image.width, image.height) == (1536, 1024)
    assert receipt.reported_cost_usd == pytest.approx(cand.estimate_usd, abs=1e-6)
    assert cand.estimate_usd < cand.worst_usd


async def test_fallback_is_not_called_when_its_worst_case_would_break_the_cap(
    emu: Emulator, tmp_path: Path
) -> None:
    """After a possibly billed failure, the next model is called only if what may have been billed
    plus its worst case stays under the cap; else the receipt says why it was not called."""
    emu.reset()
    emu.script("xai.generations", Fault(drop=True))  # sent, then cut off: possibly billed
    settings = {"routing": {"text": ["xai:grok-imagine-image", "openai:gpt-image-2"]}}
    async with _relay(emu, tmp_path / "out", **settings) as relay:
        with pytest.raises(GenerationFailed) as info:
            await relay.generate("a fox", max_cost=0.09)
    receipt = info.value.receipt
    assert receipt is not None
    assert receipt.possibly_billed_usd == pytest.approx(0.02)
    assert any("openai:gpt-image-2 not called" in n and "$0.0900 cap" in n for n in receipt.notes)
    assert emu.requests_for("openai.generations") == []


async def test_batch_spends_no_more_than_its_budget_even_with_fallbacks(
    emu: Emulator, tmp_path: Path
) -> None:
    """Twelve items, four at a time, whose first model fails now and then so a dearer one serves
    them: the batch's spend stays within its budget, set just above and just below the sum."""
    emu.reset()
    routing = {
        "text": ["xai:grok-imagine-image", "openai:gpt-image-2", "replicate:black-forest-labs/flux-2-pro"]
    }
    for budget in (0.15, 0.1501, 0.2399, 0.24, 0.5):
        emu.reset()
        emu.script("xai.generations", Fault(status=500, times=2), Fault(status=403))
        out = tmp_path / f"out-{budget}"
        path = tmp_path / f"batch-{budget}.jsonl"
        path.write_text("".join(json.dumps({"prompt": f"item {i}"}) + "\n" for i in range(12)))
        relay = _relay(emu, out, routing=routing, retry={"attempts": 1})
        with Ledger.open(out) as ledger:
            relay.on_receipt.append(ledger.record_receipt)
            async with relay:
                summary = await run_batch(load_manifest(path), relay, ledger, concurrency=4, max_cost=budget)
            spent = ledger.batch_spent(load_manifest(path).name)
        assert spent <= budget + 1e-9, (budget, spent, summary.to_dict())
        assert summary.spent_usd == pytest.approx(spent)
        assert summary.done >= 1
