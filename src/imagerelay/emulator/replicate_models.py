"""The Replicate models the emulator runs: their inputs as data, how they validate, what size they
make, and each input's part of the OpenAPI schema `replicate_schema` publishes for them.

One table drives all three, so a model's validation and its published schema cannot disagree.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from imagerelay.emulator import draw

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["MODELS", "Input", "ModelSpec", "output_size", "references_of", "validate"]

#: Problems found in an input: ("type", "field", "description") for Replicate's `invalid_fields`.
Problem = dict[str, str]


@dataclass(frozen=True)
class Input:
    """One input property: its JSON type and limits, as the model's OpenAPI schema states them."""

    type: str  # string | integer | number | boolean | uri | uris
    enum: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    multiple: int = 1
    max_items: int | None = None
    default: Any = None
    description: str = ""

    def check(self, v: Any) -> str | None:
        """What is wrong with `v`, or None."""
        if self.enum:
            return None if v in self.enum else f"{json.dumps(v)} is not one of {', '.join(self.enum)}"
        if self.type == "boolean":
            return None if isinstance(v, bool) else "Invalid type. Expected: boolean"
        if self.type == "string":
            return None if isinstance(v, str) else "Invalid type. Expected: string"
        if self.type == "uri":
            return _uri(v)
        if self.type == "uris":
            if not isinstance(v, list):
                return "Invalid type. Expected: array"
            if self.max_items is not None and len(v) > self.max_items:
                return f"Array must have at most {self.max_items} items"
            return next((p for p in map(_uri, v) if p), None)
        if self.type == "integer" and (not isinstance(v, int) or isinstance(v, bool)):
            return "Invalid type. Expected: integer"
        if self.type == "number" and (not isinstance(v, int | float) or isinstance(v, bool)):
            return "Invalid type. Expected: number"
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None and self.type == "number":
            return None if lo <= v <= hi else f"Must be between {lo} and {hi}"
        if self.minimum is not None and v < self.minimum:
            return f"Must be greater than or equal to {_num(self.minimum)}"
        if self.maximum is not None and v > self.maximum:
            return f"Must be less than or equal to {_num(self.maximum)}"
        if self.type == "integer" and v % self.multiple:
            return f"Must be a multiple of {self.multiple}"
        return None

    def schema(self, name: str, order: int, components: dict[str, Any]) -> dict[str, Any]:
        """This property as Replicate's (Cog's) OpenAPI describes it; enums become components."""
        prop: dict[str, Any] = {"title": name.replace("_", " ").title(), "x-order": order}
        if self.description:
            prop["description"] = self.description
        if self.enum:
            components[name] = {
                "enum": list(self.enum),
                "type": "string",
                "title": name,
                "description": "An enumeration.",
            }
            prop["allOf"] = [{"$ref": f"#/components/schemas/{name}"}]
        elif self.type == "uri":
            prop.update(type="string", format="uri")
        elif self.type == "uris":
            prop.update(type="array", items={"type": "string", "format": "uri"})
            if self.max_items is not None:
                prop["maxItems"] = self.max_items
        else:
            prop["type"] = self.type
            if self.minimum is not None:
                prop["minimum"] = self.minimum
            if self.maximum is not None:
                prop["maximum"] = self.maximum
        if self.default is not None:
            prop["default"] = self.default
        return prop


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _uri(v: Any) -> str | None:
    ok = isinstance(v, str) and v.startswith(("data:", "http://", "https://"))
    return None if ok else "Does not match format 'uri'"


@dataclass(frozen=True)
class ModelSpec:
    inputs: dict[str, Input]
    single: bool  # one URL string as output, rather than a list
    reference: str | None  # the input that carries the reference image(s)
    #: How the output is sized: "flux1" (fixed table), "kontext", "flux2" (megapixel tiers), "ultra".
    sizing: str = "flux1"
    description: str = ""
    required: tuple[str, ...] = ("prompt",)

    @property
    def defaults(self) -> dict[str, Any]:
        return {k: i.default for k, i in self.inputs.items() if i.default is not None}


FLUX_SIZES: dict[str, tuple[int, int]] = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "21:9": (1536, 640),
    "3:2": (1216, 832),
    "2:3": (832, 1216),
    "4:5": (896, 1088),
    "5:4": (1088, 896),
    "3:4": (896, 1152),
    "4:3": (1152, 896),
    "9:16": (768, 1344),
    "9:21": (640, 1536),
}
_PRO_RATIOS = ("1:1", "16:9", "3:2", "2:3", "4:5", "5:4", "9:16", "3:4", "4:3")
_KONTEXT_RATIOS = (
    *("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "4:5", "5:4"),
    *("21:9", "9:21", "2:1", "1:2"),
)
_FLUX2_RESOLUTIONS = ("match_input_image", "0.5 MP", "1 MP", "2 MP", "4 MP")

_S, _B = Input("string"), Input("boolean")
_SEED = Input("integer", description="Random seed. Set for reproducible generation")
_QUALITY = Input("integer", minimum=0, maximum=100, default=80)
_SCHNELL: dict[str, Input] = {
    "prompt": _S,
    "aspect_ratio": Input("string", enum=tuple(FLUX_SIZES), default="1:1"),
    "num_outputs": Input("integer", minimum=1, maximum=4, default=1),
    "seed": _SEED,
    "output_format": Input("string", enum=("webp", "jpg", "png"), default="webp"),
    "output_quality": _QUALITY,
    "go_fast": _B,
    "megapixels": Input("string", enum=("1", "0.25")),
    "disable_safety_checker": _B,
    "num_inference_steps": Input("integer", minimum=1, maximum=4),
}


def _flux2(
    max_images: int, *, flex: bool = False, tiers: bool = True, safety: bool = True
) -> dict[str, Input]:
    inputs = {
        "prompt": _S,
        "input_images": Input("uris", max_items=max_images, description="Reference images"),
        "aspect_ratio": Input("string", enum=("match_input_image", "custom", *_PRO_RATIOS), default="1:1"),
        "width": Input("integer", minimum=256, maximum=2048),
        "height": Input("integer", minimum=256, maximum=2048),
        "seed": _SEED,
        "output_format": Input("string", enum=("webp", "jpg", "png"), default="webp"),
        "output_quality": _QUALITY,
    }
    if tiers:
        inputs["resolution"] = Input("string", enum=_FLUX2_RESOLUTIONS, default="1 MP")
    if safety:
        inputs["safety_tolerance"] = Input("integer", minimum=1, maximum=5, default=2)
    else:
        inputs |= {"go_fast": _B, "disable_safety_checker": _B}
    if flex:
        inputs |= {
            "steps": Input("integer", minimum=1, maximum=50, default=30),
            "guidance": Input("number", minimum=1.5, maximum=10, default=4.5),
            "prompt_upsampling": _B,
        }
    return inputs


_KONTEXT = ModelSpec(
    {
        "prompt": _S,
        "input_image": Input("uri"),
        "aspect_ratio": Input(
            "string", enum=("match_input_image", *_KONTEXT_RATIOS), default="match_input_image"
        ),
        "seed": _SEED,
        "output_format": Input("string", enum=("png", "jpg"), default="png"),
        "safety_tolerance": Input("integer", minimum=0, maximum=6, default=2),
        "prompt_upsampling": _B,
    },
    single=True,
    reference="input_image",
    sizing="kontext",  # and safety_tolerance is at most 2 with an input image (see `validate`)
)

MODELS: dict[str, ModelSpec] = {
    "black-forest-labs/flux-schnell": ModelSpec(_SCHNELL, single=False, reference=None),
    "black-forest-labs/flux-dev": ModelSpec(
        {
            **_SCHNELL,
            "image": Input("uri"),
            "prompt_strength": Input("number", minimum=0, maximum=1),
            "num_inference_steps": Input("integer", minimum=1, maximum=50),
            "guidance": Input("number", minimum=0, maximum=10),
        },
        single=False,
        reference="image",
    ),
    "black-forest-labs/flux-1.1-pro": ModelSpec(
        {
            "prompt": _S,
            "image_prompt": Input("uri"),
            "aspect_ratio": Input("string", enum=(*_PRO_RATIOS, "custom"), default="1:1"),
            "width": Input("integer", minimum=256, maximum=1440, multiple=32),
            "height": Input("integer", minimum=256, maximum=1440, multiple=32),
            "seed": _SEED,
            "output_format": Input("string", enum=("webp", "jpg", "png"), default="webp"),
            "output_quality": _QUALITY,
            "safety_tolerance": Input("integer", minimum=1, maximum=6, default=2),
            "prompt_upsampling": _B,
        },
        single=True,
        reference="image_prompt",
    ),
    "black-forest-labs/flux-1.1-pro-ultra": ModelSpec(
        {
            "prompt": _S,
            "image_prompt": Input("uri"),
            "image_prompt_strength": Input("number", minimum=0, maximum=1, default=0.1),
            "aspect_ratio": Input("string", enum=("21:9", *_PRO_RATIOS, "9:21"), default="1:1"),
            "raw": _B,
            "seed": _SEED,
            "output_format": Input("string", enum=("jpg", "png"), default="jpg"),
            "safety_tolerance": Input("integer", minimum=1, maximum=6, default=2),
        },
        single=True,
        reference="image_prompt",
        sizing="ultra",
    ),
    "black-forest-labs/flux-kontext-pro": _KONTEXT,
    "black-forest-labs/flux-kontext-max": _KONTEXT,
    "black-forest-labs/flux-2-pro": ModelSpec(
        _flux2(8), single=True, reference="input_images", sizing="flux2"
    ),
    "black-forest-labs/flux-2-max": ModelSpec(
        _flux2(8), single=True, reference="input_images", sizing="flux2"
    ),
    "black-forest-labs/flux-2-flex": ModelSpec(
        _flux2(10, flex=True), single=True, reference="input_images", sizing="flux2"
    ),
    "black-forest-labs/flux-2-dev": ModelSpec(
        _flux2(4, tiers=False, safety=False), single=True, reference="input_images", sizing="flux2"
    ),
    "black-forest-labs/flux-2-klein-4b": ModelSpec(
        _flux2(4, tiers=False, safety=False), single=True, reference="input_images", sizing="flux2"
    ),
    "black-forest-labs/flux-2-klein-9b": ModelSpec(
        _flux2(4, tiers=False, safety=False), single=True, reference="input_images", sizing="flux2"
    ),
}


def validate(spec: ModelSpec, given: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """(the input with defaults, the problems Replicate would answer 422 with)."""
    invalid: list[Problem] = []
    for name, value in given.items():
        prop = spec.inputs.get(name)
        if prop is None:
            invalid.append(
                {
                    "type": "additional_property_not_allowed",
                    "field": "input",
                    "description": f"Additional property {name} is not allowed",
                }
            )
        elif (problem := prop.check(value)) is not None:
            invalid.append({"type": "invalid", "field": f"input.{name}", "description": problem})
    for name in spec.required:
        if name not in given:
            invalid.append({"type": "required", "field": "input", "description": f"{name} is required"})
    effective = {**spec.defaults, **given}
    if spec.sizing == "kontext" and given.get("input_image") and effective.get("safety_tolerance", 2) > 2:
        invalid.append(
            {
                "type": "invalid",
                "field": "input.safety_tolerance",
                "description": "2 is the maximum allowed when input images are used",
            }
        )
    return effective, invalid


def references_of(spec: ModelSpec, effective: dict[str, Any]) -> list[str]:
    """The reference URLs in an input (one field, or a list)."""
    value = effective.get(spec.reference) if spec.reference else None
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _ratio(name: str) -> tuple[float, float]:
    w, _, h = name.partition(":")
    return float(w), float(h)


def _flux2_size(ratio: tuple[float, float], megapixels: float) -> tuple[int, int]:
    """About `megapixels` at `ratio`, at most 2048 a side, sides rounded down to a multiple of 16."""
    area = megapixels * 1024 * 1024
    w = math.sqrt(area * ratio[0] / ratio[1])
    h = area / w
    scale = min(1.0, 2048 / max(w, h))
    return max(16, math.floor(w * scale / 16 + 1e-9) * 16), max(16, math.floor(h * scale / 16 + 1e-9) * 16)


def output_size(spec: ModelSpec, inp: dict[str, Any], reference: Image | None) -> tuple[int, int]:
    """The pixel size the model makes for this input."""
    ratio = inp.get("aspect_ratio", "1:1")
    if ratio == "custom":
        w, h = int(inp.get("width", 1024)), int(inp.get("height", 1024))
        step = 32 if spec.sizing != "flux2" else 16
        return max(step, round(w / step) * step), max(step, round(h / step) * step)
    match = ratio == "match_input_image" or (spec.reference == "image" and reference is not None)
    shape = (reference.width, reference.height) if match and reference is not None else None
    if spec.sizing == "flux2":
        resolution = inp.get("resolution", "1 MP")
        if resolution == "match_input_image" and reference is not None:
            mp = min(4.0, max(0.5, reference.width * reference.height / (1024 * 1024)))
        else:
            mp = float(str(resolution).split()[0]) if resolution != "match_input_image" else 1.0
        return _flux2_size(shape or (_ratio(ratio) if ratio != "match_input_image" else (1, 1)), mp)
    if spec.sizing == "ultra":
        return draw.megapixel_size(*_ratio(ratio), megapixels=4.0)
    if match:
        return draw.megapixel_size(*shape) if shape else (1024, 1024)
    if ratio in FLUX_SIZES:
        w, h = FLUX_SIZES[ratio]
    else:
        w, h = draw.megapixel_size(*_ratio(ratio))
    if inp.get("megapixels") == "0.25":
        w, h = max(16, round(w / 32) * 16), max(16, round(h / 32) * 16)
    return w, h
