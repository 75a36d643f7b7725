"""What `imagerelay providers` shows: every model, its status, price basis and when it was checked."""

from __future__ import annotations

from datetime import date
from typing import Any

from .catalog import Catalog, ModelSpec
from .pricing import estimate_cost

__all__ = ["STALE_AFTER_DAYS", "model_rows", "one_image_usd", "price_summary", "render_rows"]

#: A model whose facts were checked longer ago than this is marked stale.
STALE_AFTER_DAYS = 90


def price_summary(model: ModelSpec) -> str:
    """The price as its basis states it, e.g. "$0.03 first MP, $0.015/MP more, $0.015/input MP"."""
    p = model.price
    if p.basis == "megapixels":
        first = p.output_first_mp if p.output_first_mp is not None else p.output_per_mp
        head = f"${first:g}/MP"
        if first != p.output_per_mp:
            head = f"${first:g} 1st MP, ${p.output_per_mp:g}/MP more"
        return f"{head}, ${p.input_per_mp:g}/input MP"
    if p.basis == "tokens":
        return (
            f"${p.input_text_per_mtok:g} text in, ${p.input_image_per_mtok:g} image in, "
            f"${p.output_image_per_mtok:g} image out /1M tokens"
        )
    if p.per_image_by:
        low, high = min(p.per_image_by.values()), max(p.per_image_by.values())
        head = f"${low:g}–{high:g}/image by {_tiers_of(p.per_image_by)}"
    else:
        head = f"${p.per_image:g}/image"
    return head + (f", ${p.per_input_image:g}/input image" if p.per_input_image else "")


def one_image_usd(model: ModelSpec) -> float:
    """One 1024x1024 image at the model's default quality and tier, as the planner estimates it."""
    one = estimate_cost(
        model.price, quality=model.default_quality, resolution=model.default_resolution, size=(1024, 1024)
    )
    return one.call(1)


def _tiers_of(by: dict[str, float]) -> str:
    keys = list(by)
    if all("," in k for k in keys):
        return "quality × resolution"
    return "tier"


def model_rows(catalog: Catalog, *, keys: set[str], sandbox: bool, today: date) -> list[dict[str, Any]]:
    """One row per model, as `providers --json` prints them."""
    rows: list[dict[str, Any]] = []
    for p in catalog.providers.values():
        for m in p.models.values():
            gone = m.unavailable_reason(today)
            deprecated = f"deprecated, shuts down {m.shutdown}"
            status = gone or (deprecated if m.status == "deprecated" else "active")
            age = (today - m.checked).days if m.checked else None
            rows.append(
                {
                    "model": m.ref,
                    "status": status,
                    "plannable": gone is None,
                    "modes": list(m.modes),
                    "max_references": m.max_references,
                    "max_n": m.max_n,
                    "aspect_ratios": list(m.aspect_ratios),
                    "resolutions": list(m.resolutions),
                    "sizes": list(m.sizes) + (["any WxH (rules)"] if m.size_rule else []),
                    "qualities": list(m.qualities),
                    "output_formats": list(m.output_formats),
                    "price": m.price.model_dump(exclude_defaults=True),
                    "price_basis": m.price.basis,
                    "price_confirmed": m.price.confirmed,
                    "price_summary": price_summary(m),
                    # One 1024x1024 image at the default quality and tier, as the planner estimates it.
                    "estimate_usd_1024": round(one_image_usd(m), 5),
                    "checked": m.checked.isoformat() if m.checked else None,
                    "checked_days_ago": age,
                    "stale": age is None or age > STALE_AFTER_DAYS,
                    "source": m.source,
                    "unconfirmed": list(m.unconfirmed),
                    "key_env": p.key_env,
                    "key_set": sandbox or p.name in keys,
                }
            )
    return rows


def render_rows(rows: list[dict[str, Any]]) -> list[str]:
    """The human table: one line per model, and a hint when some checks are stale."""
    lines = []
    for r in rows:
        key = "key set" if r["key_set"] else f"no key ({r['key_env']})"
        basis = {"image": "per image", "megapixels": "per MP", "tokens": "tokens"}[r["price_basis"]]
        cost = f"~${r['estimate_usd_1024']:.3f}/1024² {basis}" + ("" if r["price_confirmed"] else "*")
        checked = r["checked"] or "never"
        if r["stale"]:
            checked += " (stale)"
        modes = "+".join(r["modes"])
        lines.append(f"{r['model']:<46} {r['status']:<34} {modes:<20} {cost:<26} checked {checked:<19} {key}")
    lines.append("* price not confirmed by the provider: an estimate (see `imagerelay providers --json`)")
    if any(r["stale"] for r in rows if r["plannable"]):
        lines.append(
            f"(stale): checked more than {STALE_AFTER_DAYS} days ago — run `imagerelay catalog check`"
        )
    return lines
