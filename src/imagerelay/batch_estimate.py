"""A batch's estimate before spending (`imagerelay batch MANIFEST --dry-run`).

Every item is planned as the batch would plan it when it starts, against what the output
directory's ledger already holds: an item already done costs $0, an item with some images saved
asks only for the rest, and what the batch spent in earlier runs counts against its budget. The
budget is applied as the batch applies it: an item starts only when its first candidate's worst
case fits in what is left, and the batch stops at the first item that does not fit.

Nothing is sent, and nothing is written: the ledger is read into memory (`Ledger.snapshot`), and
the output directory is neither created nor touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ExitCode

if TYPE_CHECKING:
    from .manifest import Manifest, ManifestItem
    from .relay import Relay

__all__ = ["BatchEstimate", "ItemEstimate", "estimate_batch"]


@dataclass(frozen=True)
class ItemEstimate:
    """One item as the batch would start it."""

    item: ManifestItem
    state: str  # done (already, in --out) | fits | refused (by the batch budget)
    n: int = 0  # images still to make
    model: str | None = None  # the first candidate
    estimate_usd: float = 0.0  # the first candidate's expected cost
    worst_usd: float = 0.0  # the first candidate's worst case: what the budget holds for it
    fallback_worst_usd: float = 0.0  # the most any candidate may cost, a fallback included
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.item.label,
            "name": self.item.name,
            "where": self.item.where,
            "state": self.state,
            "n": self.n,
            "model": self.model,
            "estimate_usd": round(self.estimate_usd, 6),
            "worst_usd": round(self.worst_usd, 6),
            "fallback_worst_usd": round(self.fallback_worst_usd, 6),
            "notes": list(self.notes),
        }


@dataclass
class BatchEstimate:
    """What a run of the batch would do, at worst."""

    manifest: str
    out: str
    items: list[ItemEstimate] = field(default_factory=list)
    budget_usd: float | None = None  # the batch budget (--max-cost, else [budget] max_cost_per_batch)
    spent_before_usd: float = 0.0  # what earlier runs of this batch spent
    sandbox: bool = False  # the figures are what it would cost for real; no budget applies

    def _sum(self, attr: str, states: tuple[str, ...] = ("fits", "refused")) -> float:
        return float(sum(getattr(i, attr) for i in self.items if i.state in states))

    @property
    def estimate_usd(self) -> float:
        """Every item still to make, at its first candidate's estimate."""
        return self._sum("estimate_usd")

    @property
    def worst_usd(self) -> float:
        """Every item still to make, at its first candidate's worst case."""
        return self._sum("worst_usd")

    @property
    def fallback_worst_usd(self) -> float:
        """Every item still to make, each at the dearest candidate it may fall back to."""
        return self._sum("fallback_worst_usd")

    @property
    def fits_worst_usd(self) -> float:
        """What the items the budget lets through hold of it, at their worst case."""
        return self._sum("worst_usd", ("fits",))

    def count(self, state: str) -> int:
        return sum(1 for i in self.items if i.state == state)

    @property
    def exit_code(self) -> int:
        """As the batch would end if every item cost its worst case: 0 every item done or let
        through; 3 some, not all (the budget stops the rest); 1 none."""
        refused = self.count("refused")
        if not refused:
            return ExitCode.OK
        return ExitCode.PARTIAL if refused < len(self.items) else ExitCode.FAILED

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": True,
            "manifest": self.manifest,
            "out": self.out,
            "items": [i.to_dict() for i in self.items],
            "counts": {state: self.count(state) for state in ("done", "fits", "refused")},
            "estimate_usd": round(self.estimate_usd, 6),
            "worst_usd": round(self.worst_usd, 6),
            "fallback_worst_usd": round(self.fallback_worst_usd, 6),
            "budget_usd": self.budget_usd,
            "spent_before_usd": round(self.spent_before_usd, 6),
            "fits_worst_usd": round(self.fits_worst_usd, 6),
            "refused": [i.item.label for i in self.items if i.state == "refused"],
            **({"sandbox": True} if self.sandbox else {}),
            "exit_code": int(self.exit_code),
        }


def estimate_batch(manifest: Manifest, relay: Relay, *, max_cost: float | None = None) -> BatchEstimate:
    """Plan every item of `manifest` as `run_batch` would start it into `relay.out_dir`; see the
    module docs. `max_cost` is the batch budget (None: `budget.max_cost_per_batch`)."""
    from .batch import sandbox_items
    from .ledger import Ledger

    settings = relay.settings
    sandbox = settings.sandbox
    limit = max_cost if max_cost is not None else settings.budget.max_cost_per_batch
    items = sandbox_items(manifest.items) if sandbox else manifest.items
    out = Path(relay.out_dir)
    estimate = BatchEstimate(
        manifest=str(manifest.path), out=str(out), budget_usd=None if sandbox else limit, sandbox=sandbox
    )
    saved: dict[str, int] = {}
    ledger = Ledger.snapshot(out) if out.is_dir() else None
    if ledger is not None:
        try:
            ledger.adopt_orphans()  # counted as the batch would count them (in the copy only)
            saved = {key: record.saved for key, record in ledger.sync_items(manifest.name, items).items()}
            estimate.spent_before_usd = 0.0 if sandbox else ledger.batch_spent(manifest.name)
        finally:
            ledger.close()
    left = None if limit is None or sandbox else limit - estimate.spent_before_usd
    stopped = False
    for item in items:
        missing = item.n - saved.get(item.key, 0)
        if missing <= 0:
            estimate.items.append(ItemEstimate(item, "done"))
            continue
        request = item.request if missing == item.n else item.request.model_copy(update={"n": missing})
        plan = relay.plan(request)
        first = plan.candidates[0] if plan.candidates else (plan.describe[0] if plan.describe else None)
        worst = first.worst_usd if first is not None else 0.0
        notes: list[str] = []
        if missing < item.n:
            notes.append(f"{item.n - missing} of {item.n} image(s) already saved: asks for {missing}")
        # The batch stops at the first item that does not fit: every later one is not started.
        if left is not None and (stopped or worst > left + 1e-9):
            stopped = True
            state = "refused"
        else:
            state = "fits"
            if left is not None:
                left -= worst
        estimate.items.append(
            ItemEstimate(
                item,
                state,
                n=missing,
                model=first.ref if first is not None else None,
                estimate_usd=first.estimate_usd if first is not None else 0.0,
                worst_usd=worst,
                fallback_worst_usd=max(worst, plan.worst_usd),
                notes=tuple(notes),
            )
        )
    return estimate
