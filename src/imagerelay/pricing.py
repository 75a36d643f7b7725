"""Prices as data, and the estimates made from them before anything is sent.

A model's `price` table has one `basis`:

- ``image``: USD per output image, by tier when `per_image_by` names one — keys
  ``"quality,resolution"``, ``"quality"`` or ``"resolution"`` (xAI's quality × resolution grid,
  Gemini's per-size prices) — plus `per_input_image` once per call for each reference.
- ``megapixels``: USD per megapixel (1 MP = 1024×1024 pixels) of the output image and of each input
  image, each image rounded up to whole megapixels (FLUX.2). `output_first_mp`, when set, prices
  the first output megapixel apart from the rest; inputs count at least `input_min_mp` and at most
  `input_max_mp` each (larger inputs are resized by the provider).
- ``tokens``: USD per million tokens of text in, image in and image out (GPT-image). Output
  tokens per image come from a formula of quality and size (`token_formula`, below); input image
  tokens from OpenAI's tile formula; prompt tokens are about 4 characters each (at most one per
  UTF-8 byte). Token-billed figures are always estimates: the cost recorded for a call comes from
  the answer's `usage`.

Every estimate has an expected figure and a worst case. They differ only where the provider
decides something after the call (the size `auto` picks, a quality nobody chose, a reference size
not known yet); the relay never starts a call whose worst case would break a cap.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CostEstimate", "Price", "estimate_cost", "output_tokens", "safe_output_tokens"]

#: One megapixel, as FLUX.2's pricing counts it.
MEGAPIXEL = 1024 * 1024
#: OpenAI's image-input tile formula: fit within 2048, short side at most 768, 512-px tiles.
_TILE, _FIT_LONG, _FIT_SHORT = 512, 2048, 768
#: The most tiles one input image can take after fitting (2048x768 → 4x2).
_MAX_TILES = math.ceil(_FIT_LONG / _TILE) * math.ceil(_FIT_SHORT / _TILE)
#: Quality tiers, lowest first (what "nearest offered" and "worst case" are measured along).
QUALITY_ORDER = ("low", "medium", "high", "xhigh", "max")

Size = tuple[int, int]


class Price(BaseModel):
    """Price of one model, as data; `confirmed = false` marks figures not read from the provider."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    basis: Literal["image", "megapixels", "tokens"] = "image"
    confirmed: bool = False
    #: Where the figures come from, when not the model's own `source`.
    source: str = ""
    # -- basis = "image" --
    per_image: float = 0.0
    #: Overrides of `per_image` keyed by "quality,resolution", "quality" or "resolution".
    per_image_by: dict[str, float] = Field(default_factory=dict)
    per_input_image: float = 0.0
    #: The quality billed when none is sent, by mode ("text", "reference"), where documented.
    auto_quality: dict[str, str] = Field(default_factory=dict)
    # -- basis = "megapixels" --
    output_per_mp: float = 0.0
    output_first_mp: float | None = None
    input_per_mp: float = 0.0
    input_min_mp: float = 1.0
    input_max_mp: float = 4.0
    # -- basis = "tokens" (USD per million tokens) --
    input_text_per_mtok: float = 0.0
    input_image_per_mtok: float = 0.0
    output_image_per_mtok: float = 0.0
    #: "area": `output_tokens_1024[quality]` scaled by pixel count (GPT-image 1.x).
    #: "axis": `ceil(f · round(f·short/long) · (area_offset + w·h) / area_scale)` with f the
    #: quality's factor (gpt-image-2 and later).
    token_formula: Literal["area", "axis"] = "area"
    output_tokens_1024: dict[str, int] = Field(default_factory=dict)
    quality_factors: dict[str, int] = Field(default_factory=dict)
    area_offset: int = 2_000_000
    area_scale: int = 4_000_000
    #: Whether the "axis" formula is the provider's own. Until it is, the worst case of a size (what
    #: a cap is held to) is the higher of the formula and the square's tokens scaled by area: every
    #: table OpenAI has published prices a larger image higher, so a larger size never gets a
    #: lower worst case than a smaller one (`safe_output_tokens`).
    token_formula_confirmed: bool = False
    #: Input image tokens: base + per_tile × 512-px tiles (after fitting 2048, short side 768).
    input_tokens_base: int = 85
    input_tokens_per_tile: int = 170

    def qualities(self) -> tuple[str, ...]:
        """The qualities this price distinguishes, lowest first."""
        if self.basis == "tokens":
            named = set(self.quality_factors if self.token_formula == "axis" else self.output_tokens_1024)
        else:
            named = {k.split(",")[0] for k in self.per_image_by if k.split(",")[0] in QUALITY_ORDER}
        return tuple(q for q in QUALITY_ORDER if q in named)

    def from_usage(self, usage: Mapping[str, Any]) -> float | None:
        """USD from an OpenAI-style `usage` block, or None when it has no token counts.

        Every output token is priced at the image-output rate: if some are text (planning), this
        can only over-state the cost.
        """
        if self.basis != "tokens" or not usage:
            return None
        out = usage.get("output_tokens")
        if not isinstance(out, int):
            return None
        details = usage.get("input_tokens_details") or {}
        text_in = details.get("text_tokens", 0) or 0
        image_in = details.get("image_tokens", 0) or 0
        return (
            out * self.output_image_per_mtok
            + text_in * self.input_text_per_mtok
            + image_in * self.input_image_per_mtok
        ) / 1e6


@dataclass(frozen=True)
class CostEstimate:
    """What a call is expected to cost, and the most it can cost.

    `per_image` is charged for each output image, `per_call` once per call (input images, the
    prompt's tokens).
    """

    per_image: float
    per_call: float
    worst_per_image: float
    worst_per_call: float

    def call(self, n: int) -> float:
        """Expected USD of one call making `n` images."""
        return self.per_image * n + self.per_call

    def worst_call(self, n: int) -> float:
        """The most one call making `n` images can cost."""
        return self.worst_per_image * n + self.worst_per_call

    def total(self, calls: Iterable[int]) -> float:
        return sum(self.call(n) for n in calls)

    def worst_total(self, calls: Iterable[int]) -> float:
        return sum(self.worst_call(n) for n in calls)


def estimate_cost(
    price: Price,
    *,
    quality: str | None,
    resolution: str | None,
    size: Size,
    possible_sizes: Iterable[Size] = (),
    references: Iterable[Size | None] = (),
    prompt: str = "",
    mode: str = "text",
) -> CostEstimate:
    """The cost of one call at `size` (and the worst over `possible_sizes`, where the provider
    decides); `references` are the input images' sizes, None where not known yet."""
    sizes = [size, *possible_sizes]
    refs = list(references)
    if price.basis == "megapixels":
        return _megapixels(price, size, sizes, refs)
    if price.basis == "tokens":
        return _tokens(price, quality, size, sizes, refs, prompt)
    return _per_image(price, quality, resolution, refs, mode)


def _per_image(
    price: Price, quality: str | None, resolution: str | None, refs: list[Size | None], mode: str
) -> CostEstimate:
    billed = quality or price.auto_quality.get(mode)
    expected = _tier_price(price, billed, resolution)
    worst = expected
    if billed is None and price.qualities():  # nobody chose: any quality may be billed
        worst = max(_tier_price(price, q, resolution) for q in price.qualities())
    inputs = price.per_input_image * len(refs)
    return CostEstimate(expected, inputs, max(worst, expected), inputs)


def _tier_price(price: Price, quality: str | None, resolution: str | None) -> float:
    for key in (f"{quality},{resolution}", f"{quality}", f"{resolution}"):
        if key in price.per_image_by:
            return price.per_image_by[key]
    return price.per_image


def megapixels(size: Size, *, lo: float = 0.0, hi: float = math.inf) -> float:
    """Whole megapixels an image is billed as: rounded up, then kept within [lo, hi]."""
    w, h = size
    return min(hi, max(lo, float(math.ceil(w * h / MEGAPIXEL - 1e-9))))


def _megapixels(price: Price, size: Size, sizes: list[Size], refs: list[Size | None]) -> CostEstimate:
    def output(s: Size) -> float:
        mp = megapixels(s, lo=1.0)
        first = price.output_first_mp if price.output_first_mp is not None else price.output_per_mp
        return first + (mp - 1) * price.output_per_mp

    inputs = 0.0
    for ref in refs:
        # A reference whose size is not known yet is billed as the most any reference is.
        lo, hi = price.input_min_mp, price.input_max_mp
        mp = hi if ref is None else megapixels(ref, lo=lo, hi=hi)
        inputs += mp * price.input_per_mp
    return CostEstimate(output(size), inputs, max(output(s) for s in sizes), inputs)


def output_tokens(price: Price, quality: str, size: Size) -> int:
    """Output tokens of one image at `quality` and `size`, by the price's formula."""
    w, h = size
    if price.token_formula == "axis":
        f = price.quality_factors[quality]
        long, short = max(w, h), min(w, h)
        short_factor = (2 * f * short + long) // (2 * long)
        return (f * short_factor * (price.area_offset + w * h) + price.area_scale - 1) // price.area_scale
    return math.ceil(price.output_tokens_1024[quality] * w * h / (1024 * 1024))


def safe_output_tokens(price: Price, quality: str, size: Size) -> int:
    """Output tokens one image may be billed at the most: `output_tokens`, or — for an unconfirmed
    "axis" formula — the higher of the formula for a square of the same area (its short-side
    factor at its largest, so never below the formula for any shape) and the 1024x1024 figure
    scaled by area. Both grow with area and quality, so the bound does too."""
    tokens = output_tokens(price, quality, size)
    if price.token_formula != "axis" or price.token_formula_confirmed:
        return tokens
    w, h = size
    f = price.quality_factors[quality]
    as_square = (f * f * (price.area_offset + w * h) + price.area_scale - 1) // price.area_scale
    square = output_tokens(price, quality, (1024, 1024))
    return max(tokens, as_square, math.ceil(square * w * h / (1024 * 1024)))


def input_image_tokens(price: Price, size: Size | None) -> int:
    """Tokens one input image is billed as (the most any image can be when its size is unknown)."""
    if size is None:
        return price.input_tokens_base + price.input_tokens_per_tile * _MAX_TILES
    w, h = float(size[0]), float(size[1])
    scale = min(1.0, _FIT_LONG / max(w, h))
    w, h = w * scale, h * scale
    scale = min(1.0, _FIT_SHORT / min(w, h))
    w, h = w * scale, h * scale
    return price.input_tokens_base + price.input_tokens_per_tile * math.ceil(w / _TILE) * math.ceil(h / _TILE)


def _tokens(
    price: Price, quality: str | None, size: Size, sizes: list[Size], refs: list[Size | None], prompt: str
) -> CostEstimate:
    offered = price.qualities()
    expected_q = quality or ("medium" if "medium" in offered else offered[0])
    worst_qs = [quality] if quality else list(offered)
    rate_out = price.output_image_per_mtok / 1e6
    per_image = output_tokens(price, expected_q, size) * rate_out
    worst_image = max(safe_output_tokens(price, q, s) for q in worst_qs for s in sizes) * rate_out
    rate_img, rate_text = price.input_image_per_mtok / 1e6, price.input_text_per_mtok / 1e6
    images = sum(input_image_tokens(price, r) for r in refs) * rate_img
    per_call = images + max(1, len(prompt) // 4) * rate_text
    # Every tokenizer in use spends at most one token per UTF-8 byte.
    worst_call = images + max(1, len(prompt.encode())) * rate_text
    return CostEstimate(per_image, per_call, max(worst_image, per_image), max(worst_call, per_call))
