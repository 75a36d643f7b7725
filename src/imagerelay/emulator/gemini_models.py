"""The Gemini image models the emulator serves (what each takes, the tokens it bills) and the
validation of a generateContent request for them, read as proto-JSON is."""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from imagerelay.emulator import draw
from imagerelay.emulator.gemini_errors import error, invalid
from imagerelay.emulator.wire import Call

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["MODELS", "RETIRED", "GenerateRequest", "Model"]

_RATIOS_10 = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
_RATIOS_14 = (*_RATIOS_10, "1:4", "4:1", "1:8", "8:1")
#: Output pixels at 1K (2K and 4K are twice and four times as large on each side).
_SIZES_1K = {
    "1:1": (1024, 1024),
    "2:3": (848, 1264),
    "3:2": (1264, 848),
    "3:4": (896, 1200),
    "4:3": (1200, 896),
    "4:5": (928, 1152),
    "5:4": (1152, 928),
    "9:16": (768, 1376),
    "16:9": (1376, 768),
    "21:9": (1584, 672),
    "1:4": (512, 2048),
    "4:1": (2048, 512),
    "1:8": (368, 2896),
    "8:1": (2896, 368),
}
_SCALE = {"1K": 1, "2K": 2, "4K": 4}
_INPUT_MIME = ("image/png", "image/jpeg", "image/webp", "image/heic", "image/heif")


@dataclass(frozen=True)
class Model:
    """What one image model takes; the output tokens it bills per image, by size."""

    label: str
    max_references: int
    ratios: tuple[str, ...]
    tokens: dict[str, int]  # imageSize → output tokens (its keys are the sizes it takes)
    thinking: tuple[str, ...] = ()  # thinkingLevel values it takes; () = no thinking
    input_mime: tuple[str, ...] = _INPUT_MIME
    tokens_per_reference: int = 560
    stage: str | None = None  # modelStatus.modelStage, when the answer carries one
    #: `inputTokenLimit` and `outputTokenLimit` as the model listing publishes them.
    token_limits: tuple[int, int] = (65_536, 32_768)


MODELS: dict[str, Model] = {
    "gemini-nano-banana-2.1": Model(
        "Nano Banana 2.1", 14, _RATIOS_14, {"1K": 1120, "2K": 1680, "4K": 2520}, ("MINIMAL", "MEDIUM", "HIGH")
    ),
    "gemini-3-pro-image": Model(
        "Nano Banana Pro", 14, _RATIOS_10, {"1K": 1120, "2K": 1120, "4K": 2000}, ("LOW", "HIGH")
    ),
    "gemini-3.1-flash-lite-image": Model(
        "Nano Banana 2 Lite", 14, _RATIOS_14, {"1K": 1120}, ("MINIMAL", "HIGH"), token_limits=(65_536, 4_096)
    ),
    "gemini-2.5-flash-image": Model(
        "Nano Banana",
        3,
        _RATIOS_10,
        {"1K": 1290},
        input_mime=("image/png", "image/jpeg", "image/webp"),
        tokens_per_reference=258,
        stage="DEPRECATED",
    ),
}
#: Shut down: answered with "no longer available".
RETIRED = frozenset(
    {
        "gemini-3.1-flash-image",
        "gemini-3.1-flash-image-preview",
        "gemini-3-pro-image-preview",
        "gemini-2.5-flash-image-preview",
        "gemini-2.0-flash-preview-image-generation",
        "imagen-4.0-generate-001",
        "imagen-4.0-ultra-generate-001",
        "imagen-4.0-fast-generate-001",
    }
)
_TOP = {
    "contents",
    "generationConfig",
    "safetySettings",
    "systemInstruction",
    "tools",
    "toolConfig",
    "cachedContent",
    "labels",
}
_GENERATION = {
    "responseModalities",
    "imageConfig",
    "candidateCount",
    "temperature",
    "topP",
    "topK",
    "seed",
    "maxOutputTokens",
    "thinkingConfig",
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _normalise(node: Any) -> Any:
    """Every field name in camelCase: proto-JSON takes `mime_type` and `mimeType` alike."""
    if isinstance(node, dict):
        return {_camel(k): _normalise(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_normalise(v) for v in node]
    return node


def _unknown(fields: Any, known: set[str], where: str) -> None:
    for name in fields:
        if name not in known:
            raise invalid(
                f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': Cannot find field."
            )


def _bytes(data: Any, where: str) -> bytes:
    """Standard or URL-safe base64, with or without padding."""
    if not isinstance(data, str):
        raise invalid(f"Invalid value at '{where}' (TYPE_BYTES), expected a base64 string")
    text = data.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid(
            f"Invalid value at '{where}' (TYPE_BYTES), Base64 decoding failed for \"{data[:20]}\""
        ) from None


class GenerateRequest:
    """A validated generateContent request."""

    @staticmethod
    def missing(name: str, version: str) -> NoReturn:
        """The 404 for a model that is shut down, or that never existed."""
        if name in RETIRED:
            message = (
                f"This model models/{name} is no longer available. Please update your code to use "
                "a newer model for the latest features and improvements."
            )
        else:
            message = (
                f"models/{name} is not found for API version {version or 'v1'}, or is not supported "
                "for generateContent. Call ListModels to see the list of available models and their "
                "supported methods."
            )
        raise error(404, message)

    def __init__(self, call: Call, name: str, version: str) -> None:
        if not isinstance(call.json, dict):
            raise invalid("Invalid JSON payload received. Unexpected token.")
        if name in RETIRED or name not in MODELS:
            GenerateRequest.missing(name, version)
        body = _normalise(call.json)
        _unknown(body, _TOP, "")
        self.name = name
        self.model = MODELS[name]
        self.texts: list[str] = []
        self.images: list[Image] = []
        self._parts(body.get("contents"))
        config = body.get("generationConfig") or {}
        if not isinstance(config, dict):
            raise invalid("Invalid value at 'generation_config': expected an object")
        _unknown(config, _GENERATION, "generation_config")
        modalities = config.get("responseModalities") or ["TEXT"]
        if not isinstance(modalities, list) or any(m not in ("TEXT", "IMAGE") for m in modalities):
            raise invalid(f"Invalid value at 'generation_config.response_modalities' ({modalities!r})")
        self.modalities: list[str] = modalities
        count = config.get("candidateCount", 1)
        if count != 1:
            raise invalid(f"Multiple candidates is not enabled for models/{name}")
        image = config.get("imageConfig") or {}
        _unknown(image, {"aspectRatio", "imageSize"}, "generation_config.image_config")
        self.ratio: str | None = image.get("aspectRatio")
        if self.ratio is not None and self.ratio not in self.model.ratios:
            raise invalid(
                f"Unsupported aspect ratio: {self.ratio}. Supported: {', '.join(self.model.ratios)}."
            )
        self.size: str = image.get("imageSize") or "1K"
        if self.size not in self.model.tokens:
            raise invalid(f"Unsupported image size: {self.size} for models/{name}.")
        thinking = config.get("thinkingConfig")
        if thinking is not None:
            level = str((thinking or {}).get("thinkingLevel", "")).upper()
            if not self.model.thinking:
                raise invalid(f"Thinking is not supported for models/{name}.")
            if level and level not in self.model.thinking:
                raise invalid(f"Unsupported thinking level {level} for models/{name}.")

    def _parts(self, contents: Any) -> None:
        if not isinstance(contents, list) or not contents:
            raise invalid("* GenerateContentRequest.contents: contents is not specified")
        for ci, content in enumerate(contents):
            parts = content.get("parts") if isinstance(content, dict) else None
            if not isinstance(parts, list) or not parts:
                raise invalid(
                    f"* GenerateContentRequest.contents[{ci}].parts: contents.parts must not be empty."
                )
            for pi, part in enumerate(parts):
                where = f"contents[{ci}].parts[{pi}]"
                if not isinstance(part, dict):
                    raise invalid(f"Invalid value at '{where}': expected an object")
                if isinstance(part.get("text"), str):
                    self.texts.append(part["text"])
                elif isinstance(part.get("inlineData"), dict):
                    self.images.append(self._image(part["inlineData"], f"{where}.inline_data"))
                else:
                    raise invalid(f"* GenerateContentRequest.{where}: a part must hold text or inline_data")
        if len(self.images) > self.model.max_references:
            raise invalid(
                f"Too many images: {len(self.images)} were given; models/{self.name} takes at most "
                f"{self.model.max_references}."
            )
        if not any(t.strip() for t in self.texts) and not self.images:
            raise invalid("* GenerateContentRequest.contents: the request has no text and no image")

    def _image(self, blob: dict[str, Any], where: str) -> Image:
        mime = blob.get("mimeType")
        if mime not in self.model.input_mime:
            allowed = ", ".join(self.model.input_mime)
            raise invalid(f"* GenerateContentRequest.{where}.mime_type: MIME type must be {allowed}.")
        try:
            return draw.load(_bytes(blob.get("data"), f"{where}.data"))
        except ValueError:
            raise invalid(
                "Unable to process input image. Please retry or report in "
                "https://developers.generativeai.google/guide/troubleshooting"
            ) from None

    @property
    def prompt(self) -> str:
        return " ".join(t.strip() for t in self.texts)

    def pixels(self) -> tuple[int, int]:
        """The output size: the ratio asked for, else the first reference's nearest, else square."""
        ratio = self.ratio
        if ratio is None and self.images:
            first = self.images[0]
            ratio = min(
                self.model.ratios,
                key=lambda r: abs(math.log(first.width / first.height / _value(r))),
            )
        w, h = _SIZES_1K[ratio or "1:1"]
        return w * _SCALE[self.size], h * _SCALE[self.size]


def _value(ratio: str) -> float:
    w, h = ratio.split(":")
    return float(w) / float(h)
