"""Sizes: how a request's size or aspect ratio becomes what a model takes, and what it will make.

Models take one of three shapes of request (see `providers/*.toml`): a pixel size from a list
(`sizes`), any size within a rule (`size_rule`), or an aspect ratio with a resolution tier
(`aspect_ratios`, `resolutions`). Tiers are by *area* (`resolution_megapixels`): xAI's 1k is about
one megapixel at any ratio, 2k about four; FLUX.2 names its tiers in megapixels. When a size is
asked of a tiered model, the smallest tier that makes at least as many pixels is chosen, and the
plan says so when no tier can.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .catalog import ModelSpec, SizeRule, nearest_ratio
from .request import ImageRequest, parse_aspect_ratio, parse_size

if TYPE_CHECKING:
    from .catalog import TierRule

__all__ = ["fit_rule", "output_size", "shape"]

Size = tuple[int, int]
_MEGAPIXEL = 1024 * 1024
#: What a model without tiers is taken to make at an aspect ratio (FLUX.1: about one megapixel).
_DEFAULT_MEGAPIXELS = 1.0


def tier_size(model: ModelSpec, ratio: float, tier: str | None) -> Size:
    """The pixel size `model` makes at `ratio` and resolution `tier` (its default when None)."""
    tier = tier or model.default_resolution
    mp = model.resolution_megapixels.get(tier or "", _DEFAULT_MEGAPIXELS)
    return area_size(ratio, mp * _MEGAPIXEL, model.tier_rule)


def area_size(ratio: float, area: float, rule: TierRule | None) -> Size:
    """A size of about `area` pixels at `ratio`, following `rule` (side multiple, caps, rounding)."""
    multiple = rule.multiple if rule else 16
    w = math.sqrt(area * ratio)
    h = area / w
    if rule is not None and rule.max_side and max(w, h) > rule.max_side:
        scale = rule.max_side / max(w, h)
        w, h = w * scale, h * scale
    down = rule is not None and rule.round == "down"

    def snap(v: float) -> int:
        steps = math.floor(v / multiple + 1e-9) if down else round(v / multiple)
        return max(multiple, steps * multiple)

    sw, sh = snap(w), snap(h)
    if rule is not None and rule.max_pixels and sw * sh > rule.max_pixels:
        sw = max(multiple, math.floor(w / multiple) * multiple)
        sh = max(multiple, math.floor(h / multiple) * multiple)
    return sw, sh


def output_size(
    model: ModelSpec, params: dict[str, Any], references: Sequence[Size | None] = ()
) -> tuple[Size, list[Size]]:
    """(the size `model` will most likely make for `params`, other sizes it may choose).

    The second list is not empty only where the provider decides after the call: `size=auto`
    on a model with fixed sizes, which follows the reference's shape.
    """
    first = references[0] if references else None
    if model.accepts("size"):
        size = params.get("size")
        if size and size != "auto":
            return parse_size(size), []
        choices = [parse_size(s) for s in model.sizes] or [(1024, 1024)]
        target = first[0] / first[1] if first else 1.0
        best = min(choices, key=lambda s: abs(math.log(s[0] / s[1] / target)))
        return best, [s for s in choices if s != best]
    ratio_name = params.get("aspect_ratio") or model.default_aspect_ratio
    ratio = _ratio_value(ratio_name, first)
    return tier_size(model, ratio, params.get("resolution")), []


def _ratio_value(name: str | None, reference: Size | None) -> float:
    if name in (None, "auto", "match_input_image"):
        return reference[0] / reference[1] if reference else 1.0
    try:
        return parse_aspect_ratio(name)
    except ValueError:
        return 1.0


def shape(request: ImageRequest, model: ModelSpec, params: dict[str, Any], notes: list[str]) -> None:
    """Translate `size` / `aspect_ratio` into what the model takes (size, or ratio + resolution)."""
    if request.size in (None, "auto") and request.aspect_ratio in (None, "auto"):
        return
    if request.size and request.size != "auto":
        w, h = parse_size(request.size)
        target = w / h
        label = request.size
    else:
        assert request.aspect_ratio is not None
        target = parse_aspect_ratio(request.aspect_ratio)
        w = h = 0
        label = request.aspect_ratio

    if model.accepts("size"):
        size = _fit_size(model, w, h, target)
        params["size"] = size
        if size != label:
            notes.append(f"{label} → {size}: the nearest size {model.id} takes")
        _fewer_pixels(model, params, w, h, notes, "the nearest size it takes")
        return
    if model.accepts("aspect_ratio") and model.aspect_ratios:
        ratio = label if label in model.aspect_ratios else nearest_ratio(target, model.aspect_ratios)
        if ratio is None:
            notes.append(f"{label} dropped: {model.id} has no matching aspect ratio")
            return
        params["aspect_ratio"] = ratio
        change = [] if ratio == label else [ratio]
        why_small = f"the most {model.id} makes at {ratio}"
        if w and model.accepts("resolution") and model.resolutions:
            # An explicit resolution wins over the tier the size suggests; the note says which.
            asked = resolution_for(model, request.resolution) if request.resolution else None
            if asked is not None:
                tier = asked
                why_small = f"resolution {request.resolution} was asked for"
            else:
                tier = _tier_for_pixels(model, parse_aspect_ratio(ratio), w * h)
            params["resolution"] = tier
            change.append(f"@{tier}")
        if change:
            why = (
                f"{model.id} takes aspect ratios, not sizes"
                if w
                else f"the nearest aspect ratio {model.id} offers"
            )
            notes.append(f"{label} → {' '.join(change)}: {why}")
        _fewer_pixels(model, params, w, h, notes, why_small)
        return
    notes.append(f"{label} dropped: {model.id} has a fixed output size")


def _fewer_pixels(
    model: ModelSpec, params: dict[str, Any], w: int, h: int, notes: list[str], why: str
) -> None:
    """Say so when the model will make fewer pixels than the size asked for."""
    if not w:
        return
    (ow, oh), _ = output_size(model, params)
    if ow * oh < w * h:
        notes.append(f"{w}x{h} asked, about {ow}x{oh} made: {why}")


def resolution_for(model: ModelSpec, asked: str) -> str | None:
    """The model's tier closest in area to an asked tier (1k ≈ 1 MP, 2k ≈ 4 MP, 4k ≈ 16 MP)."""
    if asked in model.resolutions:
        return asked
    want = {"1k": 1.0, "2k": 4.0, "4k": 16.0}.get(asked)
    tiers = [t for t in model.resolutions if t in model.resolution_megapixels]
    if want is None or not tiers:
        return None
    return min(tiers, key=lambda t: abs(math.log(model.resolution_megapixels[t] / want)))


def _tier_for_pixels(model: ModelSpec, ratio: float, pixels: int) -> str:
    """The smallest tier that makes at least `pixels` at `ratio`; the largest when none does."""
    tiers = sorted(model.resolutions, key=lambda t: model.resolution_megapixels.get(t, _DEFAULT_MEGAPIXELS))
    for tier in tiers:
        w, h = tier_size(model, ratio, tier)
        if w * h >= pixels:
            return tier
    return tiers[-1]


def _fit_size(model: ModelSpec, w: int, h: int, target: float) -> str:
    """The size closest to the request that `model` accepts."""
    if w and f"{w}x{h}" in model.sizes:
        return f"{w}x{h}"
    rule = model.size_rule
    if rule is not None:
        return fit_rule(rule, w or 0, h or 0, target)
    return min(model.sizes, key=lambda s: _distance(parse_size(s), target, w * h))


def _distance(size: Size, target: float, pixels: int) -> tuple[float, float]:
    sw, sh = size
    return (abs(math.log((sw / sh) / target)), abs(sw * sh - pixels) if pixels else 0.0)


def fit_rule(rule: SizeRule, w: int, h: int, target: float) -> str:
    """Snap to the free-size rule: sides multiples of `multiple`, ratio, side and pixel limits kept.

    A size that already follows the rule is kept as it is.
    """
    m = rule.multiple

    def follows(sw: int, sh: int) -> bool:
        long, short = max(sw, sh), min(sw, sh)
        return (
            sw % m == 0
            and sh % m == 0
            and rule.min_ratio <= sw / sh <= rule.max_ratio
            and long <= rule.max_long
            and short <= rule.max_short
            and sw * sh >= rule.min_pixels
        )

    if w and h and follows(w, h):
        return f"{w}x{h}"
    ratio = min(max(target, rule.min_ratio), rule.max_ratio)
    area = max((w * h) if w else 1024 * 1024, rule.min_pixels)
    width = math.sqrt(area * ratio)
    height = width / ratio
    long_cap, short_cap = rule.max_long, rule.max_short
    if width >= height:
        scale = min(1.0, long_cap / width, short_cap / height)
        w_cap, h_cap = long_cap, short_cap
    else:
        scale = min(1.0, long_cap / height, short_cap / width)
        w_cap, h_cap = short_cap, long_cap
    # Round to the nearest multiple (flooring turned 240.0 computed as 239.99… into 224), stay
    # within the side limits, then pull the longer side in if rounding pushed the ratio out.
    sw = min(max(m, round(width * scale / m) * m), w_cap // m * m)
    sh = min(max(m, round(height * scale / m) * m), h_cap // m * m)
    if sw / sh > rule.max_ratio:
        sw = max(m, math.floor(sh * rule.max_ratio / m) * m)
    elif sw / sh < rule.min_ratio:
        sh = max(m, math.floor(sw / rule.min_ratio / m) * m)
    # Rounding down may leave the area just under the minimum: grow the short side a step.
    while sw * sh < rule.min_pixels:
        if sw <= sh and sw + m <= w_cap:
            sw += m
        elif sh + m <= h_cap:
            sh += m
        else:
            break
    return f"{sw}x{sh}"
