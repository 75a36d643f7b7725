"""Batches: a manifest's items run over one shared Relay, recorded in the ledger as they go.

- **Resumable.** Items already done are skipped; an item with some images saved asks only for the
  rest; a Replicate prediction created before a crash is re-attached to by id. Each saved image
  and each prediction id is written to the ledger the moment it exists, so a SIGKILL loses
  neither.
- **Rate-limited.** `concurrency` items run at once over ONE Relay, so every item shares the
  per-provider rate limits and the slow-down after a 429.
- **Budgeted.** Before an item starts, the worst case of its planned model must fit in what the
  budget has left after what the batch spent (every run) and what running items reserved; the
  item reserves it. A fallback that may cost more takes the difference from what is left before
  its call starts, or is not made. When the next item would not fit, no new item starts and the
  summary says how much was spent and how many remain.
- **Sandbox apart.** In the sandbox, items are kept under keys of their own, so sandbox images
  never count as a real item done (nor the reverse), and their spend is $0: it counts against no
  budget; what it would have cost is reported beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ExitCode, GenerationFailed, ImageRelayError, SaveFailed
from .progress import PlainProgress, Reporter, RichProgress

if TYPE_CHECKING:
    from .hooks import PredictionCreated, Reserve
    from .ledger import ItemRecord, Ledger
    from .manifest import Manifest, ManifestItem
    from .receipt import Receipt, SavedImage
    from .relay import Relay

#: The progress reporters live in `progress`; they are named here too, where batches are run.
__all__ = ["BatchSummary", "ItemOutcome", "PlainProgress", "Reporter", "RichProgress", "run_batch"]

log = logging.getLogger("imagerelay")

#: Temp files this old are left over from a killed writer (live ones last milliseconds).
_STALE_TEMP_SECONDS = 600.0
#: A full garbage collection after this many items. Every httpx response sits in a reference
#: cycle (response ↔ its bound stream), so only the cyclic collector frees it — with the image
#: body it holds. One that lives through two young collections (a call in flight) lands in the
#: oldest generation, which Python collects only when it has grown by a quarter: in a long batch
#: that is thousands of responses, gigabytes of image bodies with real providers. Collecting
#: every few items keeps memory flat for a few milliseconds each time.
_COLLECT_EVERY = 25


@dataclass(frozen=True)
class ItemOutcome:
    """How one item ended in this run."""

    item: ManifestItem
    state: str  # done | failed
    images: tuple[str, ...] = ()
    cost_usd: float = 0.0
    error: str | None = None
    would_cost_usd: float | None = None  # sandbox: what it would have cost for real
    stop: str | None = None  # why no further item may start (the output cannot be written)
    sandbox: bool = False  # made by the emulator outside the sandbox: kept as a sandbox item


@dataclass
class BatchSummary:
    """The result of one run of a batch. `done + skipped + failed + remaining == items`."""

    items: int
    done: int = 0  # finished in this run
    failed: int = 0  # failed in this run (a rerun tries them again)
    skipped: int = 0  # already done before this run
    remaining: int = 0  # not started: over budget, or interrupted
    spent_usd: float = 0.0  # in this run
    batch_spent_usd: float = 0.0  # on this batch, every run included
    failures: list[dict[str, str]] = field(default_factory=list)
    ledger: str = ""
    stopped: str | None = None  # why new items stopped being started
    output_failed: bool = False  # stopped because the output (images or ledger) could not be written
    saved: list[str] = field(default_factory=list)  # images saved in this run
    sandbox: bool = False  # spend is $0; `would_spend_usd` is what it would have cost
    would_spend_usd: float = 0.0

    @property
    def exit_code(self) -> int:
        """0 every item done; 3 some done (now or before) or some images saved, not all; 1 nothing
        done, or the output could not be written (paid images kept elsewhere: see `stopped`)."""
        if self.output_failed:
            return ExitCode.FAILED
        if self.done + self.skipped == self.items:
            return ExitCode.OK
        return ExitCode.PARTIAL if self.done or self.skipped or self.saved else ExitCode.FAILED

    def to_dict(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
            "remaining": self.remaining,
            "spent_usd": round(self.spent_usd, 6),
            "batch_spent_usd": round(self.batch_spent_usd, 6),
            "failures": self.failures,
            "stopped": self.stopped,
            "saved": list(self.saved),
            "ledger": self.ledger,
            **({"sandbox": True, "would_spend_usd": round(self.would_spend_usd, 6)} if self.sandbox else {}),
            "exit_code": int(self.exit_code),
        }


async def run_batch(
    manifest: Manifest,
    relay: Relay,
    ledger: Ledger,
    *,
    concurrency: int = 4,
    max_cost: float | None = None,
    reporter: Reporter | None = None,
    remake: bool = False,
) -> BatchSummary:
    """Run every item of `manifest` not yet done; see the module docs.

    `max_cost` is the batch budget in USD (None: `budget.max_cost_per_batch`, else no limit).
    An item whose saved image was deleted or changed since (its sha256 no longer matches) is not
    made again — that would be paid for — unless `remake`; it is reported as failed, saying so.
    The relay must write into the ledger's directory; make it with `record=False` and install
    `ledger.record_receipt` in its `on_receipt` hooks, so that finished receipts are recorded
    once, by this ledger.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    limit = max_cost if max_cost is not None else relay.settings.budget.max_cost_per_batch
    sandbox = relay.settings.sandbox
    items = sandbox_items(manifest.items) if sandbox else manifest.items
    _remove_stale_temp_files(ledger.directory)
    restored = ledger.restore_rescued() + ledger.adopt_rescued()
    if restored:
        log.warning("moved %d image(s) kept in a rescue directory back into %s", restored, ledger.directory)
    ledger.adopt_orphans()
    records = ledger.sync_items(manifest.name, items)
    summary = BatchSummary(items=len(items), ledger=str(ledger.path), sandbox=sandbox)
    todo: list[tuple[ManifestItem, int]] = []
    tampered: list[ItemOutcome] = []
    for item in items:
        record = records[item.key]
        gone = record.missing + record.changed
        if gone and record.saved < item.n:
            if not remake:
                tampered.append(ItemOutcome(item, "failed", error=_tampered(record)))
                continue
            ledger.forget_images(gone)
        if record.saved >= item.n:
            summary.skipped += 1
            if record.state != "done":  # all its images were saved before a crash cut it short
                ledger.finish_item(item.key, "done")
                ledger.close_predictions(item.key)
        else:
            todo.append((item, item.n - record.saved))
    spent_before = ledger.batch_spent(manifest.name)
    summary.batch_spent_usd = spent_before
    if reporter is not None:
        reporter.start(summary.items, summary.skipped, spent_before)

    semaphore = asyncio.Semaphore(concurrency)
    running: dict[str, float] = {}  # item key → what it reserved (its worst case), while it runs
    tasks: set[asyncio.Task[None]] = set()

    def spent() -> float:
        return spent_before + summary.spent_usd

    def finished(outcome: ItemOutcome) -> None:
        if (summary.done + summary.failed) % _COLLECT_EVERY == _COLLECT_EVERY - 1:
            gc.collect()
        summary.spent_usd += outcome.cost_usd
        summary.would_spend_usd += outcome.would_cost_usd or 0.0
        summary.batch_spent_usd = spent()
        summary.saved.extend(outcome.images)
        summary.sandbox = summary.sandbox or outcome.sandbox
        if outcome.stop and not summary.output_failed:
            summary.stopped, summary.output_failed = outcome.stop, True
        if outcome.state == "done":
            summary.done += 1
        else:
            summary.failed += 1
            summary.failures.append(
                {"item": outcome.item.label, "where": outcome.item.where, "error": outcome.error or "unknown"}
            )
        if reporter is not None:
            reporter.item_finished(outcome, spent())

    def left() -> float:
        assert limit is not None
        return limit - spent() - sum(running.values())

    def room() -> float:
        return left() if limit is not None else float("inf")

    def reserver(key: str) -> Reserve | None:
        """Let a running item take more of the budget for a call that may cost more than planned."""
        if limit is None or sandbox:  # sandbox output is never paid for: no budget to draw on
            return None

        def reserve(amount: float) -> bool:
            if amount > left() + 1e-9:
                return False
            running[key] = running.get(key, 0.0) + amount
            return True

        return reserve

    async def run_one(
        item: ManifestItem, missing: int, estimate: float, planned: str | None, reserved: float
    ) -> None:
        try:
            budget = (reserver(item.key), reserved, room)
            finished(await _run_item(relay, ledger, item, missing, estimate, planned, budget))
        finally:
            running.pop(item.key, None)
            semaphore.release()

    for outcome in tampered:  # said, never silently paid for again
        finished(outcome)
    started = 0
    over_budget: tuple[float, float, int] | None = None  # (limit, next estimate, not started)
    try:
        for item, missing in todo:
            await semaphore.acquire()
            if summary.stopped:  # e.g. the disk is full: anything more would be paid and not kept
                semaphore.release()
                break
            request = item.request if missing == item.n else item.request.model_copy(update={"n": missing})
            try:
                plan = relay.plan(request)
            except ImageRelayError as exc:  # e.g. its pinned model is cooling down after failures
                semaphore.release()
                started += 1
                ledger.finish_item(item.key, "failed", str(exc))
                finished(ItemOutcome(item, "failed", error=str(exc)))
                continue
            # Sandbox output is never paid for, so it counts against no budget.
            estimate = 0.0 if sandbox else plan.estimate_usd
            planned = plan.candidates[0].ref if plan.candidates else None
            first = plan.candidates[0] if plan.candidates else (plan.describe[0] if plan.describe else None)
            reserved = first.worst_usd if first is not None and not sandbox else 0.0
            if limit is not None and reserved > left() + 1e-9:
                semaphore.release()
                over_budget = (limit, reserved, len(todo) - started)
                break
            running[item.key] = reserved
            started += 1
            task = asyncio.create_task(run_one(item, missing, estimate, planned, reserved))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*list(tasks))
    finally:
        for task in tasks:  # interrupted: the items go back to pending, to resume next time
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        summary.remaining = summary.items - summary.done - summary.failed - summary.skipped
        if over_budget is not None and not summary.output_failed:
            # Said once every running item has finished, so its spend is the batch's final one.
            summary.stopped = _budget_message(over_budget[0], spent(), *over_budget[1:])
        if reporter is not None:
            reporter.close()
    return summary


async def _run_item(
    relay: Relay,
    ledger: Ledger,
    item: ManifestItem,
    missing: int,
    estimate: float,
    planned: str | None,
    budget: tuple[Reserve | None, float, Callable[[], float]],
) -> ItemOutcome:
    """Make the `missing` images of one item; record everything in the ledger as it happens."""
    from .backends.base import Adopt
    from .hooks import Budget, RunHooks

    receipt_id = uuid.uuid4().hex
    request = item.request if missing == item.n else item.request.model_copy(update={"n": missing})
    # A run of this item cut short (killed) may have created a prediction whose id it never
    # recorded: look for it from when that run began, rather than paying for it again.
    since = ledger.interrupted_since(item.key)
    adopt = Adopt(since, ledger.known_predictions()) if since is not None else None
    try:
        ledger.start_run(item.key, receipt_id, n=missing, estimate_usd=estimate, planned=planned)
    except sqlite3.Error as exc:  # a run that cannot be recorded is not started: nothing is spent
        reason = f"the ledger {ledger.path} cannot be written ({exc})"
        halt = f"no new item was started: {reason}"
        return ItemOutcome(item, "failed", error=f"not started: {reason}", stop=halt)
    resume = ledger.resumable_predictions(item.key)
    saved: list[str] = []

    def on_image(image: SavedImage, receipt: Receipt) -> None:
        ledger.record_image(receipt.id, image)
        saved.append(image.path)

    def on_prediction(event: PredictionCreated) -> None:
        ledger.record_prediction(receipt_id, event.model, event.id)

    receipt: Receipt | None = None
    error: str | None = None
    stop: str | None = None
    try:
        hooks = RunHooks(
            receipt_id=receipt_id,
            name=item.name,
            on_image=on_image,
            on_prediction=on_prediction,
            resume=resume,
            adopt=adopt,
            budget=Budget(budget[0], budget[1], budget[2]) if budget[0] is not None else None,
        )
        receipt = await relay.generate(request, hooks=hooks)
    except asyncio.CancelledError:
        ledger.finish_item(item.key, "pending", "interrupted")
        raise
    except GenerationFailed as exc:
        receipt = exc.receipt
        error = str(exc)
    except SaveFailed as exc:
        receipt = exc.receipt
        error = str(exc)
        stop = f"no new item was started: {exc}"
    except ImageRelayError as exc:
        error = str(exc)
    except Exception as exc:  # a bug must cost one item, not the batch and its ledger
        log.exception("batch item %s failed unexpectedly", item.label)
        error = f"unexpected {type(exc).__name__}: {exc}"
    cost = receipt.cost_usd if receipt is not None else 0.0
    would = receipt.would_cost_usd if receipt is not None else None
    try:
        if receipt is not None and receipt.sandbox and not relay.settings.sandbox and stop is None:
            # The emulator answered (a base URL points at `imagerelay emulator serve`): its images
            # are kept as a sandbox item's, so that a real run still makes the real ones.
            ledger.move_to_item(receipt.id, f"sandbox:{item.key}")
            ledger.finish_item(item.key, "pending", "made by the imagerelay emulator (sandbox output)")
            done = "done" if saved else "failed"
            return ItemOutcome(item, done, tuple(saved), 0.0, error, would, sandbox=True)
        record = ledger.item_records([item.key])[item.key]
        if record.saved >= item.n and stop is None:
            ledger.finish_item(item.key, "done")
            ledger.close_predictions(item.key)
            return ItemOutcome(item, "done", tuple(saved), cost, would_cost_usd=would)
        if error is None:
            short = item.n - record.saved
            why = _last_error(receipt) if receipt is not None else None
            error = f"{short} of {item.n} image(s) could not be made" + (f": {why}" if why else "")
        # Paid images kept in a rescue directory still count: a rerun moves them back, pays nothing.
        ledger.finish_item(item.key, "done" if record.saved >= item.n else "failed", error)
    except sqlite3.Error as exc:  # the ledger's disk failed: say so, start nothing more
        error = (error + "; " if error else "") + f"the ledger {ledger.path} cannot be written ({exc})"
        stop = stop or f"no new item was started: the ledger {ledger.path} cannot be written ({exc})"
    return ItemOutcome(item, "failed", tuple(saved), cost, error, would, stop)


def sandbox_items(items: list[ManifestItem]) -> list[ManifestItem]:
    """The items under keys of the sandbox's own: its placeholders never stand for real work."""
    return [dataclasses.replace(i, key=f"sandbox:{i.key}", legacy_key=None) for i in items]


def _tampered(record: ItemRecord) -> str:
    what = [f"{p} was deleted" for p in record.missing] + [
        f"{p} was changed (its sha256 is not the one its receipt holds)" for p in record.changed
    ]
    return (
        "; ".join(what) + " since it was made: not made again (it would be paid for) — restore it, or "
        "pass --remake to make it again"
    )


def _last_error(receipt: Receipt) -> str | None:
    for attempt in reversed(receipt.attempts):
        if attempt.error:
            return attempt.error
    return None


def _budget_message(limit: float, spent: float, estimate: float, not_started: int) -> str:
    return (
        f"stopped at the ${usd(limit)} batch budget: ${spent:.4f} spent on this batch, the next item may "
        f"cost up to ${estimate:.4f}; {not_started} item(s) not started — raise --max-cost "
        "(or [budget] max_cost_per_batch) and run the same command again to continue"
    )


def usd(amount: float) -> str:
    """A cap as the user gave it: at least cents, and every digit beyond (0.0999, not 0.10)."""
    text = f"{amount:.6f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def _remove_stale_temp_files(directory: Path) -> None:
    """Drop `.tmp-*` files a killed writer left behind (never a finished image: those are renamed)."""
    cutoff = time.time() - _STALE_TEMP_SECONDS
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith(".tmp-") and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    if entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)
