"""The Typer applications the commands register on, and the options several commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import envvars
from ..gateway.cli import serve_app

__all__ = ["EnvOpt", "JsonOpt", "OutOpt", "app", "catalog_app", "config_app", "emulator_app"]

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

EnvOpt = Annotated[
    str | None,
    typer.Option("--env", envvar=envvars.ENV, help="Environment: development, production, sandbox …"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Output directory (default ./generated).")]
