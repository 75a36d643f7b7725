"""`imagerelay catalog check`: ask each provider what it serves today and compare with the catalog.

What each provider publishes about its models, and what is compared:

- xAI, `GET /v1/image-generation-models`: ids and aliases (a model gone, or now only an alias of
  another — renamed), models the catalog lacks, and `image_price` (1e-10 USD per image) against
  the catalog's base price (the default tier, the quality billed for a prompt alone).
- OpenAI, `GET /v1/models`: which image models exist (gone, or new).
- Replicate, `GET /v1/models/{owner}/{name}` for each catalog model: gone (404), and its
  `latest_version.openapi_schema` — every input the catalog would send must be a property, and
  the aspect ratios, tiers, formats, image count and reference count the catalog offers must be
  within the schema's enums and limits; and `GET /v1/collections/text-to-image` for models of
  the catalog's owners it lacks (Replicate lists no models by owner: the check says so).
- Gemini, `GET /v1beta/models` through the google-genai SDK (every page): image models gone or
  new, and the `inputTokenLimit` / `outputTokenLimit` the catalog records.

Each provider's check comes with its registration (`Provider.catalog_check`, an import path), as
its backend and emulator dialect do; a provider declared as data is checked by the check of the
wire API it reuses.

Nothing here runs during `generate`: only this command asks. `--write` turns the provider's
figures into an override file (`catalog_write`), never editing the shipped catalog.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx

from ..catalog import Catalog
from ..plugins import provider as registered
from .drift import Asking, Drift, ProviderCheck, Refused

__all__ = ["Asking", "Drift", "ProviderCheck", "Refused", "check_catalog", "exit_code", "render", "run"]


async def check_catalog(
    catalog: Catalog,
    providers: list[str],
    *,
    base_urls: dict[str, str],
    keys: dict[str, str],
    today: date,
    timeout: float = 30.0,
) -> list[ProviderCheck]:
    """Check `providers` (those without a key, or without a listing to ask, say why not)."""
    out: list[ProviderCheck] = []
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as http:
        for name in providers:
            spec = catalog.provider(name)
            check = ProviderCheck(name)
            out.append(check)
            # The check of the wire API it speaks: a provider declared as data reuses its backend's.
            asker = registered(spec.backend).catalog_checker()
            if asker is None:
                check.error = f"not checked: {name} publishes no model listing imagerelay can read yet"
                continue
            key = keys.get(name)
            if key is None:
                check.error = f"not asked: no key (set {spec.key_env})"
                continue
            headers = {"Authorization": f"Bearer {key}"}
            try:
                await asker(Asking(http, spec, base_urls[name], headers, check, today, key))
            except httpx.HTTPError as exc:
                check.error = f"could not ask {name}: {type(exc).__name__} ({check.url})"
            except Refused as exc:
                check.error = str(exc)
    return out


def run(settings: Any, catalog: Catalog, provider: str | None, today: date) -> list[ProviderCheck]:
    """Check one provider (`provider`) or every one, with the environment's keys and base URLs —
    in the sandbox, against an emulator started for the check."""
    import asyncio

    from ..errors import InvalidRequest
    from ..settings import load_keys

    names = list(catalog.providers)
    if provider is not None:
        if provider not in catalog.providers:
            raise InvalidRequest(f"unknown provider {provider!r}: use one of {', '.join(names)}")
        names = [provider]
    emulator = None
    if settings.sandbox:  # the same emulator as a sandbox run: a provider declared as data included
        from ..sandbox import start_sandbox

        emulator, sandboxed, placeholders = start_sandbox(catalog, settings)
        names = [n for n in names if n in placeholders]
        base_urls = {n: str(sandboxed.provider(n).base_url) for n in names}
        keys = {n: k.get_secret_value() for n, k in placeholders.items()}
    else:
        base_urls = {n: settings.provider(n).base_url or catalog.providers[n].base_url for n in names}
        keys = {n: k.get_secret_value() for n, k in load_keys(catalog.key_envs()).items()}
    try:
        return asyncio.run(check_catalog(catalog, names, base_urls=base_urls, keys=keys, today=today))
    finally:
        if emulator is not None:
            emulator.stop()


def render(checks: list[ProviderCheck]) -> list[str]:
    """One line per drift, grouped by provider and model: what the catalog says, what the provider says."""
    lines: list[str] = []
    for check in checks:
        if not check.asked:
            lines.append(f"{check.provider}: {check.error}")
            continue
        head = f"{check.provider} ({check.url})"
        if check.error:
            lines.append(f"{head}: {check.error}")
        notes = [f"  note: {note}" for note in check.notes]
        if not check.drifts:
            lines.append(f"{head}: {len(check.checked)} model(s) checked, no drift")
            lines.extend(notes)
            continue
        lines.append(f"{head}: {len(check.drifts)} drift(s)")
        lines.extend(notes)
        by_model: dict[str, list[Drift]] = {}
        for drift in check.drifts:
            by_model.setdefault(drift.model, []).append(drift)
        for model, drifts in by_model.items():
            lines.append(f"  {model}")
            for d in drifts:
                fix = "" if d.fix is not None else "  (fix by hand)"
                lines.append(f"    {d.kind}: catalog {d.catalog}; {check.provider} says {d.provider}{fix}")
    return lines


def exit_code(checks: list[ProviderCheck]) -> int:
    """0 nothing drifted, 1 something did, 2 no provider could be asked."""
    if not any(c.asked for c in checks):
        return 2
    return 1 if any(c.drifts for c in checks) else 0
