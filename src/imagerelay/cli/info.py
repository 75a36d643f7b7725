"""Commands about the set-up, spending nothing: `providers`, `catalog check`, `config show`,
`emulator serve`."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .app import EnvOpt, JsonOpt, app, catalog_app, config_app, emulator_app
from .plumbing import err, fail, settings_and_catalog

__all__ = ["catalog_check", "config_show", "emulator_serve", "providers"]


@app.command()
def providers(env: EnvOpt = None, as_json: JsonOpt = False) -> None:
    """List every model: capabilities, status, price and its basis, when checked, and key status."""
    from datetime import date

    from ..catalog_report import model_rows, render_rows
    from ..settings import load_keys

    settings, catalog = settings_and_catalog(env, as_json=as_json)
    keys = set(load_keys(catalog.key_envs()))
    rows = model_rows(catalog, keys=keys, sandbox=settings.sandbox, today=date.today())
    if as_json:
        typer.echo(json.dumps(rows))
        return
    for line in render_rows(rows):
        typer.echo(line)


@catalog_app.command("check")
def catalog_check(
    provider: Annotated[
        str | None, typer.Option("--provider", "-p", help="Only this provider (see `imagerelay providers`).")
    ] = None,
    write: Annotated[
        bool,
        typer.Option("--write", help="Save the providers' figures as an override in your config directory."),
    ] = False,
    env: EnvOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask each provider with a key what it serves and compare: exit 0 no drift, 1 drift, 2 none asked."""
    from datetime import date

    from .. import catalog_check as check
    from ..catalog import load_catalog
    from ..errors import ImageRelayError

    today = date.today()
    settings, catalog = settings_and_catalog(env, as_json=as_json)
    try:
        if write:
            from ..catalog_write import override_dir

            override_dir()  # refuse before asking anyone when there is nowhere to write
        checks = check.run(settings, catalog, provider, today)
        code = check.exit_code(checks)
        written: list[str] = []
        if write and code != 2:
            from ..catalog_write import write_overrides

            written = [str(p) for p in write_overrides(checks, today)]
            load_catalog()  # what was written must still load (a ConfigError names the file)
    except ImageRelayError as exc:
        fail(exc, as_json=as_json)
    if as_json:
        payload = {"providers": [c.to_dict() for c in checks], "written": written, "exit_code": code}
        typer.echo(json.dumps(payload, default=str))
    else:
        for line in check.render(checks):
            typer.echo(line)
    for path in written:
        err(f"wrote {path}")
    if code == 1 and not write:
        err("run again with --write to save the providers' figures as an override of the catalog")
    if code == 2:
        err("error: no provider could be asked: set a provider's key, or use --env sandbox")
    raise typer.Exit(code)


@config_app.command("show")
def config_show(env: EnvOpt = None, as_json: JsonOpt = False) -> None:
    """Print the effective settings of an environment (keys masked)."""
    from ..settings import config_files, key_sources

    settings, catalog = settings_and_catalog(env, as_json=as_json)
    data = settings.model_dump(mode="json")
    data["files"] = [str(p) for p in config_files(settings.env)]  # merged in this order, later wins
    sources = key_sources(catalog.key_envs())

    def masked(name: str) -> str:
        secret = sources[name][1].get_secret_value()
        return f"set (…{secret[-4:]})" if len(secret) >= 16 else "set"  # a short key's tail is most of it

    keys: dict[str, str] = {}
    for p in catalog.providers.values():
        if settings.sandbox:
            keys[p.key_env] = "not needed (sandbox)"
        elif p.name in sources:  # the variable actually read (GOOGLE_API_KEY when GEMINI_API_KEY is unset)
            keys[sources[p.name][0]] = masked(p.name)
        else:
            keys[p.key_env] = "not set"
    data["keys"] = keys
    typer.echo(json.dumps(data, indent=None if as_json else 2))


@emulator_app.command("serve")
def emulator_serve(
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free one).")
    ] = 8765,
) -> None:
    """Run the emulator in the foreground (Ctrl-C to stop)."""
    from ..emulator import serve

    try:
        serve(port=port)
    except OSError as exc:
        err(f"error: cannot listen on 127.0.0.1:{port} ({exc.strerror}): pass another --port")
        raise typer.Exit(2) from None
