"""The Gemini dialect: `models/{model}:generateContent` on the Nano Banana image models, and the
model listing (`GET models`, `GET models/{model}`).

Served under `/gemini/{v1|v1beta|v1alpha}/` (or no version). The key comes in `x-goog-api-key`
or `?key=`; a missing key is 403 PERMISSION_DENIED, a wrong one 400 INVALID_ARGUMENT with an
`ErrorInfo` whose reason is API_KEY_INVALID. Errors are `{"error": {"code", "message", "status",
"details"}}`; a 429 carries QuotaFailure, Help and a RetryInfo `retryDelay` (`Fault.seconds`, else
"1s") and no Retry-After header; a 502 is an HTML page, as Google's front end sends it.

The body is read as proto-JSON is: camelCase or snake_case field names (the SDK sends
`inlineData.mime_type`), standard or URL-safe base64, padded or not; unknown fields are a 400.
Each reference is decoded, and the answer is drawn from all of them (tiled in order), so a test
can see which arrived. Gemini 3 models "think": the answer holds a thought text, an interim
thought image (small) and the final image with a `thoughtSignature`. The image is PNG at 1K and
JPEG at 2K and 4K, always declared as what it is.

Faults besides the core ones: `blocked` (a `promptFeedback.blockReason`, `Fault.error` or
PROHIBITED_CONTENT, no candidate), `finish` (a candidate that ended with that finishReason and
no content), `empty` (a text-only answer), `truncate` (the image bytes cut in half).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import math
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from imagerelay.emulator import draw
from imagerelay.emulator.wire import Call, Dialect, DialectError, Fault, Reply, Route, json_reply

if TYPE_CHECKING:
    from collections.abc import Mapping

    from PIL.Image import Image

_JSON = "application/json; charset=UTF-8"
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


MODELS: dict[str, Model] = {
    "gemini-nano-banana-2.1": Model(
        "Nano Banana 2.1", 14, _RATIOS_14, {"1K": 1120, "2K": 1680, "4K": 2520}, ("MINIMAL", "MEDIUM", "HIGH")
    ),
    "gemini-3-pro-image": Model(
        "Nano Banana Pro", 14, _RATIOS_10, {"1K": 1120, "2K": 1120, "4K": 2000}, ("LOW", "HIGH")
    ),
    "gemini-3.1-flash-lite-image": Model(
        "Nano Banana 2 Lite", 14, _RATIOS_14, {"1K": 1120}, ("MINIMAL", "HIGH")
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
_STATUS = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    409: ("ABORTED", "The operation was aborted."),
    429: (
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    ),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}
_HTML_502 = (
    b"<!DOCTYPE html><html lang=en><meta charset=utf-8><title>Error 502 (Server Error)!!1</title>"
    b"<p><b>502.</b> <ins>That's an error.</ins><p>The server encountered a temporary error and "
    b"could not complete your request.<p>Please try again in 30 seconds. <ins>That's all we know.</ins>"
)


def _error(status: int, message: str | None = None, details: list[Any] | None = None) -> DialectError:
    name, default = _STATUS.get(status, ("UNKNOWN", f"HTTP {status}"))
    error: dict[str, Any] = {"code": status, "message": message or default, "status": name}
    if details:
        error["details"] = details
    return DialectError(json_reply(status, {"error": error}, _JSON))


def _invalid(message: str) -> DialectError:
    return _error(400, message)


def _presented_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    key = headers.get("x-goog-api-key", "").strip() or query.get("key", "").strip()
    return key or None


def _auth_error(key: str | None) -> Reply:
    if not key:
        return _error(
            403,
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
        ).reply
    info = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }
    localized = {
        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
        "locale": "en-US",
        "message": "API key not valid. Please pass a valid API key.",
    }
    return _error(400, "API key not valid. Please pass a valid API key.", [info, localized]).reply


def _retry_info(fault: Fault | None) -> str:
    seconds = fault.seconds if fault is not None and fault.seconds is not None else 1.0
    return f"{seconds:g}s"


def _error_reply(status: int, fault: Fault | None) -> Reply:
    if status == 502:
        return Reply(502, _HTML_502, "text/html; charset=UTF-8")
    message = fault.error if fault is not None and fault.error else None
    details: list[Any] = []
    if status == 429:
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_requests_per_model",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                        "quotaDimensions": {"location": "global"},
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": _retry_info(fault)},
        ]
    return _error(status, message, details).reply


def _not_found(method: str, path: str) -> Reply:
    return _error(404, f"Method not found: {method} {path.removeprefix('/gemini')}.").reply


DIALECT = Dialect(
    "gemini",
    _auth_error,
    _error_reply,
    _not_found,
    presented_key=_presented_key,
    secret_headers=("x-goog-api-key",),
    version="v1beta",
)


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
            raise _invalid(
                f"Invalid JSON payload received. Unknown name \"{name}\" at '{where}': Cannot find field."
            )


def _bytes(data: Any, where: str) -> bytes:
    """Standard or URL-safe base64, with or without padding."""
    if not isinstance(data, str):
        raise _invalid(f"Invalid value at '{where}' (TYPE_BYTES), expected a base64 string")
    text = data.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(
            f"Invalid value at '{where}' (TYPE_BYTES), Base64 decoding failed for \"{data[:20]}\""
        ) from None


class _Request:
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
        raise _error(404, message)

    def __init__(self, call: Call, name: str, version: str) -> None:
        if not isinstance(call.json, dict):
            raise _invalid("Invalid JSON payload received. Unexpected token.")
        if name in RETIRED or name not in MODELS:
            _Request.missing(name, version)
        body = _normalise(call.json)
        _unknown(body, _TOP, "")
        self.name = name
        self.model = MODELS[name]
        self.texts: list[str] = []
        self.images: list[Image] = []
        self._parts(body.get("contents"))
        config = body.get("generationConfig") or {}
        if not isinstance(config, dict):
            raise _invalid("Invalid value at 'generation_config': expected an object")
        _unknown(config, _GENERATION, "generation_config")
        modalities = config.get("responseModalities") or ["TEXT"]
        if not isinstance(modalities, list) or any(m not in ("TEXT", "IMAGE") for m in modalities):
            raise _invalid(f"Invalid value at 'generation_config.response_modalities' ({modalities!r})")
        self.modalities: list[str] = modalities
        count = config.get("candidateCount", 1)
        if count != 1:
            raise _invalid(f"Multiple candidates is not enabled for models/{name}")
        image = config.get("imageConfig") or {}
        _unknown(image, {"aspectRatio", "imageSize"}, "generation_config.image_config")
        self.ratio: str | None = image.get("aspectRatio")
        if self.ratio is not None and self.ratio not in self.model.ratios:
            raise _invalid(
                f"Unsupported aspect ratio: {self.ratio}. Supported: {', '.join(self.model.ratios)}."
            )
        self.size: str = image.get("imageSize") or "1K"
        if self.size not in self.model.tokens:
            raise _invalid(f"Unsupported image size: {self.size} for models/{name}.")
        thinking = config.get("thinkingConfig")
        if thinking is not None:
            level = str((thinking or {}).get("thinkingLevel", "")).upper()
            if not self.model.thinking:
                raise _invalid(f"Thinking is not supported for models/{name}.")
            if level and level not in self.model.thinking:
                raise _invalid(f"Unsupported thinking level {level} for models/{name}.")

    def _parts(self, contents: Any) -> None:
        if not isinstance(contents, list) or not contents:
            raise _invalid("* GenerateContentRequest.contents: contents is not specified")
        for ci, content in enumerate(contents):
            parts = content.get("parts") if isinstance(content, dict) else None
            if not isinstance(parts, list) or not parts:
                raise _invalid(
                    f"* GenerateContentRequest.contents[{ci}].parts: contents.parts must not be empty."
                )
            for pi, part in enumerate(parts):
                where = f"contents[{ci}].parts[{pi}]"
                if not isinstance(part, dict):
                    raise _invalid(f"Invalid value at '{where}': expected an object")
                if isinstance(part.get("text"), str):
                    self.texts.append(part["text"])
                elif isinstance(part.get("inlineData"), dict):
                    self.images.append(self._image(part["inlineData"], f"{where}.inline_data"))
                else:
                    raise _invalid(f"* GenerateContentRequest.{where}: a part must hold text or inline_data")
        if len(self.images) > self.model.max_references:
            raise _invalid(
                f"Too many images: {len(self.images)} were given; models/{self.name} takes at most "
                f"{self.model.max_references}."
            )
        if not any(t.strip() for t in self.texts) and not self.images:
            raise _invalid("* GenerateContentRequest.contents: the request has no text and no image")

    def _image(self, blob: dict[str, Any], where: str) -> Image:
        mime = blob.get("mimeType")
        if mime not in self.model.input_mime:
            allowed = ", ".join(self.model.input_mime)
            raise _invalid(f"* GenerateContentRequest.{where}.mime_type: MIME type must be {allowed}.")
        try:
            return draw.load(_bytes(blob.get("data"), f"{where}.data"))
        except ValueError:
            raise _invalid(
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


def _usage(req: _Request, candidates: int) -> dict[str, Any]:
    text = max(1, len(req.prompt) // 4)
    images = req.model.tokens_per_reference * len(req.images)
    usage: dict[str, Any] = {
        "promptTokenCount": text + images,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": text}]
        + ([{"modality": "IMAGE", "tokenCount": images}] if images else []),
    }
    total = text + images
    if candidates:
        usage["candidatesTokenCount"] = candidates
        usage["candidatesTokensDetails"] = [{"modality": "IMAGE", "tokenCount": candidates}]
        total += candidates
    if candidates and req.model.thinking:
        usage["thoughtsTokenCount"] = 200
        total += 200
    usage["totalTokenCount"] = total
    return usage


def _answer(req: _Request, body: dict[str, Any]) -> Reply:
    body["modelVersion"] = req.name
    body["responseId"] = uuid.uuid4().hex[:22]
    if req.model.stage:
        body["modelStatus"] = {"modelStage": req.model.stage, "message": f"models/{req.name} is deprecated."}
    return json_reply(200, body, _JSON)


def _inline(mime: str, data: bytes) -> dict[str, Any]:
    return {"mimeType": mime, "data": base64.b64encode(data).decode()}


def generate(call: Call) -> Reply:
    """POST /{version}/models/{model}:generateContent."""
    fault = call.fault
    req = _Request(call, call.params["model"], call.params.get("version") or "")
    deadline = call.headers.get("x-server-timeout", "")
    if (
        fault is not None
        and fault.latency
        and re.fullmatch(r"\d+", deadline)
        and fault.latency > int(deadline)
    ):
        raise _error(504)  # slower than the deadline the client announced
    if fault is not None and fault.blocked:
        block = {"blockReason": fault.error or "PROHIBITED_CONTENT"}
        return _answer(req, {"promptFeedback": block, "usageMetadata": _usage(req, 0)})
    if fault is not None and fault.finish:
        candidate = {
            "finishReason": fault.finish,
            "index": 0,
            "finishMessage": "The image was not generated.",
        }
        return _answer(req, {"candidates": [candidate], "usageMetadata": _usage(req, 0)})
    if (fault is not None and fault.empty) or "IMAGE" not in req.modalities:
        words = (
            "I can't create that image."
            if "IMAGE" in req.modalities
            else f"A sandbox reply to: {req.prompt[:200]}"
        )
        candidate = {
            "content": {"role": "model", "parts": [{"text": words}]},
            "finishReason": "STOP",
            "index": 0,
        }
        return _answer(req, {"candidates": [candidate], "usageMetadata": _usage(req, 0)})
    size = req.pixels()
    reference = draw.mosaic(req.images, size) if req.images else None
    fmt = "png" if req.size == "1K" else "jpeg"
    data = draw.render(prompt=req.prompt, model=req.name, size=size, reference=reference, fmt=fmt)
    if fault is not None and fault.truncate:
        data = data[: len(data) // 2]
    parts: list[dict[str, Any]] = []
    if req.model.thinking:
        interim = draw.render(prompt=req.prompt, model=req.name, size=(size[0] // 8, size[1] // 8), index=1)
        parts.append({"text": "**Composing the scene**\n\nPlanning the layout first.", "thought": True})
        parts.append({"inlineData": _inline("image/jpeg", interim), "thought": True})
    if "TEXT" in req.modalities:
        parts.append({"text": "Here is your image."})
    final: dict[str, Any] = {"inlineData": _inline(draw.MIME[fmt], data)}
    if req.model.thinking:
        final["thoughtSignature"] = base64.b64encode(uuid.uuid4().bytes).decode()
    parts.append(final)
    candidate = {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
    usage = _usage(req, req.model.tokens[req.size])
    return _answer(req, {"candidates": [candidate], "usageMetadata": usage})


def default_listing() -> list[dict[str, Any]]:
    """The image models Gemini lists today, as `Model` resources (tests may edit
    `emu.listings.gemini`); the listing describes them, generation answers from `MODELS`."""
    return [
        {
            "name": f"models/{name}",
            "version": "001",
            "displayName": model.label,
            "supportedGenerationMethods": ["generateContent", "countTokens"],
            "thinking": bool(model.thinking),
        }
        for name, model in MODELS.items()
    ]


def list_models(call: Call) -> Reply:
    """GET /{version}/models: the listing, in one page."""
    return json_reply(200, {"models": [dict(m) for m in call.emu.listings.gemini]}, _JSON)


def get_model(call: Call) -> Reply:
    """GET /{version}/models/{model}: one listed model, or the 404 a generation would get."""
    name = call.params["model"]
    found = next((m for m in call.emu.listings.gemini if m["name"] == f"models/{name}"), None)
    if found is None:
        _Request.missing(name, call.params.get("version") or "")
    return json_reply(200, dict(found), _JSON)


#: The dialect with every endpoint it answers, as the provider's registration names it.
DIALECT = dataclasses.replace(
    DIALECT,
    routes=(
        Route(
            "POST",
            r"(?:/(?P<version>v1|v1beta|v1alpha))?/models/(?P<model>[^/:]+):generateContent",
            "generate",
            generate,
        ),
        Route("GET", r"(?:/(?P<version>v1|v1beta|v1alpha))?/models", "models", list_models),
        Route("GET", r"(?:/(?P<version>v1|v1beta|v1alpha))?/models/(?P<model>[^/:]+)", "model", get_model),
    ),
)
