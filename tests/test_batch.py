"""Batches end to end against the emulator: faults, budget, resume after a kill, shared rate limits."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
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

from imagerelay.batch import BatchSummary, PlainProgress, run_batch
from imagerelay.emulator import Emulator, Fault
from imagerelay.imaging import probe
from imagerelay.ledger import LEDGER_NAME, Ledger
from imagerelay.manifest import Manifest, load_manifest
from imagerelay.relay import Relay
from tests.clikit import run_cli
from tests.keys import ALL_KEY_VARS, outside_setting
from tests.relaykit import emulator_settings

IMAGE_SUFFIXES = {".jpg", ".png", ".webp", ".gif"}


def jsonl(path: Path, *items: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(i) + "\n" for i in items), encoding="utf-8")
    return path


def relay_for(emulator: Emulator, out: Path, keys: dict[str, str], **overrides: Any) -> Relay:
    """A Relay on the emulator writing into `out`; `overrides` go to the settings."""
    return Relay(emulator_settings(emulator, **overrides), keys=keys, out_dir=out, record=False)


async def run(
    manifest: Manifest, relay: Relay, out: Path, **kwargs: Any
) -> tuple[BatchSummary, dict[str, int], float]:
    """Run a batch; returns the summary, the ledger's items by state and its batch spend."""
    with Ledger.open(out) as ledger:
        relay.on_receipt.append(ledger.record_receipt)
        async with relay:
            summary = await run_batch(manifest, relay, ledger, **kwargs)
        return summary, ledger.batch_counts(manifest.name), ledger.batch_spent(manifest.name)


def image_files(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if p.suffix in IMAGE_SUFFIXES and not p.name.startswith("."))


def prompts_sent(emulator: Emulator, start: int = 0) -> list[str]:
    return [r.json["prompt"] for r in emulator.requests[start:] if r.route == "xai.generations" and r.json]


async def test_thirty_items_with_faults_end_done_or_failed_for_a_reason(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """30 items through 429s, a 503 streak and a content block: each ends done or failed with its
    reason, and the summary matches the ledger."""
    emulator.script(
        "xai.generations",
        Fault(status=429, headers={"retry-after": "0.05"}, times=2),
        Fault(status=503, times=3),
        Fault(blocked=True),
        Fault(status=429, headers={"retry-after": "0.05"}),
    )
    items = [{"prompt": f"item {i:02}", "n": 1 + (i % 3 == 0), "name": f"post-{i:02}"} for i in range(30)]
    manifest = load_manifest(jsonl(tmp_path / "week.jsonl", *items))
    out = tmp_path / "out"
    relay = relay_for(
        emulator, out, {"xai": test_keys["xai"]}, retry={"attempts": 8}
    )  # more than all the transient faults together
    summary, counts, spent = await run(manifest, relay, out, concurrency=4)

    assert (summary.items, summary.done, summary.failed, summary.remaining) == (30, 29, 1, 0)
    assert counts == {"done": 29, "failed": 1}
    assert summary.spent_usd == pytest.approx(spent)
    assert summary.exit_code == 3  # partial: some items done, not all
    [failure] = summary.failures
    assert "content_blocked" in failure["error"]
    with sqlite3.connect(out / LEDGER_NAME) as db:
        failed = db.execute("SELECT name, error FROM items WHERE state = 'failed'").fetchall()
        per_item = dict(db.execute("SELECT i.name, COUNT(m.path) FROM items i LEFT JOIN images m "
                                   "ON m.item_key = i.key GROUP BY i.key").fetchall())  # fmt: skip
    assert failed == [(failure["item"], failure["error"])]
    wanted = {f"post-{i:02}": 1 + (i % 3 == 0) for i in range(30)}
    assert per_item == {name: (0 if name == failure["item"] else n) for name, n in wanted.items()}
    files = image_files(out)
    assert len(files) == sum(per_item.values()) == len(summary.saved)
    assert all(probe(f.read_bytes()).width > 0 for f in files)
    assert all(f.with_suffix(".json").is_file() for f in files)
    assert all("-post-" in f.name for f in files)  # the item's name, not its prompt, names the file
    assert spent == pytest.approx(0.02 * len(files))


async def test_rerun_skips_done_items_and_asks_only_for_missing_images(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """A rerun sends nothing for done items; an item whose n grew asks only for the extra images."""
    out = tmp_path / "out"
    path = jsonl(tmp_path / "m.jsonl", {"prompt": "a"}, {"prompt": "b"})
    first, _, _ = await run(load_manifest(path), relay_for(emulator, out, test_keys), out)
    assert (first.done, first.skipped) == (2, 0)
    again, _, _ = await run(load_manifest(path), relay_for(emulator, out, test_keys), out)
    assert (again.done, again.skipped, again.spent_usd) == (0, 2, 0)
    assert prompts_sent(emulator) == ["a", "b"] or prompts_sent(emulator) == ["b", "a"]

    jsonl(path, {"prompt": "a", "n": 3}, {"prompt": "b"})
    grown, counts, _ = await run(load_manifest(path), relay_for(emulator, out, test_keys), out)
    assert (grown.done, grown.skipped) == (1, 1)
    assert counts == {"done": 2}
    last = emulator.requests_for("xai.generations")[-1].json
    assert (last["prompt"], last["n"]) == ("a", 2)
    assert len(image_files(out)) == 4


async def test_budget_stops_starting_items_and_counts_earlier_runs(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """With a $0.07 budget and $0.02 items, three run; the rest remain, and a rerun with the same
    budget starts none (earlier runs count) until the budget is raised."""
    out = tmp_path / "out"
    path = jsonl(tmp_path / "m.jsonl", *({"prompt": f"p{i}"} for i in range(8)))
    summary, counts, spent = await run(
        load_manifest(path), relay_for(emulator, out, test_keys), out, concurrency=4, max_cost=0.07
    )
    assert (summary.done, summary.remaining, summary.exit_code) == (3, 5, 3)
    assert spent == pytest.approx(0.06)
    assert summary.stopped is not None
    assert "$0.07 batch budget" in summary.stopped
    # Said after the three running items finished: the batch's final spend, not $0 at the stop.
    assert "$0.0600 spent on this batch" in summary.stopped
    assert summary.batch_spent_usd == pytest.approx(0.06)
    assert "5 item(s) not started" in summary.stopped
    assert counts == {"done": 3, "pending": 5}
    assert len(emulator.requests_for("xai.generations")) == 3

    again, _, _ = await run(load_manifest(path), relay_for(emulator, out, test_keys), out, max_cost=0.07)
    assert (again.done, again.skipped, again.remaining) == (0, 3, 5)
    assert len(emulator.requests_for("xai.generations")) == 3

    raised, counts, spent = await run(
        load_manifest(path), relay_for(emulator, out, test_keys), out, max_cost=1
    )
    assert (raised.done, raised.skipped, raised.exit_code) == (5, 3, 0)
    assert spent == pytest.approx(0.16)
    assert len(emulator.requests_for("xai.generations")) == 8


async def test_one_relay_paces_every_item_and_a_429_slows_them_all(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """Items running at once share the provider's pace (600/min: 0.1 s apart), and a 429 asking for
    0.4 s holds back the other items too, not only the throttled one."""
    emulator.script("xai.generations", Fault(status=429, headers={"retry-after": "0.4"}))
    out = tmp_path / "out"
    path = jsonl(tmp_path / "m.jsonl", *({"prompt": f"p{i}"} for i in range(5)))
    relay = relay_for(emulator, out, test_keys, providers={"xai": {"max_requests_per_minute": 600}})
    summary, _, _ = await run(load_manifest(path), relay, out, concurrency=2)
    assert summary.done == 5
    log = emulator.requests_for("xai.generations")
    assert [r.status for r in log] == [429, 200, 200, 200, 200, 200]
    times = [r.at for r in log]
    # Arrival times at the emulator: a loaded machine delays one arrival more than the next, so
    # the gap is checked against half the 0.1 s slot (unpaced, two items arrive ~1 ms apart).
    assert min(b - a for a, b in itertools.pairwise(times)) >= 0.05
    # Every request after the 429 waited out its 0.4 s, even the item whose slot was granted
    # before the 429 arrived, and the held-back items then resumed one slot apart.
    assert times[1] - times[0] >= 0.39
    assert {r.json["prompt"] for r in log[1:]} == {"p0", "p1", "p2", "p3", "p4"}


async def test_resume_reattaches_to_a_running_replicate_prediction(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """A batch interrupted while a Replicate prediction runs re-attaches to it by id when run
    again: one create in total, and its output is the item's image."""
    emulator.script("replicate.create", Fault(prediction="slow", seconds=1.6))
    out = tmp_path / "out"
    path = jsonl(
        tmp_path / "m.jsonl", {"prompt": "a fox", "provider": "replicate:black-forest-labs/flux-schnell"}
    )
    manifest = load_manifest(path)
    settings: dict[str, Any] = {"providers": {"replicate": {"poll_interval": 0.05}}}

    with Ledger.open(out) as ledger:
        relay = relay_for(emulator, out, test_keys, **settings)
        async with relay:
            task = asyncio.create_task(run_batch(manifest, relay, ledger))
            key = manifest.items[0].key
            for _ in range(200):
                if ledger.resumable_predictions(key):
                    break
                await asyncio.sleep(0.02)
            [(model, pid)] = ledger.resumable_predictions(key).items()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert ledger.batch_counts(manifest.name) == {"pending": 1}

    summary, counts, _ = await run(manifest, relay_for(emulator, out, test_keys, **settings), out)
    assert summary.done == 1
    assert counts == {"done": 1}
    assert model == "replicate:black-forest-labs/flux-schnell"
    assert len(emulator.requests_for("replicate.create")) == 1
    assert any(r.path.endswith(pid) for r in emulator.requests_for("replicate.get"))
    [image] = image_files(out)
    receipt = json.loads(image.with_suffix(".json").read_text())
    assert receipt["attempts"][-1]["prediction_id"] == pid
    with Ledger.open(out) as ledger:
        assert ledger.resumable_predictions(manifest.items[0].key) == {}


def test_sigkill_mid_batch_then_rerun_loses_nothing_and_pays_nothing_twice(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """SIGKILL mid-batch, then the same command: every item ends with its images, every image
    decodes, and no item whose image was already saved is sent to the provider again."""
    emulator.latency = 0.25
    path = jsonl(tmp_path / "m.jsonl", *({"prompt": f"item {i:02}"} for i in range(14)))
    out = tmp_path / "out"
    (tmp_path / "config").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ALL_KEY_VARS and not outside_setting(k)}
    env.update(
        XAI_API_KEY=test_keys["xai"],
        IMAGERELAY_CONFIG_DIR=str(tmp_path / "config"),
        IMAGERELAY_PROVIDERS__XAI__BASE_URL=emulator.base_url("xai"),
        IMAGERELAY_PROVIDERS__XAI__MAX_REQUESTS_PER_MINUTE="6000",
    )
    command = [
        sys.executable,
        "-m",
        "imagerelay.cli",
        "batch",
        str(path),
        "--out",
        str(out),
        "-c",
        "3",
        "--json",
    ]
    first = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        saved = 0
        while saved < 4 and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.03)
            if (out / LEDGER_NAME).is_file():
                with contextlib.suppress(sqlite3.OperationalError), sqlite3.connect(out / LEDGER_NAME) as db:
                    saved = db.execute("SELECT COUNT(*) FROM images").fetchone()[0]  # none yet: no table
        assert first.poll() is None, "the batch finished before it could be killed"
        os.kill(first.pid, signal.SIGKILL)
    finally:
        first.kill()
        first.wait()
    sent_before_kill = len(emulator.requests)
    on_disk_at_kill = {p.name for p in image_files(out)}
    assert 4 <= len(on_disk_at_kill) < 14

    second = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["done"] + summary["skipped"] == 14
    assert summary["skipped"] >= len(on_disk_at_kill)

    with sqlite3.connect(out / LEDGER_NAME) as db:
        states = db.execute("SELECT state, COUNT(*) FROM items GROUP BY state").fetchall()
        rows = db.execute(
            "SELECT i.prompt, m.path FROM items i JOIN images m ON m.item_key = i.key"
        ).fetchall()
    assert states == [("done", 14)]
    by_prompt = dict(rows)
    assert sorted(by_prompt) == [f"item {i:02}" for i in range(14)]
    assert len(rows) == 14  # one image per item, none twice
    files = image_files(out)
    assert sorted(f.name for f in files) == sorted(by_prompt.values())
    assert all(probe(f.read_bytes()).width > 0 for f in files)
    delivered = {prompt for prompt, name in by_prompt.items() if name in on_disk_at_kill}
    assert len(delivered) == len(on_disk_at_kill)
    assert not delivered & set(prompts_sent(emulator, sent_before_kill))
    leftovers = [p for p in out.iterdir() if p.name.startswith(".tmp-")]
    assert not {p.name for p in leftovers} & set(by_prompt.values())


# ---- the command line ---------------------------------------------------------------------------


def test_cli_json_summary_plain_progress_and_exit_codes(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """--json prints one summary object with the saved paths; progress goes to stderr as plain
    lines; one failed item of two exits 3 (partial) and a rerun that finishes it exits 0."""
    cli_emulator.script("xai.generations", Fault(blocked=True))
    path = jsonl(tmp_path / "m.jsonl", {"prompt": "first", "name": "one"}, {"prompt": "second"})
    code, out, err = run_cli(capsys, monkeypatch, "batch", str(path), "--out", "out", "-c", "1", "--json")
    summary = json.loads(out)
    assert code == summary["exit_code"] == 3
    [saved] = summary["saved"]
    assert Path(saved).is_file()
    assert Path(saved).with_suffix(".json").is_file()
    assert {k: summary[k] for k in ("items", "done", "failed", "skipped", "remaining")} == {
        "items": 2, "done": 1, "failed": 1, "skipped": 0, "remaining": 0,
    }  # fmt: skip
    assert summary["failures"][0]["item"] == "one"
    assert summary["spent_usd"] == pytest.approx(0.02)
    assert summary["ledger"] == str(Path("out") / LEDGER_NAME)
    assert "[1/2] failed one:" in err
    assert "[2/2] done   second" in err
    assert "Traceback" not in err

    code, out, err = run_cli(capsys, monkeypatch, "batch", str(path), "--out", "out")
    assert code == 0
    assert "1 done, 1 already done, 0 failed" in err
    assert [Path(line).suffix for line in out.split()] == [".jpg"]


def test_cli_batch_where_nothing_was_made_exits_1(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Every item failed and none was done before: exit 1 (not the partial 3), and the JSON agrees."""
    cli_emulator.script("xai.generations", Fault(blocked=True, times=None))
    path = jsonl(tmp_path / "m.jsonl", {"prompt": "first"}, {"prompt": "second"})
    code, out, err = run_cli(capsys, monkeypatch, "batch", str(path), "--out", "out", "--json")
    summary = json.loads(out)
    assert code == summary["exit_code"] == 1, err
    assert (summary["done"], summary["failed"], summary["saved"]) == (0, 2, [])


@pytest.mark.parametrize(
    ("setup", "args", "expected"),
    [
        (None, ["missing.toml"], "manifest 'missing.toml' not found"),
        ("broken", ["m.toml"], "is not valid TOML"),
        ("broken", ["b.jsonl"], "line 2: not valid JSON (Expecting ',' delimiter at column 15)"),
        ("broken", ["b.csv"], "line 2: the prompt is missing"),
        ("file", ["m.jsonl", "--out", "taken"], "output path 'taken' is a file"),
        ("file", ["m.jsonl", "--out", "taken/sub"], "is not writable"),
        (None, ["m.jsonl", "--concurrency", "0"], "--concurrency"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    setup: str | None,
    args: list[str],
    expected: str,
) -> None:
    """A missing or broken manifest (TOML, JSON Lines, CSV), or an --out that is a file or cannot be
    made, is one line naming the problem, exit 2, and nothing is sent."""
    jsonl(tmp_path / "m.jsonl", {"prompt": "a"})
    if setup == "broken":
        (tmp_path / "m.toml").write_text("[[items]\n")
        (tmp_path / "b.jsonl").write_text('{"prompt": "a"}\n{"prompt": "b"\n')
        (tmp_path / "b.csv").write_text("prompt,n\n,2\n")
    if setup == "file":
        (tmp_path / "taken").write_text("not a directory")
    code, out, err = run_cli(capsys, monkeypatch, "batch", *args)
    assert code == 2
    assert out == ""
    assert expected in err
    assert len(err.strip().splitlines()) == 1
    assert cli_emulator.requests == []


def test_plain_progress_lines() -> None:
    """Without a terminal, each finished item is one line with the count, the state and the spend."""
    import io

    from imagerelay.batch import ItemOutcome
    from imagerelay.manifest import ManifestItem
    from imagerelay.request import ImageRequest

    stream = io.StringIO()
    progress = PlainProgress(stream)
    item = ManifestItem(position=1, where="line 1", key="k", request=ImageRequest(prompt="a fox"), name="fox")
    progress.start(3, 1, 0.02)
    progress.item_finished(ItemOutcome(item, "done", ("fox.jpg",), 0.02), 0.04)
    progress.item_finished(ItemOutcome(item, "failed", error="content blocked"), 0.04)
    assert stream.getvalue().splitlines() == [
        "batch: 1 of 3 item(s) already done ($0.0200 spent); running the rest",
        "[2/3] done   fox (1 image(s), $0.0200; spent $0.0400)",
        "[3/3] failed fox: content blocked",
    ]


def test_a_renamed_or_copied_manifest_resumes_and_pays_nothing_again(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The same items under a renamed or copied manifest, into the same --out, are already done:
    nothing is sent, and the batch's spend so far carries over."""
    path = jsonl(tmp_path / "week48.jsonl", {"prompt": "first", "name": "one"}, {"prompt": "second"})
    code, _, err = run_cli(capsys, monkeypatch, "batch", str(path), "--out", "out", "--json")
    assert code == 0, err
    sent = len(cli_emulator.requests)
    renamed = path.rename(tmp_path / "week48-final.jsonl")
    (tmp_path / "copies").mkdir()
    copied = tmp_path / "copies" / "week48.jsonl"
    copied.write_bytes(renamed.read_bytes())
    for manifest in (renamed, copied):
        code, out, err = run_cli(capsys, monkeypatch, "batch", str(manifest), "--out", "out", "--json")
        assert code == 0, err
        summary = json.loads(out)
        assert (summary["done"], summary["skipped"], summary["spent_usd"]) == (0, 2, 0)
        assert summary["batch_spent_usd"] == pytest.approx(0.04)
    assert len(cli_emulator.requests) == sent


def test_items_recorded_under_the_older_path_dependent_key_are_carried_over(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A ledger written when item keys included the manifest's file name still knows its items:
    upgrading never pays for them again."""
    path = jsonl(tmp_path / "week48.jsonl", {"prompt": "first", "name": "one"}, {"prompt": "second"})
    code, _, err = run_cli(capsys, monkeypatch, "batch", str(path), "--out", "out")
    assert code == 0, err
    sent = len(cli_emulator.requests)
    items = load_manifest(path).items
    with sqlite3.connect(tmp_path / "out" / LEDGER_NAME) as db:  # as the older version left it
        for item in items:
            assert item.legacy_key not in (None, item.key)
            db.execute("UPDATE items SET key = ? WHERE key = ?", (item.legacy_key, item.key))
            for table in ("images", "runs", "predictions", "generations"):
                db.execute(f"UPDATE {table} SET item_key = ? WHERE item_key = ?", (item.legacy_key, item.key))
    code, _, err = run_cli(capsys, monkeypatch, "batch", str(path), "--out", "out")
    assert code == 0, err
    assert "0 done, 2 already done" in err
    assert len(cli_emulator.requests) == sent


def test_sandbox_images_never_stand_for_real_ones_and_cost_nothing(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A sandbox batch spends $0 (the would-be figure beside it); the same batch for real into the
    same --out makes every item, under a budget the sandbox's would-be spend would have broken;
    and real images never stand for sandbox ones either."""
    path = jsonl(tmp_path / "week48.jsonl", {"prompt": "first", "name": "one"}, {"prompt": "second"})
    code, out, err = run_cli(capsys, monkeypatch, "batch", str(path), "--out", "week48", "--env", "sandbox",
                             "--json")  # fmt: skip
    assert code == 0, err
    sandbox = json.loads(out)
    assert (sandbox["done"], sandbox["spent_usd"], sandbox["batch_spent_usd"]) == (2, 0, 0)
    assert sandbox["sandbox"] is True
    assert sandbox["would_spend_usd"] == pytest.approx(0.04)
    assert "$0 (sandbox), would be $0.0200" in err
    assert cli_emulator.requests == []  # the sandbox ran its own emulator

    code, out, err = run_cli(capsys, monkeypatch, "batch", str(path), "--out", "week48", "--max-cost", "0.04",
                             "--json")  # fmt: skip
    assert code == 0, err
    real = json.loads(out)
    assert (real["done"], real["skipped"]) == (2, 0)
    assert real["spent_usd"] == real["batch_spent_usd"] == pytest.approx(0.04)
    assert "sandbox" not in real
    assert len(cli_emulator.requests_for("xai.generations")) == 2
    with sqlite3.connect(tmp_path / "week48" / LEDGER_NAME) as db:
        real_images = db.execute(
            "SELECT m.path FROM images m JOIN items i ON i.key = m.item_key WHERE i.key NOT LIKE 'sandbox:%'"
        ).fetchall()
    assert len(real_images) == 2
    for (image,) in real_images:
        assert json.loads((tmp_path / "week48" / image).with_suffix(".json").read_text())["sandbox"] is False

    code, out, err = run_cli(capsys, monkeypatch, "history", "--out", "week48", "--json")
    listed = json.loads(out)
    assert listed["total_usd"] == pytest.approx(0.04)
    assert sorted(g.get("sandbox", False) for g in listed["generations"]) == [False, False, True, True]

    other = tmp_path / "other"
    code, _, err = run_cli(capsys, monkeypatch, "batch", str(path), "--out", str(other))
    assert code == 0, err
    code, out, err = run_cli(capsys, monkeypatch, "batch", str(path), "--out", str(other), "--env", "sandbox",
                             "--json")  # fmt: skip
    assert code == 0, err
    assert (json.loads(out)["done"], json.loads(out)["skipped"]) == (2, 0)


def test_sandbox_generate_says_it_cost_nothing_and_what_it_would_have_cost(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`generate --env sandbox` reports "$0 (sandbox; would be $…)"; its receipt and ledger row cost 0."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, monkeypatch, "generate", "a fox", "--env", "sandbox", "--out", "o",
                           "--provider", "xai")  # fmt: skip
    assert code == 0, err
    assert "cost $0 (sandbox; would be $0.0200)" in err
    [receipt_path] = (tmp_path / "o").glob("*.json")
    receipt = json.loads(receipt_path.read_text())
    assert (receipt["cost_usd"], receipt["sandbox"], receipt["would_cost_usd"]) == (0, True, 0.02)
    code, out, _ = run_cli(capsys, monkeypatch, "history", "--out", "o")
    assert "$0 (sandbox)" in out
    assert "$0.0000 in all" in out


def test_sandbox_batch_is_not_paced_at_the_real_rate_limits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sandbox batch never waits for a rate-limit slot: the real APIs' limits are not the emulator's."""
    monkeypatch.chdir(tmp_path)
    path = jsonl(tmp_path / "m.jsonl", *({"prompt": f"item {i:02}"} for i in range(12)))
    out = tmp_path / "out"
    code, stdout, err = run_cli(
        capsys, monkeypatch, "batch", str(path), "--env", "sandbox", "--out", str(out), "-c", "6", "--json"
    )
    assert code == 0, err
    assert json.loads(stdout)["done"] == 12
    receipts = [json.loads(p.read_text()) for p in out.glob("*.json")]
    waits = [a["wait_s"] for r in receipts for a in r["attempts"]]
    assert len(waits) == 12
    assert waits == [0.0] * 12


def test_sandbox_rate_limit_applies_when_configured(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A max_requests_per_minute set for the sandbox (here by a variable) paces it as configured."""
    from imagerelay.settings import load_settings

    monkeypatch.chdir(tmp_path)
    assert load_settings("sandbox").provider("xai").max_requests_per_minute is None
    assert load_settings("development").provider("xai").max_requests_per_minute == 60
    (tmp_path / "imagerelay.sandbox.toml").write_text("[providers.openai]\nmax_requests_per_minute = 30\n")
    monkeypatch.setenv("IMAGERELAY_PROVIDERS__XAI__MAX_REQUESTS_PER_MINUTE", "300")
    settings = load_settings("sandbox")
    assert settings.provider("xai").max_requests_per_minute == 300
    assert settings.provider("openai").max_requests_per_minute == 30
    path = jsonl(tmp_path / "m.jsonl", *({"prompt": f"item {i}"} for i in range(3)))
    code, _, err = run_cli(
        capsys, monkeypatch, "batch", str(path), "--env", "sandbox", "--out", "out", "-c", "3"
    )
    assert code == 0, err
    waits = sorted(
        a["wait_s"] for p in (tmp_path / "out").glob("*.json") for a in json.loads(p.read_text())["attempts"]
    )
    assert waits[0] == 0.0
    assert waits[-1] > 0  # three at once at 5 a second: the later ones waited for their slot
