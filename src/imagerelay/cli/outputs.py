"""Commands over an output directory: `batch` (a manifest, resumable), `history`, `gallery`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .app import EnvOpt, JsonOpt, OutOpt, app, not_empty
from .plumbing import err, fail, load_settings
from .render import show_batch, show_batch_estimate, show_history

__all__ = ["batch", "gallery", "history"]


@app.command()
def batch(
    manifest: Annotated[Path, typer.Argument(help="Items to generate: a .toml, .csv or .jsonl file.")],
    out: OutOpt = None,
    env: EnvOpt = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, max=64, help="Items generated at once.")
    ] = 4,
    max_cost: Annotated[
        float | None,
        typer.Option("--max-cost", min=0, help="Budget for the whole batch, every run included (USD)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one summary object on stdout.")] = False,
    remake: Annotated[
        bool,
        typer.Option(
            "--remake", help="Make again (and pay for) items whose saved image was deleted or changed."
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Plan every item and the batch's cost against its budget; send nothing."
        ),
    ] = False,
) -> None:
    """Generate every item of a manifest; run it again to resume where it stopped, paying nothing twice."""
    import asyncio

    from ..batch import BatchSummary, PlainProgress, Reporter, RichProgress, run_batch
    from ..errors import ImageRelayError
    from ..ledger import Ledger
    from ..manifest import load_manifest
    from ..relay import Relay
    from ..store import Store

    try:
        settings = load_settings(env, out)
        relay = Relay(settings, record=False)  # the batch's own ledger records, below
        # Every item is checked (and planned) before anything is sent or any file is written.
        items = load_manifest(manifest, plan=relay.plan)
        if dry_run:  # nothing is sent and nothing written: the ledger is read into memory
            from ..batch_estimate import estimate_batch

            Store(relay.out_dir).check()  # refused as the batch would refuse it, nothing made
            estimate = estimate_batch(items, relay, max_cost=max_cost)
        else:
            Store(relay.out_dir).ensure()
            ledger = Ledger.open(relay.out_dir)
            ledger.lock()
    except ImageRelayError as exc:
        fail(exc, as_json=as_json)
    if dry_run:
        show_batch_estimate(estimate, as_json)
        raise typer.Exit(estimate.exit_code)
    relay.on_receipt.append(ledger.record_receipt)
    reporter: Reporter = RichProgress() if sys.stderr.isatty() else PlainProgress()

    async def run() -> BatchSummary:
        async with relay:
            return await run_batch(
                items,
                relay,
                ledger,
                concurrency=concurrency,
                max_cost=max_cost,
                reporter=reporter,
                remake=remake,
            )

    try:
        summary = asyncio.run(run())
    except KeyboardInterrupt:
        message = "interrupted: run the same command again to resume (finished images are kept)"
        if as_json:
            typer.echo(json.dumps({"error": message, "error_type": "Interrupted", "exit_code": 130}))
        err(message)
        raise typer.Exit(130) from None
    finally:
        ledger.close()
    show_batch(summary, as_json)
    raise typer.Exit(summary.exit_code)


@app.command()
def history(
    out: OutOpt = None,
    env: EnvOpt = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only from this date on: YYYY-MM-DD or an ISO date-time.")
    ] = None,
    provider: Annotated[
        str | None,
        typer.Option("--provider", "-p", callback=not_empty, help="Only this provider, or PROVIDER:MODEL."),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", help="Only what this gateway key spent (its name; 'local' without keys)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List past generations in an output directory, and what they cost."""
    from ..errors import ImageRelayError
    from ..ledger import Ledger

    try:
        directory = out if out is not None else load_settings(env).output.dir
        when = _parse_since(since)
        with Ledger.open(directory, create=False, read_only=True) as ledger:
            _check_filters(ledger, provider, key, env)
            rows = ledger.generations(since=when, provider=provider, gateway_key=key)
            ledger_path = str(ledger.path)
    except ImageRelayError as exc:
        fail(exc, as_json=as_json)
    show_history(rows, ledger_path, as_json)


def _check_filters(ledger: Any, provider: str | None, key: str | None, env: str | None) -> None:
    """A `--provider` or `--key` that names nothing known (a typo) is refused, not answered with
    an empty history that reads as "nothing was spent"."""
    import difflib

    from ..catalog import load_catalog
    from ..errors import InvalidRequest
    from ..gateway.config import LOCAL_KEY
    from ..planner import unknown_model, unknown_provider

    refs, keys = ledger.recorded()
    if provider and provider not in refs:
        catalog = load_catalog()
        name, sep, model = provider.partition(":")
        if name not in catalog.providers and name not in {r.partition(":")[0] for r in refs}:
            raise InvalidRequest(unknown_provider(provider, catalog))
        if sep and name in catalog.providers and model not in catalog.providers[name].models:
            raise InvalidRequest(unknown_model(name, model, catalog))
    if key is not None and key not in keys and key != LOCAL_KEY:
        configured = set(load_settings(env).gateway.keys)
        if key not in configured:
            known = sorted(keys | configured | {LOCAL_KEY})
            near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean {near[0]!r}?" if near else f"use one of {', '.join(known)}"
            raise InvalidRequest(f"unknown gateway key {key!r}: {hint}")


def _parse_since(value: str | None) -> Any:
    from datetime import UTC, datetime

    from ..errors import InvalidRequest

    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidRequest(f"--since {value!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@app.command()
def gallery(out: OutOpt = None, env: EnvOpt = None) -> None:
    """Write DIR/gallery.html: a self-contained contact sheet of the output directory."""
    from ..errors import ImageRelayError
    from ..gallery import write_gallery

    try:
        directory = out if out is not None else load_settings(env).output.dir
        result = write_gallery(directory)
    except ImageRelayError as exc:
        fail(exc)
    err(f"gallery of {result.images} image(s)")
    typer.echo(str(result.path))
