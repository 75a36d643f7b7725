"""Checks against a provider's model listing: xAI's (ids, aliases, prices) and OpenAI's (ids)."""

from __future__ import annotations

from typing import Any

from ..catalog import ModelSpec
from ..catalog_report import price_summary
from ..pricing import estimate_cost
from .drift import Asking, Drift, ProviderCheck, retire

__all__ = ["TICKS_PER_USD", "openai", "xai"]

#: OpenAI's listing is every model of the account: these ids are the image models.
_OPENAI_IMAGE_PREFIXES = ("gpt-image", "chatgpt-image", "dall-e")
TICKS_PER_USD = 10_000_000_000


async def xai(ask: Asking) -> None:
    """Compare the catalog with xAI's model listing: ids, aliases, prices."""
    spec, check, today = ask.spec, ask.check, ask.today
    check.url = f"{ask.base}/image-generation-models"
    data = await ask.get_json(check.url, "xai")
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
                        ref, "renamed", "a model of its own", f"an alias of {target}", retire(today, target)
                    )
                )
            else:
                check.drifts.append(Drift(ref, "gone", "active", "not listed", retire(today)))
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


async def openai(ask: Asking) -> None:
    """Compare the catalog with OpenAI's model listing: which image models exist."""
    spec, check, today = ask.spec, ask.check, ask.today
    check.url = f"{ask.base}/models"
    data = await ask.get_json(check.url, "openai")
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
            check.drifts.append(Drift(m.ref, "gone", "active", "not in GET /v1/models", retire(today)))
    for mid in sorted(images - set(spec.models)):
        check.drifts.append(Drift(f"{spec.name}:{mid}", "new", "no such model", "listed by GET /v1/models"))
