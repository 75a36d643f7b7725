"""`imagerelay serve` and `imagerelay serve keys new NAME`. Light at import: Typer only."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["serve_app"]

serve_app = typer.Typer(
    help="Serve the OpenAI images API in front of every provider (point any OpenAI SDK at it).",
    invoke_without_command=True,
    no_args_is_help=False,
)
keys_app = typer.Typer(
    help="Gateway keys: the keys clients send (never the provider keys).", no_args_is_help=True
)
serve_app.add_typer(keys_app, name="keys")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _err(message: str) -> None:
    typer.echo(message, err=True)


@serve_app.callback()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (non-loopback needs a gateway key).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: any free one).")] = 8080,
    env: Annotated[
        str | None,
        typer.Option(
            "--env", envvar="IMAGERELAY_ENV", help="Environment: development, production, sandbox …"
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=64, help="Processes (each with its own relay).")
    ] = 1,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output directory: images, receipts, ledger (default ./generated)."),
    ] = None,
) -> None:
    """Serve the OpenAI images API (`/v1/images/generations`, `/v1/images/edits`, …) until SIGTERM."""
    if ctx.invoked_subcommand is not None:
        return
    from ..errors import ImageRelayError
    from ..settings import load_settings
    from .server import serve as run

    try:
        settings = load_settings(env, output=None if out is None else {"dir": out})
        code = run(settings, host=host, port=port, workers=workers)
    except ImageRelayError as exc:
        _err(f"error: {exc}")
        raise typer.Exit(exc.exit_code) from None
    raise typer.Exit(code)


@keys_app.command("new")
def keys_new(
    name: Annotated[str, typer.Argument(help="A name for the key (it is what the ledger records).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Make a gateway key: printed once, with the config lines that admit it (only its hash)."""
    from .config import LOCAL_KEY
    from .keys import hash_key, new_key

    if not _NAME.match(name) or name == LOCAL_KEY:
        _err(
            f"error: key name {name[:64]!r} is not a plain name (letters, digits, '_', '.', '-'; not 'local')"
        )
        raise typer.Exit(2)
    key = new_key()
    digest = hash_key(key)
    lines = [f"[gateway.keys.{name}]", f'hash = "{digest}"']
    if as_json:
        typer.echo(json.dumps({"name": name, "key": key, "hash": digest, "config": "\n".join(lines)}))
        return
    typer.echo(f"gateway key {name!r} (shown only now: store it where the client keeps secrets):")
    typer.echo(f"  {key}")
    typer.echo("admit it in your imagerelay config file:")
    for line in lines:
        typer.echo(f"  {line}")
    typer.echo(
        '  # optional: models = ["auto"], budget_per_day = 5.0, budget_per_month = 100.0, '
        "requests_per_minute = 60"
    )
    shown = json.dumps({name: {"hash": digest}})
    typer.echo(f"or in the environment: IMAGERELAY_GATEWAY__KEYS='{shown}'")
