"""The Typer applications the commands register on, and the options several commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import envvars
from ..gateway.cli import serve_app

__all__ = ["EnvOpt", "JsonOpt", "OutOpt", "app", "catalog_app", "config_app", "emulator_app", "not_empty"]

app = typer.Typer(
    name="imagerelay",
    help="Generate images through every installed provider's image API (`imagerelay providers` lists "
    "them): planned, translated, with fallback and receipts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
emulator_app = typer.Typer(help="The offline stand-in for every provider's API.", no_args_is_help=True)
catalog_app = typer.Typer(
    help="Check the catalog against what the providers serve today.", no_args_is_help=True
)
app.add_typer(config_app, name="config")
app.add_typer(catalog_app, name="catalog")
app.add_typer(emulator_app, name="emulator")
app.add_typer(serve_app, name="serve")


def not_empty(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    """Refuse an empty option value typed on the command line (`--env ""`): it would quietly mean
    the default. An empty environment variable still means unset."""
    if value is None or value.strip() or param.name is None:
        return value
    source = ctx.get_parameter_source(param.name)
    if source is not None and source.name == "COMMANDLINE":  # Typer's own click: compare by name
        flag = max(param.opts, key=len)
        raise typer.BadParameter(f"{flag} is empty: give a value, or leave {flag} out for the default")
    return value


def _directory(value: str) -> Path:
    # Path("") is ".": an empty --out would write into the working directory unasked.
    if not value.strip():
        raise typer.BadParameter("--out is empty: give a directory, or leave --out out for ./generated")
    return Path(value)


EnvOpt = Annotated[
    str | None,
    typer.Option(
        "--env",
        envvar=envvars.ENV,
        callback=not_empty,
        help="Environment: development, production, sandbox …",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", "-o", parser=_directory, help="Output directory (default ./generated)."),
]
