"""How a request ends when it makes no image, or cannot keep what it paid for: one line saying
why, what was paid, where every paid image is and what to do, and the error that carries it."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BudgetExceeded, GenerationFailed, InvalidRequest
from .receipt import Receipt, public_request

if TYPE_CHECKING:
    from .planner import Plan
    from .store import Store

__all__ = [
    "billed_text",
    "failure_message",
    "possibly_billed_by",
    "refuse_empty_plan",
    "save_failure_message",
]


def refuse_empty_plan(plan: Plan, limit: float | None, receipt: Receipt | None = None) -> None:
    """Raise what `generate` raises for `plan` when no model can serve it (so `plan` and
    `generate --dry-run` fail as `generate` would, with the same exit code); else nothing.

    `receipt` is the request's (a dry run has none yet: one is made from the plan)."""
    if plan.candidates or plan.describe:
        return
    reasons = (
        "; ".join(f"{e.ref}: {e.reason}" for e in plan.excluded) or "no model is configured for this request"
    )
    over = sorted((e for e in plan.excluded if e.over_budget), key=lambda e: e.worst_usd or 0.0)
    if over:
        # One line a person reads: the cheapest model and what it needs, not every model's reason
        # (the plan and the receipt's `left_out` list them all).
        cheapest, others = over[0], len(plan.excluded) - 1
        cost = f" is estimated at {cheapest.cost_text}" if cheapest.cost_text else " is over it"
        rest = (
            f" ({others} other model(s) cost more or cannot serve it: see `imagerelay plan`)"
            if others
            else ""
        )
        raise BudgetExceeded(
            f"no candidate fits the budget of ${limit}: the cheapest, {cheapest.ref},{cost}{rest}: "
            "raise --max-cost or ask for fewer images"
        )
    if plan.excluded and all(e.cooling or e.over_budget for e in plan.excluded):
        # Not the user's mistake: every model that could serve it failed moments ago.
        if receipt is None:
            receipt = Receipt(
                id=uuid.uuid4().hex,
                prompt=plan.request.prompt,
                request=public_request(plan.request),
                left_out={e.ref: e.reason for e in plan.excluded},
            )
        raise GenerationFailed(
            f"every model that could serve this request is cooling down after failing ({reasons}): "
            "try again later, or pin another model",
            [],
            receipt,
        )
    section = "reference" if plan.request.mode == "reference" else "text"
    raise InvalidRequest(
        f"no model can serve this request ({reasons}): set a provider's key, pass --provider, "
        f"or list models in [routing] {section}"
    )


def failure_message(receipt: Receipt) -> str:
    """`no image was made — xai:grok-imagine-image transient (…) | …; may have been billed: $0.0200
    (xai:grok-imagine-image)`: every attempt, in order, then what they may have cost."""
    lines = [
        f"{a.provider}:{a.model} {a.outcome}" + (f" ({a.error})" if a.error else "") for a in receipt.attempts
    ]
    # Models the cap or the budget kept from being called are part of why nothing was made.
    kept_out = [n for n in receipt.notes if " not called: " in n]
    return (
        "no image was made — "
        + " | ".join(lines or ["nothing was tried"])
        + "".join(f"; {n}" for n in kept_out)
        + "; "
        + billed_text(receipt)
    )


def possibly_billed_by(receipt: Receipt) -> list[str]:
    """The models (`provider:model`) whose attempts may have been billed without an image."""
    refs = [f"{a.provider}:{a.model}" for a in receipt.attempts if a.maybe_billed]
    return list(dict.fromkeys(refs))


def billed_text(receipt: Receipt) -> str:
    """`may have been billed: $0.0200 (xai:grok-imagine-image)`, or `… $0 (sandbox)`, or `… $0`."""
    if receipt.sandbox:
        return "may have been billed: $0 (sandbox)"
    if not receipt.possibly_billed_usd:
        return "may have been billed: $0"
    models = ", ".join(possibly_billed_by(receipt))
    return f"may have been billed: ${receipt.possibly_billed_usd:.4f}" + (f" ({models})" if models else "")


def save_failure_message(store: Store, receipt: Receipt, lost: list[tuple[str | None, str]]) -> str:
    """One line: what failed, what was paid, where every paid image is, what to do."""
    paid = len(receipt.images) + len(lost)
    cost = "$0 (sandbox)" if receipt.sandbox else f"${receipt.cost_usd:.4f}"
    kept = sorted({str(Path(i.path).parent) for i in receipt.images if Path(i.path).parent != store.out_dir})
    where = []
    if kept:
        where.append(f"kept in {', '.join(kept)}: move them into '{store.out_dir}' once there is room")
    urls = [url for url, _ in lost if url]
    if urls:
        where.append(f"{len(urls)} kept nowhere, fetch within the hour: {' '.join(urls)}")
    if len(urls) < len(lost):
        where.append(f"{len(lost) - len(urls)} could be kept nowhere and are lost")
    return (
        f"{store.failure}: {paid} image(s) were delivered and paid for ({cost}) — "
        + ("; ".join(where) or "nothing else was made")
        + "; no further call was made"
    )
