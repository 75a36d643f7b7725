"""How a batch shows its progress: one line per item for logs and pipes, a bar on a terminal."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .batch import ItemOutcome

__all__ = ["PlainProgress", "Reporter", "RichProgress"]


class Reporter(Protocol):
    """Shows a batch's progress."""

    def start(self, total: int, already_done: int, spent_usd: float) -> None: ...

    def item_finished(self, outcome: ItemOutcome, spent_usd: float) -> None: ...

    def close(self) -> None: ...


class PlainProgress:
    """One line per finished item on stderr: for logs and pipes."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.total = 0
        self.count = 0

    def _say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def start(self, total: int, already_done: int, spent_usd: float) -> None:
        self.total, self.count = total, already_done
        if already_done == total:
            self._say(f"batch: all {total} item(s) already done (${spent_usd:.4f} spent); nothing to do")
        elif already_done:
            self._say(
                f"batch: {already_done} of {total} item(s) already done (${spent_usd:.4f} spent); "
                "running the rest"
            )
        else:
            self._say(f"batch: {total} item(s)")

    def item_finished(self, outcome: ItemOutcome, spent_usd: float) -> None:
        self.count += 1
        head = f"[{self.count}/{self.total}] {outcome.state:<6} {outcome.item.label}"
        if outcome.state == "done" and outcome.would_cost_usd is not None:
            would = f"would be ${outcome.would_cost_usd:.4f}"
            self._say(f"{head} ({len(outcome.images)} image(s), $0 (sandbox), {would})")
        elif outcome.state == "done":
            self._say(
                f"{head} ({len(outcome.images)} image(s), ${outcome.cost_usd:.4f}; spent ${spent_usd:.4f})"
            )
        else:
            self._say(f"{head}: {outcome.error}")

    def close(self) -> None:
        pass


class RichProgress:
    """A progress bar on a terminal: items done and failed, spend so far, time left."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[failed]} failed"),
            TextColumn("${task.fields[spent]:.4f}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task: Any = None
        self.failed = 0

    def start(self, total: int, already_done: int, spent_usd: float) -> None:
        self.progress.start()
        self.task = self.progress.add_task(
            "batch", total=total, completed=already_done, failed=0, spent=spent_usd
        )

    def item_finished(self, outcome: ItemOutcome, spent_usd: float) -> None:
        if outcome.state != "done":
            self.failed += 1
            self.progress.console.print(f"failed: {outcome.item.label}: {outcome.error}", markup=False)
        self.progress.update(self.task, advance=1, failed=self.failed, spent=spent_usd)

    def close(self) -> None:
        self.progress.stop()
