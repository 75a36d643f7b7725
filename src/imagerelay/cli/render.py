"""What the commands print: plans, receipts, an interruption, the history table, a batch's summary.

Human lines go to stderr and the saved paths to stdout; with --json, exactly one JSON value on
stdout instead.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from .. import naming
from .plumbing import err

if TYPE_CHECKING:
    from ..batch import BatchSummary
    from ..batch_estimate import BatchEstimate
    from ..ledger import Generation
    from ..planner import Plan
    from ..receipt import Receipt

__all__ = [
    "cost_text",
    "show_batch",
    "show_batch_estimate",
    "show_history",
    "show_interrupted",
    "show_plan",
    "show_receipt",
]


def show_plan(p: Plan, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps({**p.to_dict(), "exit_code": 0}))
        return
    mode = "with references" if p.request.references else "text to image"
    typer.echo(f"plan for {p.request.n} image(s), {mode} — nothing will be sent")
    for i, c in enumerate(p.candidates, 1):
        params = ", ".join(f"{k}={v}" for k, v in c.params.items()) or "defaults"
        calls = "+".join(map(str, c.calls))
        typer.echo(f"  {i}. {c.ref}  ~{c.cost_text()}  calls={calls}  {params}")
        for note in c.notes:
            typer.echo(f"       note: {note}")
    if p.describe:
        typer.echo("  then, describing the reference in words for a text model:")
        for c in p.describe:
            typer.echo(f"     - {c.ref}  ~${c.estimate_usd:.4f}")
    if not p.candidates and not p.describe:
        typer.echo("  no model can serve this request")
    if p.excluded:
        typer.echo("left out:")
        for e in p.excluded:
            typer.echo(f"  - {e.ref}: {e.reason}")
    typer.echo(f"estimated cost: ${p.estimate_usd:.4f}")


def show_receipt(receipt: Receipt, as_json: bool, code: int = 0) -> None:
    if as_json:
        typer.echo(json.dumps({**json.loads(receipt.model_dump_json()), "exit_code": int(code)}))
        return
    for image in receipt.images:
        typer.echo(image.path)
    first = receipt.images[0]
    from ..failures import possibly_billed_by

    extra = ""
    if receipt.possibly_billed_usd and not receipt.sandbox:
        by = ", ".join(possibly_billed_by(receipt))
        extra = f" (+ up to ${receipt.possibly_billed_usd:.4f} possibly billed by {by})"
    err(
        f"saved {len(receipt.images)} image(s) from {receipt.provider}:{receipt.model} "
        f"({first.width}x{first.height} {first.format}), cost {cost_text(receipt)}{extra}"
    )
    for note in receipt.notes:
        err(f"  note: {note}")
    failed = [a for a in receipt.attempts if a.outcome != "success"]
    for a in failed:
        err(f"  attempt {a.provider}:{a.model}: {a.outcome} — {a.error}")
    err(f"receipt: {first.receipt_path}")


def show_interrupted(receipt: Receipt | None, out: Path, as_json: bool) -> None:
    """One line: what was spent, what may be billed, what became of the call in flight, the receipt."""
    if receipt is None:
        err("interrupted before anything was sent: nothing was spent")
        if as_json:
            typer.echo(json.dumps({"error": "interrupted", "error_type": "Interrupted", "exit_code": 130}))
        return
    if as_json:
        payload = {
            "error": "interrupted",
            "error_type": "Interrupted",
            "exit_code": 130,
            "receipt": json.loads(receipt.model_dump_json()),
        }
        typer.echo(json.dumps(payload))
    parts = [f"{cost_text(receipt)} spent on {len(receipt.images)} saved image(s)"]
    if receipt.possibly_billed_usd:
        parts.append(f"up to ${receipt.possibly_billed_usd:.4f} more may be billed for the call in flight")
    parts += [
        a.error
        for a in receipt.attempts
        if a.outcome == "interrupted" and a.error and "prediction" in a.error
    ]
    if receipt.images:
        where = receipt.images[0].receipt_path or receipt.images[0].path
    else:
        found = sorted(out.glob(f"*-{naming.short_id(receipt.id)}-0-failed.json"))
        where = str(found[0]) if found else f"request {receipt.id} in the ledger"
    err(f"interrupted: {'; '.join(parts)}; receipt: {where}")
    if not as_json:
        for image in receipt.images:  # saved before the interruption: still the user's
            typer.echo(image.path)


def cost_text(receipt: Receipt) -> str:
    """`$0.0200`, `$0.0200 (estimated)`, or `$0 (sandbox; would be $0.0200)`."""
    if receipt.sandbox:
        return f"$0 (sandbox; would be ${receipt.would_cost_usd or 0.0:.4f})"
    return f"${receipt.cost_usd:.4f}" + ("" if receipt.reported_cost_usd is not None else " (estimated)")


def show_history(rows: list[Generation], ledger_path: str, as_json: bool) -> None:
    """Past generations, one line each, and their total (or one JSON object)."""
    total = sum(r.cost_usd for r in rows)
    billed = sum(r.possibly_billed_usd for r in rows)
    images = sum(r.images for r in rows)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "generations": [r.to_dict() for r in rows],
                    "count": len(rows),
                    "images": images,
                    "total_usd": round(total, 6),
                    "possibly_billed_usd": round(billed, 6),
                    "ledger": ledger_path,
                }
            )
        )
        return
    for r in rows:
        model = f"{r.provider}:{r.model}" if r.provider else "no image"
        cost = "$0 (sandbox)" if r.sandbox else f"${r.cost_usd:.4f}" + ("" if r.reported else "*")
        # Control characters (terminal escape sequences among them) are not printed as given.
        prompt = " ".join("".join(c if c.isprintable() else " " for c in r.prompt).split())
        prompt = prompt if len(prompt) <= 60 else prompt[:59] + "…"
        if r.gateway_key:  # spent through the gateway: by which key (a plain name, never the key)
            prompt = f"[{r.gateway_key}] {prompt}"
        maybe = f"+${r.possibly_billed_usd:.4f}?" if r.possibly_billed_usd and not r.sandbox else ""
        column = f" {maybe:>10}" if billed else ""  # a column only when something may be billed
        when = r.created_at[:16].replace("T", " ")
        typer.echo(f"{when}  {model:<44} {r.images:>2} img  {cost:>10}{column}  {prompt}")
    typer.echo(
        f"{len(rows)} generation(s), {images} image(s), ${total:.4f} in all"
        + (f", + up to ${billed:.4f} possibly billed (+$…? above)" if billed else "")
        + (" (* estimated)" if any(not r.reported for r in rows) else "")
    )


def show_batch(summary: BatchSummary, as_json: bool) -> None:
    """The saved paths (or the summary object), then one line of counts and spend, and what failed."""
    if as_json:
        typer.echo(json.dumps(summary.to_dict()))
    else:
        for path in summary.saved:
            typer.echo(path)
    spend = (
        f"$0 spent in this run (sandbox; would be ${summary.would_spend_usd:.4f})"
        if summary.sandbox
        else f"${summary.spent_usd:.4f} spent in this run (${summary.batch_spent_usd:.4f} on this batch)"
    )
    err(
        f"batch: {summary.done} done, {summary.skipped} already done, {summary.failed} failed, "
        f"{summary.remaining} not started, of {summary.items}; {spend}"
    )
    for failure in summary.failures:
        err(f"  failed: {failure['item']}: {failure['error']}")
    if summary.stopped:
        err(f"stopped: {summary.stopped}")  # the budget, or an output that cannot be written
    if summary.failed:
        err("run the same command again to retry the failed items")
    err(f"ledger: {summary.ledger}")


def show_batch_estimate(e: BatchEstimate, as_json: bool) -> None:
    """`batch --dry-run`: each item's first model and worst case, the totals, what the budget lets
    through. All on stdout, as `plan` prints."""
    if as_json:
        typer.echo(json.dumps(e.to_dict()))
        return
    typer.echo(f"batch plan for {e.manifest} into {e.out}: {len(e.items)} item(s) — nothing will be sent")
    for i, item in enumerate(e.items, 1):
        label = item.item.label
        if item.state == "done":
            typer.echo(f"  {i}. {label}  already done in {e.out}: $0")
            continue
        shown, worst = f"${item.estimate_usd:.4f}", f"${item.worst_usd:.4f}"
        cost = shown if shown == worst else f"{shown} (at most {worst})"
        line = f"  {i}. {label}  {item.model or 'no model'}  n={item.n}  ~{cost}"
        if item.fallback_worst_usd > item.worst_usd + 1e-9:
            line += f"; a fallback up to ${item.fallback_worst_usd:.4f}"
        if item.state == "refused":
            line += "  REFUSED by the batch budget"
        typer.echo(line)
        for note in item.notes:
            typer.echo(f"       note: {note}")
    todo = e.count("fits") + e.count("refused")
    would = " (sandbox: what it would cost for real; $0 is spent)" if e.sandbox else ""
    typer.echo(
        f"total for {todo} item(s) to make: ~${e.estimate_usd:.4f}, at worst ${e.worst_usd:.4f}"
        + (
            f" (${e.fallback_worst_usd:.4f} if every item fell back to its dearest model)"
            if e.fallback_worst_usd > e.worst_usd + 1e-9
            else ""
        )
        + would
    )
    if e.count("done"):
        typer.echo(f"already done in {e.out}: {e.count('done')} item(s), $0 (resumed, never paid again)")
    if e.sandbox:
        typer.echo("sandbox: no budget applies (sandbox output is never paid for)")
        return
    if e.budget_usd is None:
        typer.echo("batch budget: none (pass --max-cost to set one); each request is held to its own cap")
        return
    spent = f"${e.spent_before_usd:.4f} spent on this batch before, " if e.spent_before_usd else ""
    typer.echo(
        f"batch budget ${e.budget_usd:.4f}: {spent}{e.count('fits')} item(s) fit at their worst case "
        f"(${e.fits_worst_usd:.4f})"
    )
    refused = [i.item.label for i in e.items if i.state == "refused"]
    if refused:
        typer.echo(
            f"refused: {len(refused)} item(s), the batch stops before {refused[0]!r}: "
            + ", ".join(refused)
            + " — raise --max-cost to make them (items that cost less than their worst case leave room "
            "for more)"
        )
