"""`imagerelay generate` and `imagerelay plan`: one request, sent or only planned."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .app import JsonOpt, OutOpt, app
from .plumbing import err, fail, load_settings
from .render import show_interrupted, show_plan, show_receipt
from .request import RequestOptions, with_request_options

if TYPE_CHECKING:
    from ..planner import Plan
    from ..receipt import Receipt
    from ..settings import Settings

__all__ = ["generate", "plan"]

DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Print the plan and its cost; send nothing.")]


@app.command()
@with_request_options
def generate(
    options: RequestOptions, out: OutOpt = None, dry_run: DryRunOpt = False, as_json: JsonOpt = False
) -> None:
    """Generate images and save them with a receipt."""
    _generate(options, out=out, dry_run=dry_run, as_json=as_json)


@app.command()
@with_request_options
def plan(options: RequestOptions, as_json: JsonOpt = False) -> None:
    """Show which models would be tried, translated how, at what cost — and send nothing."""
    _generate(options, out=None, dry_run=True, as_json=as_json)


def _generate(options: RequestOptions, *, out: Path | None, dry_run: bool, as_json: bool) -> None:
    from ..errors import ExitCode, ImageRelayError

    try:
        req = options.request()
        settings = load_settings(options.env, out)
        if dry_run:
            _dry_run(settings, req, options.max_cost, as_json)
            return
        receipt = _run_generate(settings, req, options.max_cost)
    except ImageRelayError as exc:
        fail(exc, as_json=as_json)
    except _Interrupted as exc:
        show_interrupted(exc.receipt, settings.output.dir, as_json)
        raise typer.Exit(130) from None
    # Fewer images than asked for is not success: a script must be able to tell (exit 3).
    code = ExitCode.PARTIAL if len(receipt.images) < req.n else ExitCode.OK
    show_receipt(receipt, as_json, code)
    if code:
        err(
            f"partial: {len(receipt.images)} of {req.n} image(s) saved (exit {int(code)}); "
            f"ask again with -n {req.n - len(receipt.images)} for the rest"
        )
        raise typer.Exit(code)


class _Interrupted(Exception):
    """Ctrl-C during a generation; `receipt` is what it had done (None if nothing was started)."""

    def __init__(self, receipt: Receipt | None) -> None:
        super().__init__("interrupted")
        self.receipt = receipt


def _plan(settings: Settings, req: Any, max_cost: float | None) -> Plan:
    from ..references import load_mask, load_reference
    from ..relay import Relay

    # Local references are checked now, so a dry run catches a missing file; URLs are not fetched.
    for i, source in enumerate(req.references, 1):
        if "://" not in source:
            load_reference(source, label=f"reference {i}")
    if req.mask and "://" not in req.mask:
        load_mask(req.mask)
    return Relay(settings).plan(req, max_cost=max_cost)


def _dry_run(settings: Settings, req: Any, max_cost: float | None, as_json: bool) -> None:
    """Show the plan; when no model can serve it, fail as `generate` would (same error and code)."""
    from ..errors import ImageRelayError
    from ..relay import refuse_empty_plan

    p = _plan(settings, req, max_cost)
    try:
        refuse_empty_plan(p, max_cost if max_cost is not None else settings.budget.max_cost_per_request)
    except ImageRelayError as exc:
        if not as_json:
            show_plan(p, as_json=False)
        fail(exc, as_json=as_json, extra={"plan": p.to_dict()})
    show_plan(p, as_json)


def _run_generate(settings: Settings, req: Any, max_cost: float | None) -> Receipt:
    import asyncio

    from ..relay import Relay

    finished: list[Receipt] = []  # the receipt written on the way out of an interruption

    async def run() -> Receipt:
        # The relay records every generation in the output directory's ledger (history, gallery).
        async with Relay(settings, on_receipt=[finished.append]) as relay:
            return await relay.generate(req, max_cost=max_cost)

    try:
        if sys.stderr.isatty():
            from rich.console import Console

            with Console(stderr=True).status(f"generating {req.n} image(s)…"):
                return asyncio.run(run())
        return asyncio.run(run())
    except KeyboardInterrupt:
        # asyncio.run cancelled the generation: the relay cancelled what was in flight and wrote
        # the receipt of what was spent before this arrives here.
        raise _Interrupted(finished[-1] if finished else None) from None
