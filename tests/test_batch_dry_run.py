"""`imagerelay batch MANIFEST --dry-run`: every item planned, the batch's total and what its budget
lets through, items already done counted as $0 — nothing sent to the emulator, nothing written."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from imagerelay.emulator import Emulator
from tests.clikit import run_cli

GROK = "xai:grok-imagine-image"  # $0.02 an image, the development environment's first text model


def jsonl(path: Path, *items: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    return path


def dry_run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, dict[str, Any]]:
    code, out, err = run_cli(capsys, monkeypatch, "batch", *args, "--dry-run", "--json")
    assert err == "", err
    return code, json.loads(out)


def snapshot(directory: Path) -> dict[str, tuple[int, str]]:
    """Every file under `directory`: its mtime and a hash of its bytes."""
    return {
        str(p.relative_to(directory)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def three(tmp_path: Path, **first: Any) -> Path:
    return jsonl(
        tmp_path / "m.jsonl",
        {"prompt": "a fox", "name": "fox", **first},
        {"prompt": "a cat", "name": "cat"},
        {"prompt": "a dog", "name": "dog"},
    )


def test_dry_run_plans_every_item_applies_the_budget_and_sends_nothing(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Each item gets its first model and worst case, the batch a total, and the $0.05 budget lets
    two $0.02 items through and refuses the third (exit 3, as the batch would end); the emulator
    saw no request and the output directory was not even created."""
    path = three(tmp_path)
    code, estimate = dry_run(capsys, monkeypatch, str(path), "--out", "out", "--max-cost", "0.05")
    assert code == estimate["exit_code"] == 3
    assert [(i["item"], i["model"], i["state"]) for i in estimate["items"]] == [
        ("fox", GROK, "fits"),
        ("cat", GROK, "fits"),
        ("dog", GROK, "refused"),
    ]
    assert [i["worst_usd"] for i in estimate["items"]] == [0.02, 0.02, 0.02]
    assert all(i["fallback_worst_usd"] >= i["worst_usd"] for i in estimate["items"])
    assert (estimate["worst_usd"], estimate["fits_worst_usd"], estimate["budget_usd"]) == (0.06, 0.04, 0.05)
    assert estimate["refused"] == ["dog"]
    assert cli_emulator.requests == []
    assert not (tmp_path / "out").exists()

    code, out, _ = run_cli(
        capsys, monkeypatch, "batch", str(path), "--out", "out", "--dry-run", "--max-cost", "0.05"
    )
    assert code == 3
    lines = out.splitlines()
    assert lines[0] == f"batch plan for {path} into out: 3 item(s) — nothing will be sent"
    assert lines[1].startswith(f"  1. fox  {GROK}  n=1  ~$0.0200")
    assert lines[3].endswith("REFUSED by the batch budget")
    assert "total for 3 item(s) to make: ~$0.0600, at worst $0.0600" in out
    assert "batch budget $0.0500: 2 item(s) fit at their worst case ($0.0400)" in out
    assert "the batch stops before 'dog'" in out
    code, estimate = dry_run(capsys, monkeypatch, str(path), "--out", "out")
    # Without --max-cost, [budget] max_cost_per_batch applies; it holds all three.
    assert (code, estimate["counts"]) == (0, {"done": 0, "fits": 3, "refused": 0})
    assert cli_emulator.requests == []


def test_dry_run_counts_items_already_done_as_free_and_the_batch_agrees(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """After a run that made one item, the dry run counts it as done ($0) and what it spent
    against the budget, leaves every file of the output directory as it was (ledger included),
    and the real batch then starts exactly the items the dry run let through."""
    path = three(tmp_path)
    code, _, err = run_cli(capsys, monkeypatch, "batch", str(path), "--out", "out", "--max-cost", "0.02")
    assert code == 3, err
    before, sent = snapshot(tmp_path / "out"), len(cli_emulator.requests)

    code, estimate = dry_run(capsys, monkeypatch, str(path), "--out", "out", "--max-cost", "0.05")
    assert [(i["item"], i["state"]) for i in estimate["items"]] == [
        ("fox", "done"),
        ("cat", "fits"),
        ("dog", "refused"),
    ]
    assert estimate["items"][0]["worst_usd"] == 0
    assert (estimate["spent_before_usd"], estimate["worst_usd"], code) == (0.02, 0.04, 3)
    assert snapshot(tmp_path / "out") == before
    assert len(cli_emulator.requests) == sent

    code, out, err = run_cli(
        capsys, monkeypatch, "batch", str(path), "--out", "out", "--max-cost", "0.05", "--json"
    )
    summary = json.loads(out)
    assert (code, summary["done"], summary["skipped"], summary["remaining"]) == (3, 1, 1, 1)


def test_more_images_of_a_done_item_are_planned_for_the_rest_only(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """An item made with n=1 and now asked for n=3 is planned for the 2 missing images, and says so."""
    path = jsonl(tmp_path / "m.jsonl", {"prompt": "a fox", "name": "fox"})
    assert run_cli(capsys, monkeypatch, "batch", str(path), "--out", "out")[0] == 0
    jsonl(path, {"prompt": "a fox", "name": "fox", "n": 3})
    code, estimate = dry_run(capsys, monkeypatch, str(path), "--out", "out")
    [item] = estimate["items"]
    assert (code, item["state"], item["n"], item["worst_usd"]) == (0, "fits", 2, 0.04)
    assert item["notes"] == ["1 of 3 image(s) already saved: asks for 2"]


@pytest.mark.parametrize(
    ("setup", "args", "expected"),
    [
        ("typo", ["m.jsonl"], "line 1: unknown field 'refrences'"),
        ("broken", ["b.jsonl"], "line 2: not valid JSON"),
        ("file", ["m.jsonl", "--out", "taken"], "output path 'taken' is a file"),
        ("file", ["m.jsonl", "--out", "taken/sub"], "is not writable (Not a directory)"),
    ],
)
def test_dry_run_refuses_what_the_batch_refuses_the_same_way(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    setup: str,
    args: list[str],
    expected: str,
) -> None:
    """A bad manifest or --out is the batch's own one-line error and exit 2, with --dry-run or
    without, and nothing is sent."""
    jsonl(tmp_path / "m.jsonl", {"prompt": "a"} if setup != "typo" else {"prompt": "a", "refrences": ["x"]})
    (tmp_path / "b.jsonl").write_text('{"prompt": "a"}\n{"prompt": "b"\n')
    (tmp_path / "taken").write_text("not a directory")
    results = [run_cli(capsys, monkeypatch, "batch", *args, *extra) for extra in ((), ("--dry-run",))]
    assert results[0] == results[1]
    code, out, err = results[1]
    assert (code, out) == (2, "")
    assert expected in err
    assert len(err.strip().splitlines()) == 1
    assert cli_emulator.requests == []
