"""The Grok Imagine models the emulator serves, their prices in ticks and their shapes, and the
parameters of generations and edits validated as xAI does."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imagerelay.emulator.xai_errors import bad_type, bad_variant, error, missing_field, model_not_found

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "ALIASES",
    "ASPECT_RATIOS",
    "EDIT_FIELDS",
    "GEN_FIELDS",
    "IMAGE_MODELS",
    "INPUT_IMAGE_TICKS",
    "PRICES",
    "RETIRED_CHAT",
    "WIDE_RATIOS",
    "Params",
]

# Image models, with xAI's prices per output image in ticks (1e10 ticks = 1 USD): 1.0 is $0.02 at
# 1k and 2k; 2.0 by quality x resolution; +$0.01 per input image on edits. Retired names still
# answer: `grok-imagine-image-quality` (2026-11-02) and `-pro` (2026-05-15) are served and billed
# as 2.0 at low quality, and the answer's `model` names 2.0.
IMAGE_MODELS = ("grok-imagine-image", "grok-imagine-image-2.0")
ALIASES = {
    "grok-imagine-image-quality": ("grok-imagine-image-2.0", "low"),
    "grok-imagine-image-pro": ("grok-imagine-image-2.0", "low"),
}
_TICKS_PER_USD = 10_000_000_000
_CENT = _TICKS_PER_USD // 100
INPUT_IMAGE_TICKS = _CENT
PRICES = {
    "grok-imagine-image": {("low", "1k"): 2 * _CENT, ("low", "2k"): 2 * _CENT},
    "grok-imagine-image-2.0": {
        ("low", "1k"): 4 * _CENT,
        ("medium", "1k"): 6 * _CENT,
        ("low", "2k"): 6 * _CENT,
        ("medium", "2k"): 8 * _CENT,
    },
}
RETIRED_CHAT = {
    "grok-2-vision",
    "grok-2-vision-1212",
    "grok-vision-beta",
    "grok-beta",
    "grok-2",
    "grok-2-1212",
}


ASPECT_RATIOS: dict[str, tuple[float, float]] = {
    "1:1": (1, 1),
    "3:4": (3, 4),
    "4:3": (4, 3),
    "9:16": (9, 16),
    "16:9": (16, 9),
    "2:3": (2, 3),
    "3:2": (3, 2),
    "9:19.5": (9, 19.5),
    "19.5:9": (19.5, 9),
    "9:20": (9, 20),
    "20:9": (20, 9),
    "1:2": (1, 2),
    "2:1": (2, 1),
}
#: Grok Imagine 2.0 also takes these (release notes, August 2026).
WIDE_RATIOS: dict[str, tuple[float, float]] = {"21:9": (21, 9), "5:2": (5, 2)}
#: Tiers by area: ~1 MP and ~4 MP (2k is 1k upscaled, capped at 2048x2048), sides multiples of 16.
_MEGAPIXELS = {"1k": 1.0, "2k": 4.0}
_MAX_PIXELS = 2048 * 2048
GEN_FIELDS = {"model", "prompt", "n", "response_format", "aspect_ratio", "resolution", "quality", "user"}
EDIT_FIELDS = GEN_FIELDS | {"image", "images", "mask"}


def _enum(body: dict[str, Any], field: str, allowed: list[str], default: str | None) -> str | None:
    value = body.get(field)
    if value is None:
        return default
    if not isinstance(value, str):
        raise bad_type(field, "a string")
    if value not in allowed:
        raise bad_variant(field, value, allowed)
    return value


def _required_string(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if value is None:
        raise missing_field(field)
    if not isinstance(value, str):
        raise bad_type(field, "a string")
    return value


class Params:
    """Validated common parameters of generations and edits."""

    def __init__(self, body: dict[str, Any], allowed: set[str], *, edit: bool) -> None:
        for field in body:
            if field not in allowed:
                raise error(400, f"Argument not supported: {field}")
        model = _required_string(body, "model")
        served, forced = ALIASES.get(model, (model, None))
        if served not in IMAGE_MODELS:
            raise model_not_found(model)
        prompt = _required_string(body, "prompt")
        if not prompt.strip():
            raise error(400, "Prompt must not be empty.")
        n = body.get("n", 1)
        if n is None:
            n = 1
        if not isinstance(n, int) or isinstance(n, bool):
            raise bad_type("n", "an integer")
        if not 1 <= n <= 10:
            raise error(400, f"Argument n must be between 1 and 10, got {n}.")
        is_2_0 = served == "grok-imagine-image-2.0"
        self.model: str = served
        self.prompt: str = prompt
        self.n: int = n
        self.max_images = 5 if is_2_0 else 3
        self.response_format = _enum(body, "response_format", ["url", "b64_json"], "url")
        self.ratios = {**ASPECT_RATIOS, **(WIDE_RATIOS if is_2_0 else {})}
        self.aspect_ratio = _enum(body, "aspect_ratio", [*self.ratios, "auto"], "auto")
        self.resolution = _enum(body, "resolution", list(_MEGAPIXELS), "1k") or "1k"
        # Other models ignore `quality`; on 2.0 auto is low for generations, medium for edits.
        quality = _enum(body, "quality", ["low", "medium", "auto"], "auto") or "auto"
        auto = "medium" if edit else "low"
        self.quality: str = (forced or (auto if quality == "auto" else quality)) if is_2_0 else "low"
        if "user" in body and body["user"] is not None and not isinstance(body["user"], str):
            raise bad_type("user", "a string")

    def size(self, reference: Image | None) -> tuple[int, int]:
        if self.aspect_ratio in self.ratios:
            ratio = self.ratios[self.aspect_ratio]
        elif reference is not None:
            ratio = (reference.width, reference.height)
        else:
            ratio = (1, 1)
        return _area_size(ratio, _MEGAPIXELS[self.resolution])

    def ticks_per_image(self) -> int:
        return PRICES[self.model][(self.quality, self.resolution)]


def _area_size(ratio: tuple[float, float], megapixels: float) -> tuple[int, int]:
    """About `megapixels` at `ratio`, sides rounded to 16, the area at most 2048x2048."""
    area = megapixels * 1024 * 1024
    w = (area * ratio[0] / ratio[1]) ** 0.5
    h = area / w
    sw, sh = max(16, round(w / 16) * 16), max(16, round(h / 16) * 16)
    if sw * sh > _MAX_PIXELS:
        sw, sh = max(16, int(w // 16) * 16), max(16, int(h // 16) * 16)
    return sw, sh
