"""What a request spends: one function books what each attempt cost, one check says whether the
next call may start. Nothing else changes a receipt's money fields.

- `estimated_cost_usd`: our estimate of every image delivered (from the catalog's prices).
- `reported_cost_usd`: the providers' own figures, where they gave one (xAI, OpenAI's tokens).
- `cost_usd`: per call, the provider's figure when it gave one, else our estimate — so a request
  served partly by xAI (which reports cost) and partly by Replicate (which does not) is neither
  under- nor double-counted.
- `possibly_billed_usd`: attempts that failed after the provider may have charged for them, at
  their worst.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .attempt import Attempted
    from .hooks import Budget
    from .planner import Candidate
    from .receipt import Receipt

__all__ = ["Allowance", "account"]


def account(receipt: Receipt, cand: Candidate, done: Attempted) -> None:
    """Book what one attempt at `cand` cost into `receipt`.

    Images delivered were paid for, kept on disk or not. An attempt that failed or was cut short
    after the provider may have charged for it counts, at its worst, as billed in full for what it
    did not deliver.
    """
    cost = cand.cost
    if done.served or done.paid:
        estimate = cost.call(done.paid)
        reported = done.result.reported_cost_usd if done.served and done.result is not None else None
        receipt.estimated_cost_usd += estimate
        if reported is not None:
            receipt.reported_cost_usd = (receipt.reported_cost_usd or 0.0) + reported
        receipt.cost_usd += reported if reported is not None else estimate
        receipt.provider = receipt.provider or cand.provider.name
        receipt.model = receipt.model or cand.model.id
    if done.maybe_billed:
        receipt.possibly_billed_usd += cost.worst_per_image * max(0, done.call.n - done.paid) + (
            0.0 if done.paid else cost.worst_per_call
        )


@dataclass
class Allowance:
    """What one request may spend: at most `cap` USD, and, when it draws on a shared `budget` (a
    batch's), what it holds of that budget (`reserved`), asking for more as it needs."""

    cap: float | None = None
    budget: Budget | None = None
    reserved: float = 0.0

    def permits(self, receipt: Receipt, cand: Candidate, n: int) -> bool:
        """Whether a call of `n` images to `cand` may start: its worst case must not take the
        request over its cap, nor over what it holds of the shared budget when that budget has no
        more to give. A refusal is noted in the receipt."""
        spent = receipt.cost_usd + receipt.possibly_billed_usd
        worst = cand.cost.worst_call(n)
        over: str | None = None
        if self.cap is not None and spent + worst > self.cap + 1e-9:
            over = f"the ${self.cap:.4f} cap"
        elif self.budget is not None and spent + worst > self.reserved + 1e-9:
            if self.budget.reserve(spent + worst - self.reserved):
                self.reserved = spent + worst
            else:
                over = "what is left of the budget"
                if self.budget.left is not None:
                    room = max(0.0, self.budget.left() + self.reserved - spent)
                    over += f" (${room:.4f} left for this request)"
        if over is None:
            return True
        receipt.notes.append(
            f"{cand.ref} not called: it may cost up to ${worst:.4f} and ${spent:.4f} is spent or "
            f"possibly billed, over {over}"
        )
        return False
