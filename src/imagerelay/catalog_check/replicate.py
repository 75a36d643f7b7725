"""Checks against Replicate's model pages: each model there, and its input schema taking what the
catalog sends (fields, enums, limits); and its text-to-image collection, for models the catalog
lacks."""

from __future__ import annotations

from typing import Any

from ..catalog import ModelSpec
from .drift import Asking, Drift, ProviderCheck, Refused, plannable, retire

__all__ = ["COLLECTION", "replicate"]


async def replicate(ask: Asking) -> None:
    """Compare each catalog model with its Replicate page: there, and taking what is sent."""
    spec, check, today = ask.spec, ask.check, ask.today
    check.url = f"{ask.base}/models/{{owner}}/{{name}}"
    for m in plannable(spec, today):
        url = f"{ask.base}/models/{m.path or m.id}"
        resp = await ask.http.get(url, headers=ask.headers)
        if resp.status_code in (401, 403):
            raise Refused(f"replicate refused the token ({resp.status_code}): check it")
        check.asked = True
        if resp.status_code == 404:
            check.drifts.append(Drift(m.ref, "gone", "active", "404: no such model", retire(today)))
            continue
        if resp.status_code != 200:
            raise Refused(f"replicate answered {resp.status_code} to {url}")
        try:
            schemas = resp.json()["latest_version"]["openapi_schema"]["components"]["schemas"]
            props: dict[str, Any] = schemas["Input"]["properties"]
        except (ValueError, KeyError, TypeError):
            check.drifts.append(Drift(m.ref, "field", "an input schema", "no latest_version.openapi_schema"))
            continue
        check.checked.append(m.ref)
        _compare_schema(check, m, props, schemas)
    await _offered(ask)


#: The curated collection whose models are compared with the catalog's. Replicate's API has no
#: listing of an owner's models, and `GET /v1/models` pages through every public model there is.
COLLECTION = "text-to-image"


async def _offered(ask: Asking) -> None:
    """Models of the catalog's owners that the text-to-image collection holds and the catalog lacks."""
    spec, check = ask.spec, ask.check
    paths = {m.path or m.id for m in spec.models.values()}
    owners = sorted({p.split("/", 1)[0] for p in paths})
    url = f"{ask.base}/collections/{COLLECTION}"
    resp = await ask.http.get(url, headers=ask.headers)
    try:
        models = resp.json()["models"] if resp.status_code == 200 else None
    except (ValueError, KeyError, TypeError):
        models = None
    if not isinstance(models, list):
        check.notes.append(
            f"models offered that the catalog lacks: not checked ({url} answered {resp.status_code})"
        )
        return
    check.notes.append(
        f"models offered that the catalog lacks: those of {', '.join(owners)} in Replicate's "
        f"{COLLECTION} collection; Replicate lists no models by owner, so one outside it is not seen"
    )
    for entry in models:
        if not isinstance(entry, dict):
            continue
        path = f"{entry.get('owner')}/{entry.get('name')}"
        if entry.get("owner") in owners and path not in paths:
            said = f"in the {COLLECTION} collection ({entry.get('url') or path})"
            check.drifts.append(Drift(f"{spec.name}:{path}", "new", "no such model", said))


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
