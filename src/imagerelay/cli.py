"""The `imagerelay` command line.

Human output goes to stderr, the saved paths (or, with --json, exactly one JSON value) to
stdout. Exit codes (`errors.ExitCode`, the README's table): 0 done; 1 not done at run time (no
image, over budget, paid output not writable); 2 refused before anything was spent, with one
line naming the problem and the fix; 3 partial (some images or items, not all); 130 Ctrl-C.

Only Typer is imported at start-up: the relay, pydantic, the SDKs and Pillow load inside the
commands that need them, so `imagerelay --help` stays instant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from . import envvars
from .gateway.cli import serve_app

if TYPE_CHECKING:
    from .planner import Plan
    from .receipt import Receipt
    from .settings import Settings

app = typer.Typer(
    name="imagerelay",
    help="Generate images through xAI, OpenAI, Replicate or Gemini: planned, translated, with fallback and "
    "receipts.",
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


def _err(message: str) -> None:
    typer.echo(message, err=True)


def _fail(exc: BaseException, *, as_json: bool = False, extra: dict[str, Any] | None = None) -> NoReturn:
    """Print one line for a known error and exit with its code (2 for user errors); with
    `as_json`, also one error object on stdout (`extra` keys added to it)."""
    from .errors import GenerationFailed, ImageRelayError, SaveFailed

    code = int(exc.exit_code) if isinstance(exc, ImageRelayError) else 1
    if as_json:
        payload: dict[str, Any] = {"error": str(exc), "error_type": type(exc).__name__, "exit_code": code}
        if isinstance(exc, GenerationFailed | SaveFailed) and exc.receipt is not None:
            payload["receipt"] = json.loads(exc.receipt.model_dump_json())  # type: ignore[attr-defined]
        payload.update(extra or {})
        typer.echo(json.dumps(payload))
    _err(f"error: {exc}")
    if isinstance(exc, GenerationFailed) and exc.receipt is not None:
        for attempt in exc.receipt.attempts:  # type: ignore[attr-defined]
            status = f" HTTP {attempt.status}" if attempt.status else ""
            _err(f"  {attempt.provider}:{attempt.model}: {attempt.outcome}{status} — {attempt.error or ''}")
    raise typer.Exit(code)


def _settings(env: str | None, out: Path | None = None) -> Settings:
    from .settings import load_settings

    overrides: dict[str, Any] = {}
    if out is not None:
        overrides["output"] = {"dir": out}
    settings = load_settings(env, **overrides)
    _setup_logging(settings.log_level)
    return settings


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


def _parse_extras(values: list[str]) -> dict[str, dict[str, Any]]:
    from .errors import InvalidRequest

    extras: dict[str, dict[str, Any]] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        provider, dot, field = key.partition(".")
        if not sep or not dot or not provider or not field:
            raise InvalidRequest(
                f"--extra {item!r} is not PROVIDER.FIELD=VALUE (e.g. replicate.go_fast=false)"
            )
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        extras.setdefault(provider, {})[field] = value
    return extras


def _request(**fields: Any) -> Any:
    """An ImageRequest, with pydantic's complaint turned into one plain line (exit 2)."""
    from pydantic import ValidationError

    from .errors import InvalidRequest
    from .request import ImageRequest

    try:
        return ImageRequest(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = str(err.get("ctx", {}).get("error") or err["msg"]).removeprefix("Value error, ")
        loc = ".".join(str(p) for p in err["loc"])
        if loc and not err.get("ctx", {}).get("error"):  # pydantic's own words: say which option
            msg = f"{loc}: {err['msg']}"
        raise InvalidRequest(msg) from None


ProviderOpt = Annotated[
    str,
    typer.Option("--provider", "-p", help="auto, a provider (see `imagerelay providers`) or PROVIDER:MODEL."),
]
ReferenceOpt = Annotated[
    list[str] | None,
    typer.Option("--reference", "-r", help="Reference image: a path or an https URL. Repeatable."),
]
MaskOpt = Annotated[str | None, typer.Option("--mask", help="PNG mask (transparent = edit here).")]
NOpt = Annotated[int, typer.Option("-n", "--n", help="Number of images (1–10).")]
SizeOpt = Annotated[str | None, typer.Option("--size", help="WIDTHxHEIGHT; translated per model.")]
RatioOpt = Annotated[str | None, typer.Option("--aspect-ratio", "-a", help="W:H, e.g. 16:9.")]
ResOpt = Annotated[str | None, typer.Option("--resolution", help="1k, 2k or 4k (models with tiers).")]
QualityOpt = Annotated[
    str | None, typer.Option("--quality", help="low, medium, high (xhigh, max on models that offer them).")
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed, for models that take one.")]
FormatOpt = Annotated[str | None, typer.Option("--format", "-f", help="png, jpeg or webp.")]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Output directory (default ./generated).")]
MaxCostOpt = Annotated[
    float | None,
    typer.Option("--max-cost", help="Never start a call that could take the request over this (USD)."),
]
ExtraOpt = Annotated[
    list[str] | None, typer.Option("--extra", help="Provider field: PROVIDER.FIELD=VALUE. Repeatable.")
]


@app.command()
def generate(
    prompt: Annotated[str, typer.Argument(help="What the image should show.")],
    provider: ProviderOpt = "auto",
    reference: ReferenceOpt = None,
    mask: MaskOpt = None,
    n: NOpt = 1,
    size: SizeOpt = None,
    aspect_ratio: RatioOpt = None,
    resolution: ResOpt = None,
    quality: QualityOpt = None,
    seed: SeedOpt = None,
    format: FormatOpt = None,
    out: OutOpt = None,
    env: EnvOpt = None,
    max_cost: MaxCostOpt = None,
    extra: ExtraOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and its cost; send nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Generate images and save them with a receipt."""
    from .errors import ExitCode, ImageRelayError

    try:
        req = _request(
            prompt=prompt,
            provider=provider,
            references=tuple(reference or ()),
            mask=mask,
            n=n,
            size=size,
            aspect_ratio=aspect_ratio,
            resolution=resolution,
            quality=quality,
            seed=seed,
            output_format="jpeg" if format == "jpg" else format,
            extras=_parse_extras(extra or []),
        )
        settings = _settings(env, out)
        if dry_run:
            _dry_run(settings, req, max_cost, as_json)
            return
        receipt = _run_generate(settings, req, max_cost)
    except ImageRelayError as exc:
        _fail(exc, as_json=as_json)
    except _Interrupted as exc:
        _show_interrupted(exc.receipt, settings.output.dir, as_json)
        raise typer.Exit(130) from None
    # Fewer images than asked for is not success: a script must be able to tell (exit 3).
    code = ExitCode.PARTIAL if len(receipt.images) < req.n else ExitCode.OK
    _show_receipt(receipt, as_json, code)
    if code:
        _err(
            f"partial: {len(receipt.images)} of {req.n} image(s) saved (exit {int(code)}); "
            f"ask again with -n {req.n - len(receipt.images)} for the rest"
        )
        raise typer.Exit(code)


class _Interrupted(Exception):
    """Ctrl-C during a generation; `receipt` is what it had done (None if nothing was started)."""

    def __init__(self, receipt: Receipt | None) -> None:
        super().__init__("interrupted")
        self.receipt = receipt


def _show_interrupted(receipt: Receipt | None, out: Path, as_json: bool) -> None:
    """One line: what was spent, what may be billed, what became of the call in flight, the receipt."""
    if receipt is None:
        _err("interrupted before anything was sent: nothing was spent")
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
    parts = [f"{_cost_text(receipt)} spent on {len(receipt.images)} saved image(s)"]
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
        found = sorted(out.glob(f"*-{receipt.id[:8]}-0-failed.json"))
        where = str(found[0]) if found else f"request {receipt.id} in the ledger"
    _err(f"interrupted: {'; '.join(parts)}; receipt: {where}")
    if not as_json:
        for image in receipt.images:  # saved before the interruption: still the user's
            typer.echo(image.path)


@app.command()
def plan(
    prompt: Annotated[str, typer.Argument(help="What the image should show.")],
    provider: ProviderOpt = "auto",
    reference: ReferenceOpt = None,
    mask: MaskOpt = None,
    n: NOpt = 1,
    size: SizeOpt = None,
    aspect_ratio: RatioOpt = None,
    resolution: ResOpt = None,
    quality: QualityOpt = None,
    seed: SeedOpt = None,
    format: FormatOpt = None,
    env: EnvOpt = None,
    max_cost: MaxCostOpt = None,
    extra: ExtraOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show which models would be tried, translated how, at what cost — and send nothing."""
    generate(
        prompt=prompt, provider=provider, reference=reference, mask=mask, n=n, size=size,
        aspect_ratio=aspect_ratio, resolution=resolution, quality=quality, seed=seed, format=format,
        out=None, env=env, max_cost=max_cost, extra=extra, dry_run=True, as_json=as_json,
    )  # fmt: skip


def _plan(settings: Settings, req: Any, max_cost: float | None) -> Plan:
    from .references import load_mask, load_reference
    from .relay import Relay

    # Local references are checked now, so a dry run catches a missing file; URLs are not fetched.
    for i, source in enumerate(req.references, 1):
        if "://" not in source:
            load_reference(source, label=f"reference {i}")
    if req.mask and "://" not in req.mask:
        load_mask(req.mask)
    return Relay(settings).plan(req, max_cost=max_cost)


def _dry_run(settings: Settings, req: Any, max_cost: float | None, as_json: bool) -> None:
    """Show the plan; when no model can serve it, fail as `generate` would (same error and code)."""
    from .errors import ImageRelayError
    from .relay import refuse_empty_plan

    p = _plan(settings, req, max_cost)
    try:
        refuse_empty_plan(p, max_cost if max_cost is not None else settings.budget.max_cost_per_request)
    except ImageRelayError as exc:
        if not as_json:
            _show_plan(p, as_json=False)
        _fail(exc, as_json=as_json, extra={"plan": p.to_dict()})
    _show_plan(p, as_json)


def _run_generate(settings: Settings, req: Any, max_cost: float | None) -> Receipt:
    import asyncio

    from .relay import Relay

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


def _show_plan(p: Plan, as_json: bool) -> None:
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


def _show_receipt(receipt: Receipt, as_json: bool, code: int = 0) -> None:
    if as_json:
        typer.echo(json.dumps({**json.loads(receipt.model_dump_json()), "exit_code": int(code)}))
        return
    for image in receipt.images:
        typer.echo(image.path)
    first = receipt.images[0]
    _err(
        f"saved {len(receipt.images)} image(s) from {receipt.provider}:{receipt.model} "
        f"({first.width}x{first.height} {first.format}), cost {_cost_text(receipt)}"
    )
    for note in receipt.notes:
        _err(f"  note: {note}")
    failed = [a for a in receipt.attempts if a.outcome != "success"]
    for a in failed:
        _err(f"  attempt {a.provider}:{a.model}: {a.outcome} — {a.error}")
    _err(f"receipt: {first.receipt_path}")


def _cost_text(receipt: Receipt) -> str:
    """`$0.0200`, `$0.0200 (estimated)`, or `$0 (sandbox; would be $0.0200)`."""
    if receipt.sandbox:
        return f"$0 (sandbox; would be ${receipt.would_cost_usd or 0.0:.4f})"
    return f"${receipt.cost_usd:.4f}" + ("" if receipt.reported_cost_usd is not None else " (estimated)")


@app.command()
def providers(env: EnvOpt = None, as_json: JsonOpt = False) -> None:
    """List every model: capabilities, status, price and its basis, when checked, and key status."""
    from datetime import date

    from .catalog import load_catalog
    from .catalog_report import model_rows, render_rows
    from .errors import ImageRelayError
    from .settings import load_keys

    try:
        settings = _settings(env)
        catalog = load_catalog()
    except ImageRelayError as exc:
        _fail(exc, as_json=as_json)
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

    from . import catalog_check as check
    from .catalog import load_catalog
    from .errors import ImageRelayError

    today = date.today()
    try:
        settings = _settings(env)
        catalog = load_catalog()
        if write:
            from .catalog_write import override_dir

            override_dir()  # refuse before asking anyone when there is nowhere to write
        checks = check.run(settings, catalog, provider, today)
        code = check.exit_code(checks)
        written: list[str] = []
        if write and code != 2:
            from .catalog_write import write_overrides

            written = [str(p) for p in write_overrides(checks, today)]
            load_catalog()  # what was written must still load (a ConfigError names the file)
    except ImageRelayError as exc:
        _fail(exc, as_json=as_json)
    if as_json:
        payload = {"providers": [c.to_dict() for c in checks], "written": written, "exit_code": code}
        typer.echo(json.dumps(payload, default=str))
    else:
        for line in check.render(checks):
            typer.echo(line)
    for path in written:
        _err(f"wrote {path}")
    if code == 1 and not write:
        _err("run again with --write to save the providers' figures as an override of the catalog")
    if code == 2:
        _err("error: no provider could be asked: set a provider's key, or use --env sandbox")
    raise typer.Exit(code)


@config_app.command("show")
def config_show(env: EnvOpt = None, as_json: JsonOpt = False) -> None:
    """Print the effective settings of an environment (keys masked)."""
    from .catalog import load_catalog
    from .errors import ImageRelayError
    from .settings import config_files, load_keys

    try:
        settings = _settings(env)
        catalog = load_catalog()
    except ImageRelayError as exc:
        _fail(exc, as_json=as_json)
    data = settings.model_dump(mode="json")
    data["files"] = [str(p) for p in config_files(settings.env)]  # merged in this order, later wins
    keys = load_keys(catalog.key_envs())

    def masked(name: str) -> str:
        if name not in keys:
            return "not set"
        secret = keys[name].get_secret_value()
        return f"set (…{secret[-4:]})" if len(secret) >= 16 else "set"  # a short key's tail is most of it

    data["keys"] = {
        p.key_env: masked(p.name) if not settings.sandbox else "not needed (sandbox)"
        for p in catalog.providers.values()
    }
    typer.echo(json.dumps(data, indent=None if as_json else 2))


@emulator_app.command("serve")
def emulator_serve(
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free one).")
    ] = 8765,
) -> None:
    """Run the emulator in the foreground (Ctrl-C to stop)."""
    from .emulator import serve

    try:
        serve(port=port)
    except OSError as exc:
        _err(f"error: cannot listen on 127.0.0.1:{port} ({exc.strerror}): pass another --port")
        raise typer.Exit(2) from None


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
) -> None:
    """Generate every item of a manifest; run it again to resume where it stopped, paying nothing twice."""
    import asyncio

    from .batch import BatchSummary, PlainProgress, Reporter, RichProgress, run_batch
    from .errors import ImageRelayError
    from .ledger import Ledger
    from .manifest import load_manifest
    from .relay import Relay
    from .store import Store

    try:
        settings = _settings(env, out)
        relay = Relay(settings, record=False)  # the batch's own ledger records, below
        # Every item is checked (and planned) before anything is sent or any file is written.
        items = load_manifest(manifest, plan=relay.plan)
        Store(relay.out_dir).ensure()
        ledger = Ledger.open(relay.out_dir)
        ledger.lock()
    except ImageRelayError as exc:
        _fail(exc, as_json=as_json)
    relay.on_receipt.append(ledger.record_receipt)
    reporter: Reporter = RichProgress() if sys.stderr.isatty() else PlainProgress()

    async def run() -> BatchSummary:
        async with relay:
            return await run_batch(
                items, relay, ledger, concurrency=concurrency, max_cost=max_cost, reporter=reporter
            )

    try:
        summary = asyncio.run(run())
    except KeyboardInterrupt:
        message = "interrupted: run the same command again to resume (finished images are kept)"
        if as_json:
            typer.echo(json.dumps({"error": message, "error_type": "Interrupted", "exit_code": 130}))
        _err(message)
        raise typer.Exit(130) from None
    finally:
        ledger.close()
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
    _err(
        f"batch: {summary.done} done, {summary.skipped} already done, {summary.failed} failed, "
        f"{summary.remaining} not started, of {summary.items}; {spend}"
    )
    for failure in summary.failures:
        _err(f"  failed: {failure['item']}: {failure['error']}")
    if summary.stopped:
        _err(f"stopped: {summary.stopped}")  # the budget, or an output that cannot be written
    if summary.failed:
        _err("run the same command again to retry the failed items")
    _err(f"ledger: {summary.ledger}")
    raise typer.Exit(summary.exit_code)


@app.command()
def history(
    out: OutOpt = None,
    env: EnvOpt = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only from this date on: YYYY-MM-DD or an ISO date-time.")
    ] = None,
    provider: Annotated[
        str | None, typer.Option("--provider", "-p", help="Only this provider, or PROVIDER:MODEL.")
    ] = None,
    key: Annotated[
        str | None,
        typer.Option("--key", help="Only what this gateway key spent (its name; 'local' without keys)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List past generations in an output directory, and what they cost."""
    from .errors import ImageRelayError
    from .ledger import Ledger

    try:
        directory = out if out is not None else _settings(env).output.dir
        when = _parse_since(since)
        with Ledger.open(directory, create=False) as ledger:
            rows = ledger.generations(since=when, provider=provider, gateway_key=key)
            ledger_path = str(ledger.path)
    except ImageRelayError as exc:
        _fail(exc, as_json=as_json)
    total = sum(r.cost_usd for r in rows)
    images = sum(r.images for r in rows)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "generations": [r.to_dict() for r in rows],
                    "count": len(rows),
                    "images": images,
                    "total_usd": round(total, 6),
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
        typer.echo(
            f"{r.created_at[:16].replace('T', ' ')}  {model:<44} {r.images:>2} img  {cost:>10}  {prompt}"
        )
    typer.echo(
        f"{len(rows)} generation(s), {images} image(s), ${total:.4f} in all"
        + (" (* estimated)" if any(not r.reported for r in rows) else "")
    )


def _parse_since(value: str | None) -> Any:
    from datetime import UTC, datetime

    from .errors import InvalidRequest

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
    from .errors import ImageRelayError
    from .gallery import write_gallery

    try:
        directory = out if out is not None else _settings(env).output.dir
        result = write_gallery(directory)
    except ImageRelayError as exc:
        _fail(exc)
    _err(f"gallery of {result.images} image(s)")
    typer.echo(str(result.path))


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
        _err(f"error: {exc.format_message()}{hint}")
        raise SystemExit(usage) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except (typer.Abort, KeyboardInterrupt):
        _json_error("interrupted", "Interrupted", 130)
        _err("interrupted")
        raise SystemExit(130) from None
    except Exception as exc:  # a bug of ours: one line, and the traceback only on request
        import os

        if os.environ.get(envvars.DEBUG):
            raise
        message = f"unexpected {type(exc).__name__}: {exc}"
        _json_error(message, type(exc).__name__, 1)
        _err(f"error: {message} (set {envvars.DEBUG}=1 to see the traceback)")
        raise SystemExit(1) from None
    if isinstance(code, int) and code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
