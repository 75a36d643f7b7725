"""What every command shares: settings and logging, errors → one line and an exit code, `main`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from .. import envvars
from .app import app

if TYPE_CHECKING:
    from ..catalog import Catalog
    from ..settings import Settings

__all__ = ["err", "fail", "load_settings", "main", "settings_and_catalog"]


def err(message: str) -> None:
    typer.echo(message, err=True)


def fail(exc: BaseException, *, as_json: bool = False, extra: dict[str, Any] | None = None) -> NoReturn:
    """Print one line for a known error and exit with its code (2 for user errors); with
    `as_json`, also one error object on stdout (`extra` keys added to it)."""
    from ..errors import GenerationFailed, ImageRelayError, SaveFailed

    code = int(exc.exit_code) if isinstance(exc, ImageRelayError) else 1
    if as_json:
        payload: dict[str, Any] = {"error": str(exc), "error_type": type(exc).__name__, "exit_code": code}
        if isinstance(exc, GenerationFailed | SaveFailed) and exc.receipt is not None:
            payload["receipt"] = json.loads(exc.receipt.model_dump_json())
        payload.update(extra or {})
        typer.echo(json.dumps(payload))
    line = f"error: {exc}"
    if isinstance(exc, GenerationFailed) and exc.receipt is not None and exc.receipt.attempts:
        line += f"; receipt: {exc.receipt_path or f'request {exc.receipt.id} in the ledger'}"
    err(line)
    if isinstance(exc, GenerationFailed) and exc.receipt is not None:
        for attempt in exc.receipt.attempts:
            status = f" HTTP {attempt.status}" if attempt.status else ""
            err(f"  {attempt.provider}:{attempt.model}: {attempt.outcome}{status} — {attempt.error or ''}")
    raise typer.Exit(code)


def load_settings(env: str | None, out: Path | None = None) -> Settings:
    """The settings of `env` (with `--out` over the configured directory), logging set up by them."""
    from ..settings import load_settings as load

    overrides: dict[str, Any] = {}
    if out is not None:
        overrides["output"] = {"dir": out}
    settings = load(env, **overrides)
    _setup_logging(settings.log_level)
    return settings


def settings_and_catalog(env: str | None, *, as_json: bool) -> tuple[Settings, Catalog]:
    """The settings of `env` and the catalog; a broken one of either ends the command (`fail`)."""
    from ..catalog import load_catalog
    from ..errors import ImageRelayError

    try:
        return load_settings(env), load_catalog()
    except ImageRelayError as exc:
        fail(exc, as_json=as_json)


def _setup_logging(level: str) -> None:
    import logging

    logger = logging.getLogger("imagerelay")
    ours = [h for h in logger.handlers if h.get_name() == "imagerelay-cli"]
    if ours:  # called again in one process (tests, scripts): write to today's stderr, not a closed one
        for handler in ours:
            if isinstance(handler, logging.StreamHandler):
                handler.stream = sys.stderr  # not setStream(): it flushes the old, maybe closed, one
    elif not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name("imagerelay-cli")
        handler.setFormatter(logging.Formatter("imagerelay: %(levelname)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level.upper())


def _json_error(message: str, error_type: str, code: int) -> None:
    """With --json on the command line, the one JSON object on stdout, for an error that reached
    the entry point (a usage error, an interrupt, a bug) before any command could print it."""
    args = sys.argv[1:]
    if "--json" in (args[: args.index("--")] if "--" in args else args):
        typer.echo(json.dumps({"error": message, "error_type": error_type, "exit_code": code}))


def main() -> None:
    """Console entry point: Typer, with usage errors and interrupts reduced to one line."""
    try:
        # Outside standalone mode, Typer *returns* the code of a `typer.Exit` instead of raising it.
        code = app(standalone_mode=False)
    except typer.TyperException as exc:  # usage errors: bad option value, unknown option …
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":
            if ctx is not None:  # help was asked for by giving no arguments
                typer.echo(ctx.get_help())
            raise SystemExit(0) from None
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        usage = exc.exit_code if exc.exit_code != 1 else 2
        _json_error(exc.format_message(), "UsageError", usage)
        err(f"error: {exc.format_message()}{hint}")
        raise SystemExit(usage) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except (typer.Abort, KeyboardInterrupt):
        _json_error("interrupted", "Interrupted", 130)
        err("interrupted")
        raise SystemExit(130) from None
    except Exception as exc:  # a bug of ours: one line, and the traceback only on request
        import os

        if os.environ.get(envvars.DEBUG):
            raise
        message = f"unexpected {type(exc).__name__}: {exc}"
        _json_error(message, type(exc).__name__, 1)
        err(f"error: {message} (set {envvars.DEBUG}=1 to see the traceback)")
        raise SystemExit(1) from None
    if isinstance(code, int) and code:
        raise SystemExit(code)
