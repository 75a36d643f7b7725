"""The library's front door: imagerelay.generate() for scripts, agenerate() for async code."""

from __future__ import annotations

import gc
import json
import warnings
from pathlib import Path

import pytest

import imagerelay
from imagerelay.imaging import probe
from imagerelay.ledger import Ledger
from tests.clikit import run_cli


def test_generate_is_a_plain_function_for_scripts(tmp_path: Path) -> None:
    """imagerelay.generate() runs its own loop and returns a receipt whose images are on disk."""
    receipt = imagerelay.generate("a red fox", env="sandbox", out_dir=tmp_path, n=2, aspect_ratio="16:9")
    assert isinstance(receipt, imagerelay.Receipt)
    assert len(receipt.images) == 2
    for image in receipt.images:
        assert Path(image.path).parent == tmp_path
        assert probe(Path(image.path).read_bytes()).width == image.width
    assert receipt.images[0].width > receipt.images[0].height


async def test_agenerate_runs_inside_an_event_loop(tmp_path: Path) -> None:
    """await imagerelay.agenerate() works from async code and honours a pinned provider."""
    receipt = await imagerelay.agenerate(
        "a red fox", env="sandbox", out_dir=tmp_path, provider="replicate:black-forest-labs/flux-schnell"
    )
    assert receipt.provider == "replicate"
    assert Path(receipt.images[0].path).is_file()


def test_generate_records_into_the_output_directorys_ledger(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """imagerelay.generate() adds its generation to DIR's ledger, so `imagerelay history` lists it."""
    receipt = imagerelay.generate("a red fox", env="sandbox", out_dir=tmp_path, n=2)
    code, out, err = run_cli(capsys, monkeypatch, "history", "--out", str(tmp_path), "--json")
    assert code == 0, err
    [row] = json.loads(out)["generations"]
    assert (row["receipt_id"], row["images"]) == (receipt.id, 2)


async def test_relay_records_every_receipt_in_the_ledger(tmp_path: Path) -> None:
    """A Relay used from async code records each receipt in its output directory's ledger."""
    async with imagerelay.Relay(env="sandbox", out_dir=tmp_path) as relay:
        first = await relay.generate("a red fox")
        second = await relay.generate("a grey wolf")
    with Ledger.open(tmp_path, create=False) as ledger:
        assert sorted(g.receipt_id for g in ledger.generations()) == sorted([first.id, second.id])


async def test_generate_inside_a_running_loop_says_to_await_agenerate(tmp_path: Path) -> None:
    """generate() called from a running event loop raises UserError naming agenerate, leaving no
    un-awaited coroutine behind and nothing written."""
    gc.collect()  # what earlier tests left behind is not this test's business
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(imagerelay.UserError) as info:
            imagerelay.generate("a red fox", env="sandbox", out_dir=tmp_path)
        gc.collect()
    assert "await imagerelay.agenerate(" in str(info.value)
    assert "running event loop" in str(info.value)
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
    assert list(tmp_path.iterdir()) == []
