"""The GPT-image models the emulator serves, the parameters each takes (validated as OpenAI does,
shared by generations and edits) and the output tokens it bills."""

from __future__ import annotations

import re
from typing import Any

from imagerelay.emulator.openai_errors import error, invalid, model_not_found, unsupported

__all__ = [
    "EDIT_PARAMS",
    "FIXED_SIZES",
    "GEN_PARAMS",
    "MODELS",
    "OTHER_LISTED",
    "TIERED",
    "Params",
    "output_tokens",
]

# The image models OpenAI serves today (openai 3.57 `ImageModel`, the 2026-12-01 deprecations page).
# gpt-image-1.5, gpt-image-1-mini and chatgpt-image-latest were shut down on 2026-12-01,
# gpt-image-1 on 2026-10-23, DALL·E on 2026-05-12: each answers `model_not_found`.
GPT_IMAGE_2 = ("gpt-image-2", "gpt-image-2-2026-04-21")
GPT_IMAGE_2_5 = (
    "gpt-image-2.5-sunburst",
    "gpt-image-2.5-sunburst-2026-09-08",
    "gpt-image-2.5-flare",
    "gpt-image-2.5-flare-2026-09-08",
)
GPT_IMAGE_2_6 = ("gpt-image-2.6-sunburst", "gpt-image-2.6-flare")
MODELS = GPT_IMAGE_2 + GPT_IMAGE_2_5 + GPT_IMAGE_2_6
#: Other models the account lists (`GET /v1/models` is not only images).
OTHER_LISTED = ("gpt-5.2", "gpt-5-mini", "text-embedding-3-large")
FIXED_SIZES = ("1024x1024", "1536x1024", "1024x1536")
#: The newer models' extra quality tiers and the `complexity` knob (openai 3.57; 2.6 per OpenAI docs).
TIERED = GPT_IMAGE_2_5 + GPT_IMAGE_2_6
#: Output tokens per image: ceil(f * round(f*short/long) * (2e6 + w*h) / 4e6), f by quality
#: (the gpt-image-2 calculator's formula; xhigh and max are this stand-in's own figures).
_QUALITY_FACTORS = {"low": 16, "medium": 48, "high": 96, "xhigh": 128, "max": 176}
_MIN_PIXELS = 655_360

_COMMON = {
    "model",
    "prompt",
    "n",
    "size",
    "quality",
    "output_format",
    "output_compression",
    "background",
    "user",
    "safety_identifier",
    "complexity",
    "stream",
    "partial_images",
}

GEN_PARAMS = _COMMON | {"moderation"}

# `moderation` is a generation parameter only; `input_fidelity` is for the shut-down 1.x models.
EDIT_PARAMS = _COMMON | {"mask", "markup", "image", "image[]", "images"}


def _enum(fields: dict[str, Any], param: str, allowed: tuple[str, ...], default: str) -> str:
    value = fields.get(param)
    if value is None:
        return default
    if value not in allowed:
        supported = ", ".join(f"'{a}'" for a in allowed)
        raise invalid(param, f"Invalid value: '{value}'. Supported values are: {supported}.")
    return str(value)


def _int(fields: dict[str, Any], param: str, lo: int, hi: int, default: int) -> int:
    value = fields.get(param)
    if value is None:
        return default
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        value = int(value)  # multipart fields arrive as text
    if not isinstance(value, int) or isinstance(value, bool):
        raise invalid(param, f"Invalid type for '{param}': expected an integer.", "invalid_type")
    if value < lo:
        raise invalid(
            param,
            f"Invalid '{param}': integer below minimum value. Expected >= {lo}.",
            "integer_below_min_value",
        )
    if value > hi:
        raise invalid(
            param,
            f"Invalid '{param}': integer above maximum value. Expected <= {hi}.",
            "integer_above_max_value",
        )
    return value


def _size(model: str, value: Any) -> tuple[int, int] | None:
    """Pixel size for `size`; None for auto. Raises invalid_value for a size the model cannot make."""
    if value is None or value == "auto":
        return None
    allowed = ", ".join(f"'{s}'" for s in (*FIXED_SIZES, "auto"))
    bad = invalid("size", f"Invalid value: '{value}'. Supported values are: {allowed}.")
    if not isinstance(value, str):
        raise bad
    match = re.fullmatch(r"(\d{2,5})x(\d{2,5})", value)
    if not match:
        raise bad
    w, h = int(match.group(1)), int(match.group(2))
    if value in FIXED_SIZES:
        return w, h
    long_side, short_side = max(w, h), min(w, h)
    if w % 16 or h % 16:
        raise invalid("size", f"Invalid size '{value}': width and height must both be divisible by 16.")
    if long_side > 3 * short_side:
        raise invalid("size", f"Invalid size '{value}': the aspect ratio must be between 1:3 and 3:1.")
    if long_side > 3840 or short_side > 2160:
        raise invalid("size", f"Invalid size '{value}': the maximum supported resolution is 3840x2160.")
    if w * h < _MIN_PIXELS:
        raise invalid("size", f"Invalid size '{value}': the image must have at least {_MIN_PIXELS} pixels.")
    return w, h


class Params:
    """Validated parameters shared by generations and edits."""

    def __init__(self, fields: dict[str, Any], allowed: set[str]) -> None:
        model = fields.get("model")
        if model is None:
            raise error(400, "you must provide a model parameter")
        if not isinstance(model, str) or model not in MODELS:
            raise model_not_found(str(model))
        for name in fields:
            if name not in allowed:
                raise error(400, f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
        prompt = fields.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise invalid("prompt", "Missing required parameter: 'prompt'.", "missing_required_parameter")
        if len(prompt) > 32000:
            raise invalid(
                "prompt",
                f"Invalid 'prompt': string too long. Expected a string with maximum length 32000, "
                f"but got a string with length {len(prompt)} instead.",
                "string_above_max_length",
            )
        tiered = model in TIERED
        self.model: str = model
        self.prompt: str = prompt
        self.n = _int(fields, "n", 1, 10, 1)
        self.size = _size(model, fields.get("size"))
        qualities = ("low", "medium", "high", *(("xhigh", "max") if tiered else ()), "auto")
        self.quality = _enum(fields, "quality", qualities, "auto")
        formats = ("png", "jpeg", "webp", "gif", "svg") if model in GPT_IMAGE_2_6 else ("png", "jpeg", "webp")
        self.output_format = _enum(fields, "output_format", formats, "png")
        if self.output_format in ("gif", "svg"):
            raise error(
                403,
                f"Your organization does not have access to the {self.output_format.upper()} output preview "
                "for this model.",
                param="output_format",
            )
        self.compression = _int(fields, "output_compression", 0, 100, 100)
        self.background = _enum(fields, "background", ("transparent", "opaque", "auto"), "auto")
        if self.background == "transparent" and self.output_format == "jpeg":
            raise invalid(
                "background", "Transparent background is not supported for the 'jpeg' output format."
            )
        _enum(fields, "moderation", ("low", "auto"), "auto")
        if fields.get("complexity") is not None and not tiered:
            raise unsupported("complexity", model)
        _enum(fields, "complexity", ("low", "medium", "high"), "high")
        for text in ("user", "safety_identifier"):
            if fields.get(text) is not None and not isinstance(fields[text], str):
                raise invalid(text, f"Invalid type for '{text}': expected a string.", "invalid_type")
        stream = fields.get("stream")
        if stream not in (None, False, "false"):
            raise invalid("stream", "Streaming is not supported by this endpoint of the sandbox.")

    def resolved_quality(self) -> str:
        return "medium" if self.quality == "auto" else self.quality


def output_tokens(quality: str, size: tuple[int, int]) -> int:
    """Output tokens OpenAI bills for one image of `size` at `quality`."""
    w, h = size
    f = _QUALITY_FACTORS[quality]
    short_factor = (2 * f * min(w, h) + max(w, h)) // (2 * max(w, h))
    return (f * short_factor * (2_000_000 + w * h) + 4_000_000 - 1) // 4_000_000
