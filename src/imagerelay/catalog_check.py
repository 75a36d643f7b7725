"""`imagerelay catalog check`: ask each provider what it serves today and compare with the catalog.

What each provider publishes about its models, and what is compared:

- xAI, `GET /v1/image-generation-models`: ids and aliases (a model gone, or now only an alias of
  another — renamed), models the catalog lacks, and `image_price` (1e-10 USD per image) against
  the catalog's base price (the default tier, the quality billed for a prompt alone).
- OpenAI, `GET /v1/models`: which image models exist (gone, or new).
- Replicate, `GET /v1/models/{owner}/{name}` for each catalog model: gone (404), and its
  `latest_version.openapi_schema` — every input the catalog would send must be a property, and
  the aspect ratios, tiers, formats, image count and reference count the catalog offers must be
  within the schema's enums and limits.

Nothing here runs during `generate`: only this command asks. `--write` turns the provider's
figures into an override file (`catalog_write`), never editing the shipped catalog.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import httpx

from .catalog import Catalog, ModelSpec, ProviderSpec
from .catalog_report import price_summary
from .pricing import estimate_cost

__all__ = ["Drift", "ProviderCheck", "check_catalog", "exit_code", "render", "run"]

#: OpenAI's listing is every model of the account: these ids are the image models.
_OPENAI_IMAGE_PREFIXES = ("gpt-image", "chatgpt-image", "dall-e")
TICKS_PER_USD = 10_000_000_000


@dataclass
class Drift:
    """One difference between the catalog and what the provider says."""

    model: str  # provider:model
    kind: str  # gone | renamed | new | listed | price | aliases | field | enum | limit
    catalog: str
    provider: str
    #: Keys of the model's table that would make the catalog agree (None: fix it by hand).
    fix: dict[str, Any] | None = None


@dataclass
class ProviderCheck:
    """What asking one provider gave."""

    provider: str
    url: str = ""
    asked: bool = False
    error: str | None = None
    checked: list[str] = field(default_factory=list)  # catalog models the provider answered about
    drifts: list[Drift] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drifts": [asdict(d) for d in self.drifts]}


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
            asker = _ASKERS.get(spec.backend)
            if asker is None:
                check.error = f"not checked: {name} publishes no model listing imagerelay can read yet"
                continue
            key = keys.get(name)
            if key is None:
                check.error = f"not asked: no key (set {spec.key_env})"
                continue
            headers = {"Authorization": f"Bearer {key}"}
            try:
                await asker(http, spec, base_urls[name], headers, check, today)
            except httpx.HTTPError as exc:
                check.error = f"could not ask {name}: {type(exc).__name__} ({check.url})"
            except _Refused as exc:
                check.error = str(exc)
    return out


class _Refused(Exception):
    """The provider answered, but not with a listing (bad key, an error)."""


async def _get_json(http: httpx.AsyncClient, url: str, headers: dict[str, str], what: str) -> Any:
    resp = await http.get(url, headers=headers)
    if resp.status_code in (401, 403) or (resp.status_code == 400 and "key" in resp.text.lower()):
        raise _Refused(f"{what} refused the key ({resp.status_code}): check it")
    if resp.status_code != 200:
        raise _Refused(f"{what} answered {resp.status_code} to {url}")
    try:
        return resp.json()
    except ValueError:
        raise _Refused(f"{what} answered {url} with something that is not JSON") from None


def _plannable(spec: ProviderSpec, today: date) -> list[ModelSpec]:
    return [m for m in spec.models.values() if m.unavailable_reason(today) is None]


def _retire(today: date, replaced_by: str | None = None) -> dict[str, Any]:
    fix: dict[str, Any] = {"status": "retired", "shutdown": today}
    if replaced_by:
        fix["replaced_by"] = replaced_by
    return fix


# -- xAI ---------------------------------------------------------------------------------------


async def _xai(
    http: httpx.AsyncClient,
    spec: ProviderSpec,
    base: str,
    headers: dict[str, str],
    check: ProviderCheck,
    today: date,
) -> None:
    check.url = f"{base}/image-generation-models"
    data = await _get_json(http, check.url, headers, "xai")
    listed = {
        m["id"]: m for m in data.get("models", []) if isinstance(m, dict) and isinstance(m.get("id"), str)
    }
    check.asked = True
    alias_of = {a: mid for mid, m in listed.items() for a in m.get("aliases") or []}
    known = set(spec.models) | {a for m in spec.models.values() for a in m.aliases}
    for m in spec.models.values():
        ref = m.ref
        if m.unavailable_reason(today) is not None:
            if m.id in listed:
                check.drifts.append(
                    Drift(ref, "listed", f"{m.status} ({m.unavailable_reason(today)})", "listed as a model")
                )
            continue
        if m.id not in listed:
            if m.id in alias_of:
                target = alias_of[m.id]
                check.drifts.append(
                    Drift(
                        ref, "renamed", "a model of its own", f"an alias of {target}", _retire(today, target)
                    )
                )
            else:
                check.drifts.append(Drift(ref, "gone", "active", "not listed", _retire(today)))
            continue
        check.checked.append(ref)
        entry = listed[m.id]
        aliases = tuple(a for a in entry.get("aliases") or [] if isinstance(a, str))
        if set(aliases) != set(m.aliases):
            check.drifts.append(
                Drift(
                    ref,
                    "aliases",
                    ", ".join(m.aliases) or "none",
                    ", ".join(aliases) or "none",
                    {"aliases": list(aliases)},
                )
            )
        price = entry.get("image_price")
        if isinstance(price, int | float) and not isinstance(price, bool):
            _compare_price(check, m, price / TICKS_PER_USD)
    for mid, entry in listed.items():
        if mid not in known:
            price = entry.get("image_price")
            said = (
                f"offers it at ${price / TICKS_PER_USD:g}/image"
                if isinstance(price, int | float)
                else "offers it"
            )
            check.drifts.append(Drift(f"{spec.name}:{mid}", "new", "no such model", said))


def _compare_price(check: ProviderCheck, m: ModelSpec, usd: float) -> None:
    """xAI's `image_price` is the base price: the default tier, the quality billed for a prompt."""
    quality = m.default_quality or m.price.auto_quality.get("text")
    ours = estimate_cost(
        m.price, quality=quality, resolution=m.default_resolution, size=(1024, 1024)
    ).per_image
    if abs(ours - usd) <= 1e-9:
        return
    key = _price_key(m, quality)
    price_fix: dict[str, Any] = {"confirmed": True, "source": check.url}
    if key is None:
        price_fix["per_image"] = usd
    else:
        price_fix["per_image_by"] = {key: usd}
    check.drifts.append(
        Drift(
            m.ref, "price", f"${ours:g}/image ({price_summary(m)})", f"${usd:g}/image", {"price": price_fix}
        )
    )


def _price_key(m: ModelSpec, quality: str | None) -> str | None:
    """The `per_image_by` key the base price comes from, or None when it is `per_image`."""
    for key in (f"{quality},{m.default_resolution}", f"{quality}", f"{m.default_resolution}"):
        if key in m.price.per_image_by:
            return key
    return None


# -- OpenAI ------------------------------------------------------------------------------------


async def _openai(
    http: httpx.AsyncClient,
    spec: ProviderSpec,
    base: str,
    headers: dict[str, str],
    check: ProviderCheck,
    today: date,
) -> None:
    check.url = f"{base}/models"
    data = await _get_json(http, check.url, headers, "openai")
    ids = {m["id"] for m in data.get("data", []) if isinstance(m, dict) and isinstance(m.get("id"), str)}
    check.asked = True
    images = {i for i in ids if i.startswith(_OPENAI_IMAGE_PREFIXES)}
    for m in spec.models.values():
        gone = m.unavailable_reason(today)
        if gone is not None:
            if m.id in images:
                check.drifts.append(Drift(m.ref, "listed", gone, "listed by GET /v1/models"))
            continue
        if m.id in images:
            check.checked.append(m.ref)
        else:
            check.drifts.append(Drift(m.ref, "gone", "active", "not in GET /v1/models", _retire(today)))
    for mid in sorted(images - set(spec.models)):
        check.drifts.append(Drift(f"{spec.name}:{mid}", "new", "no such model", "listed by GET /v1/models"))


# -- Replicate ---------------------------------------------------------------------------------


async def _replicate(
    http: httpx.AsyncClient,
    spec: ProviderSpec,
    base: str,
    headers: dict[str, str],
    check: ProviderCheck,
    today: date,
) -> None:
    check.url = f"{base}/models/{{owner}}/{{name}}"
    for m in _plannable(spec, today):
        url = f"{base}/models/{m.path or m.id}"
        resp = await http.get(url, headers=headers)
        if resp.status_code in (401, 403):
            raise _Refused(f"replicate refused the token ({resp.status_code}): check it")
        check.asked = True
        if resp.status_code == 404:
            check.drifts.append(Drift(m.ref, "gone", "active", "404: no such model", _retire(today)))
            continue
        if resp.status_code != 200:
            raise _Refused(f"replicate answered {resp.status_code} to {url}")
        try:
            schemas = resp.json()["latest_version"]["openapi_schema"]["components"]["schemas"]
            props: dict[str, Any] = schemas["Input"]["properties"]
        except (ValueError, KeyError, TypeError):
            check.drifts.append(Drift(m.ref, "field", "an input schema", "no latest_version.openapi_schema"))
            continue
        check.checked.append(m.ref)
        _compare_schema(check, m, props, schemas)


def _enum(prop: dict[str, Any], schemas: dict[str, Any]) -> list[str] | None:
    """A property's enum, following Cog's `allOf: [{$ref}]` to the component that holds it."""
    if isinstance(prop.get("enum"), list):
        return [str(v) for v in prop["enum"]]
    for part in prop.get("allOf") or []:
        ref = part.get("$ref", "") if isinstance(part, dict) else ""
        target = schemas.get(ref.rsplit("/", 1)[-1]) if ref.startswith("#/components/schemas/") else None
        if isinstance(target, dict) and isinstance(target.get("enum"), list):
            return [str(v) for v in target["enum"]]
    return None


def _compare_schema(
    check: ProviderCheck, m: ModelSpec, props: dict[str, Any], schemas: dict[str, Any]
) -> None:
    for canonical, wire in m.fields.items():
        if wire not in props:
            check.drifts.append(Drift(m.ref, "field", f"sends {canonical} as `{wire}`", f"no input `{wire}`"))
    for name in m.fixed:
        if name not in props:
            check.drifts.append(Drift(m.ref, "field", f"always sends `{name}`", f"no input `{name}`"))
    missing = [x for x in m.extra_fields if x not in props]
    if missing:
        kept = [x for x in m.extra_fields if x in props]
        check.drifts.append(
            Drift(
                m.ref,
                "field",
                f"takes extras {', '.join(missing)}",
                f"no input {', '.join(f'`{x}`' for x in missing)}",
                {"extra_fields": kept},
            )
        )
    for canonical, offered, key in (
        ("aspect_ratio", m.aspect_ratios, "aspect_ratios"),
        ("resolution", m.resolutions, "resolutions"),
        ("output_format", m.output_formats, "output_formats"),
    ):
        wire = m.fields.get(canonical, "")
        prop = props.get(wire)
        enum = _enum(prop, schemas) if isinstance(prop, dict) else None
        if enum is None or not offered:
            continue
        extra = [v for v in offered if v not in enum]
        if extra:
            check.drifts.append(
                Drift(
                    m.ref,
                    "enum",
                    f"offers {canonical} {', '.join(extra)}",
                    f"`{wire}` takes {', '.join(enum)}",
                    {key: [v for v in offered if v in enum]},
                )
            )
    _compare_limit(check, m, props.get(m.fields.get("n", "")), "maximum", m.max_n, "max_n", "images per call")
    ref_prop = props.get(m.fields.get("reference", ""))
    if m.max_references > 1:
        _compare_limit(check, m, ref_prop, "maxItems", m.max_references, "max_references", "references")


def _compare_limit(
    check: ProviderCheck, m: ModelSpec, prop: Any, bound: str, ours: int, key: str, what: str
) -> None:
    if not isinstance(prop, dict) or not isinstance(prop.get(bound), int | float):
        return
    theirs = int(prop[bound])
    if ours > theirs:
        check.drifts.append(Drift(m.ref, "limit", f"up to {ours} {what}", f"{bound} {theirs}", {key: theirs}))


_ASKERS = {"xai": _xai, "openai": _openai, "replicate": _replicate}


# -- the command --------------------------------------------------------------------------------


def run(settings: Any, catalog: Catalog, provider: str | None, today: date) -> list[ProviderCheck]:
    """Check one provider (`provider`) or every one, with the environment's keys and base URLs —
    in the sandbox, against an emulator started for the check."""
    import asyncio

    from .errors import InvalidRequest
    from .settings import load_keys

    names = list(catalog.providers)
    if provider is not None:
        if provider not in catalog.providers:
            raise InvalidRequest(f"unknown provider {provider!r}: use one of {', '.join(names)}")
        names = [provider]
    emulator = None
    if settings.sandbox:
        from .emulator import Emulator

        emulator = Emulator(keys=None).start(port=0)
        base_urls = {n: emulator.base_url(n) for n in names}
        keys = {n: f"sandbox-{n}" for n in names}
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
        if not check.drifts:
            lines.append(f"{head}: {len(check.checked)} model(s) checked, no drift")
            continue
        lines.append(f"{head}: {len(check.drifts)} drift(s)")
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
