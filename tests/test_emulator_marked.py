"""Images made by the imagerelay emulator (`imagerelay emulator serve` behind base-URL variables)
are sandbox output in any environment: $0, what they would cost beside it, never real work done."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagerelay.emulator import Emulator
from tests.clikit import run_cli


def test_generate_against_the_standalone_emulator_is_booked_as_sandbox(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real environment pointed at a marking emulator: the receipt says sandbox, $0, the would-be
    cost beside it and a note; the ledger's history counts nothing as spent."""
    cli_emulator.marked = True  # as `imagerelay emulator serve` answers
    code, out, err = run_cli(capsys, monkeypatch, "generate", "a fox", "-p", "xai", "--out", "o", "--json")
    assert code == 0, err
    receipt = json.loads(out)
    assert (receipt["sandbox"], receipt["cost_usd"]) == (True, 0.0)
    assert receipt["would_cost_usd"] == pytest.approx(0.02)
    assert any("imagerelay emulator" in note for note in receipt["notes"])
    code, out, err = run_cli(capsys, monkeypatch, "history", "--out", "o", "--json")
    assert code == 0, err
    history = json.loads(out)
    rows = history["generations"] if isinstance(history, dict) else history
    assert [(r["cost_usd"], r.get("sandbox")) for r in rows] == [(0.0, True)]


def test_a_batch_made_by_the_emulator_never_satisfies_the_real_batch(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The same batch into the same --out, first answered by a marking emulator, then by the real
    API: the first run spends $0 (would-be spend reported), the second makes every item for real
    instead of calling them already done, and the first run's spend counts against nothing."""
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        "".join(json.dumps({"prompt": f"item {i}", "provider": "xai"}) + "\n" for i in range(2))
    )
    cli_emulator.marked = True
    code, out, err = run_cli(capsys, monkeypatch, "batch", str(manifest), "--out", "b", "--json")
    assert code == 0, err
    first = json.loads(out)
    assert (first["done"], first["spent_usd"], first["sandbox"]) == (2, 0.0, True)
    assert first["would_spend_usd"] == pytest.approx(0.04)

    cli_emulator.marked = False  # the real API now
    code, out, err = run_cli(capsys, monkeypatch, "batch", str(manifest), "--out", "b", "--json",
                             "--max-cost", "0.04")  # fmt: skip
    assert code == 0, err
    second = json.loads(out)
    assert (second["done"], second["skipped"]) == (2, 0)
    assert second["spent_usd"] == pytest.approx(0.04)
    assert second["batch_spent_usd"] == pytest.approx(0.04)
    assert "sandbox" not in second
    assert len(cli_emulator.requests_for("xai.generations")) == 4
