"""The xAI dialect: Grok Imagine image generation and edits, and vision chat.

Errors are `{"code": <gRPC status text>, "error": <message>}`, not OpenAI-shaped; a bad key is 400.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import TYPE_CHECKING, Any

from imagerelay.emulator import draw
from imagerelay.emulator.wire import (
    Call,
    Dialect,
    DialectError,
    Fault,
    Reply,
    Route,
    data_uri,
    decode_data_uri,
    json_reply,
)

if TYPE_CHECKING:
    from PIL.Image import Image

_CODES = {
    400: "Client specified an invalid argument",
    401: "The request does not have valid authentication credentials for the operation",
    403: "The caller does not have permission to execute the specified operation",
    404: "Some requested entity was not found",
    415: "Client specified an invalid argument",
    422: "Client specified an invalid argument",
    429: "Some resource has been exhausted",
    500: "Internal error",
    502: "Internal error",
    503: "The service is currently unavailable",
    504: "The deadline expired before the operation could complete",
}
_MESSAGES = {
    401: "Unauthenticated.",
    403: "Your team does not have permission to use this model.",
    404: "The requested resource was not found.",
    429: "Your team has either used all available credits or reached its monthly spending limit, "
    "or has exceeded its rate limit. Please try again later.",
    500: "An internal error occurred.",
    502: "Bad gateway.",
    503: "The service is temporarily unavailable. Please try again later.",
    504: "The request timed out.",
}

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
_INPUT_IMAGE_TICKS = _CENT
_PRICES = {
    "grok-imagine-image": {("low", "1k"): 2 * _CENT, ("low", "2k"): 2 * _CENT},
    "grok-imagine-image-2.0": {
        ("low", "1k"): 4 * _CENT,
        ("medium", "1k"): 6 * _CENT,
        ("low", "2k"): 6 * _CENT,
        ("medium", "2k"): 8 * _CENT,
    },
}
_RETIRED_CHAT = {
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
_MAX_IMAGE_BYTES = 10 * 1024 * 1024
_GEN_FIELDS = {"model", "prompt", "n", "response_format", "aspect_ratio", "resolution", "quality", "user"}
_EDIT_FIELDS = _GEN_FIELDS | {"image", "images", "mask"}
BLOCK_REASON = "The request was blocked by content moderation."


def _error(status: int, message: str) -> DialectError:
    return DialectError(json_reply(status, {"code": _CODES.get(status, "Unknown error"), "error": message}))


def mask_key(key: str) -> str:
    """xAI's way to show a key in an error: two characters each end."""
    return f"{key[:2]}***{key[-2:]}" if len(key) >= 8 else "***"


def _auth_error(key: str | None) -> Reply:
    shown = mask_key(key) if key else ""
    return _error(
        400, f"Incorrect API key provided: {shown}. You can obtain an API key from https://console.x.ai."
    ).reply


def _error_reply(status: int, fault: Fault | None) -> Reply:
    message = (fault.error if fault and fault.error else None) or _MESSAGES.get(status, f"HTTP {status}")
    return _error(status, message).reply


def _not_found(method: str, path: str) -> Reply:
    return _error(404, f"No handler for {method} {path}.").reply


DIALECT = Dialect("xai", _auth_error, _error_reply, _not_found)


def _body(call: Call) -> dict[str, Any]:
    if call.content_type != "application/json":
        raise _error(415, "Expected request with `Content-Type: application/json`")
    if call.json is None:
        raise _error(400, "Failed to parse the request body as JSON.")
    if not isinstance(call.json, dict):
        raise _error(422, "Failed to deserialize the JSON body into the target type: expected a JSON object.")
    return call.json


def _bad_type(field: str, expected: str) -> DialectError:
    return _error(
        422, f"Failed to deserialize the JSON body into the target type: {field}: expected {expected}."
    )


def _bad_variant(field: str, value: Any, allowed: list[str]) -> DialectError:
    expected = ", ".join(f"`{a}`" for a in allowed)
    return _error(
        422,
        f"Failed to deserialize the JSON body into the target type: {field}: unknown variant `{value}`, "
        f"expected one of {expected}.",
    )


def _enum(body: dict[str, Any], field: str, allowed: list[str], default: str | None) -> str | None:
    value = body.get(field)
    if value is None:
        return default
    if not isinstance(value, str):
        raise _bad_type(field, "a string")
    if value not in allowed:
        raise _bad_variant(field, value, allowed)
    return value


class _Params:
    """Validated common parameters of generations and edits."""

    def __init__(self, body: dict[str, Any], allowed: set[str], *, edit: bool) -> None:
        for field in body:
            if field not in allowed:
                raise _error(400, f"Argument not supported: {field}")
        model = body.get("model")
        if model is None:
            raise _error(
                422, "Failed to deserialize the JSON body into the target type: missing field `model`."
            )
        if not isinstance(model, str):
            raise _bad_type("model", "a string")
        served, forced = ALIASES.get(model, (model, None))
        if served not in IMAGE_MODELS:
            raise _model_not_found(model)
        prompt = body.get("prompt")
        if prompt is None:
            raise _error(
                422, "Failed to deserialize the JSON body into the target type: missing field `prompt`."
            )
        if not isinstance(prompt, str):
            raise _bad_type("prompt", "a string")
        if not prompt.strip():
            raise _error(400, "Prompt must not be empty.")
        n = body.get("n", 1)
        if n is None:
            n = 1
        if not isinstance(n, int) or isinstance(n, bool):
            raise _bad_type("n", "an integer")
        if not 1 <= n <= 10:
            raise _error(400, f"Argument n must be between 1 and 10, got {n}.")
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
            raise _bad_type("user", "a string")

    def size(self, reference: Image | None) -> tuple[int, int]:
        if self.aspect_ratio in self.ratios:
            ratio = self.ratios[self.aspect_ratio]
        elif reference is not None:
            ratio = (reference.width, reference.height)
        else:
            ratio = (1, 1)
        return _area_size(ratio, _MEGAPIXELS[self.resolution])

    def ticks_per_image(self) -> int:
        return _PRICES[self.model][(self.quality, self.resolution)]


def _area_size(ratio: tuple[float, float], megapixels: float) -> tuple[int, int]:
    """About `megapixels` at `ratio`, sides rounded to 16, the area at most 2048x2048."""
    area = megapixels * 1024 * 1024
    w = (area * ratio[0] / ratio[1]) ** 0.5
    h = area / w
    sw, sh = max(16, round(w / 16) * 16), max(16, round(h / 16) * 16)
    if sw * sh > _MAX_PIXELS:
        sw, sh = max(16, int(w // 16) * 16), max(16, int(h // 16) * 16)
    return sw, sh


def _model_not_found(model: str) -> DialectError:
    return _error(
        404,
        f"The model {model} does not exist or your team 00000000-0000-4000-8000-000000000000 "
        "does not have access to it.",
    )


def _load_image(call: Call, ref: Any, field: str, image_only: bool = True) -> Image:
    """Decode one `{"url": ...}` image reference (data URI or a URL this emulator serves)."""
    if not isinstance(ref, dict) or not isinstance(ref.get("url"), str):
        raise _bad_type(field, 'an object {"url": <string>}')
    url: str = ref["url"]
    if url.startswith("data:"):
        try:
            mime, data = decode_data_uri(url)
        except ValueError as exc:
            raise _error(400, f"Invalid image in {field}: {exc}.") from exc
        if mime not in ("image/jpeg", "image/jpg", "image/png", "image/webp"):
            raise _error(400, f"Unsupported image type {mime} in {field}; use PNG, JPG or WebP.")
    elif url.startswith(("http://", "https://")):
        fetched = call.emu.fetch_local(url)
        if fetched is None:
            raise _error(400, f"Image in {field} could not fetch from URL: {url[:200]}")
        data = fetched
    else:
        raise _error(400, f"Invalid image URL in {field}: expected https:// or a data URI.")
    if len(data) > _MAX_IMAGE_BYTES:
        raise _error(400, f"Image in {field} is larger than the 10 MiB limit.")
    try:
        return draw.load(data)
    except ValueError as exc:
        raise _error(400, f"Invalid image data in {field}: the image could not be decoded.") from exc


def _images_reply(call: Call, params: _Params, reference: Image | None, inputs: int) -> Reply:
    fault = call.fault
    created = int(time.time())
    if fault is not None and fault.blocked:
        body = {
            "created": created,
            "model": params.model,
            "block_reason": BLOCK_REASON,
            "data": [],
            "usage": {"cost_in_usd_ticks": 0},
        }
        return json_reply(200, body)
    size = params.size(reference)
    data: list[dict[str, Any]] = []
    count = 0 if fault is not None and fault.empty else params.n
    for index in range(count):
        jpeg = draw.render(
            prompt=params.prompt, model=params.model, size=size, index=index, reference=reference, fmt="jpeg"
        )
        if fault is not None and fault.truncate:
            jpeg = jpeg[: len(jpeg) // 2]
        item: dict[str, Any] = {"mime_type": "image/jpeg", "revised_prompt": ""}
        if params.response_format == "b64_json":
            item["b64_json"] = data_uri("image/jpeg", jpeg)
        else:
            item["url"] = call.emu.host_file("xai", jpeg, "image/jpeg", f"xai-tmp-imgen-{uuid.uuid4()}.jpeg")
        data.append(item)
    ticks = params.ticks_per_image() * len(data) + (_INPUT_IMAGE_TICKS * inputs if data else 0)
    body = {
        "created": created,
        "model": params.model,
        "block_reason": None,
        "data": data,
        "usage": {"cost_in_usd_ticks": ticks},
    }
    return json_reply(200, body)


def generations(call: Call) -> Reply:
    """POST /v1/images/generations."""
    params = _Params(_body(call), _GEN_FIELDS, edit=False)
    return _images_reply(call, params, None, 0)


def edits(call: Call) -> Reply:
    """POST /v1/images/edits: JSON only, one `image` or up to three `images` (five on 2.0)."""
    body = _body(call)
    params = _Params(body, _EDIT_FIELDS, edit=True)
    image, images = body.get("image"), body.get("images")
    if image is not None and images is not None:
        raise _error(400, "Provide either image or images, not both.")
    if image is None and images is None:
        raise _error(400, "One of image or images is required.")
    refs = [image] if image is not None else images
    if not isinstance(refs, list):
        raise _bad_type("images", "a list")
    if not 1 <= len(refs) <= params.max_images:
        raise _error(400, f"Between 1 and {params.max_images} images are supported, got {len(refs)}.")
    loaded = [
        _load_image(call, ref, f"images[{i}]" if images is not None else "image")
        for i, ref in enumerate(refs)
    ]
    if body.get("mask") is not None:
        _load_image(call, body["mask"], "mask")
    return _images_reply(call, params, loaded[0], len(loaded))


def models(call: Call) -> Reply:
    """GET /v1/image-generation-models: ids, aliases and prices (tests may change `emu.listings.xai`)."""
    return json_reply(200, {"models": [dict(m) for m in call.emu.listings.xai]})


def default_listing() -> list[dict[str, Any]]:
    """What xAI lists today; `image_price` is the base price per image in 1e-10 USD."""
    aliases: dict[str, list[str]] = {}
    for alias, (served, _) in ALIASES.items():
        aliases.setdefault(served, []).append(alias)
    return [
        {
            "id": model,
            "fingerprint": f"fp_{model.replace('-', '')[-8:]}",
            "created": 1_754_006_400,
            "object": "model",
            "owned_by": "xai",
            "version": "1.0.0",
            "input_modalities": ["text", "image"],
            "output_modalities": ["image"],
            "image_price": _PRICES[model][("low", "1k")],
            "aliases": aliases.get(model, []),
        }
        for model in IMAGE_MODELS
    ]


def api_key(call: Call) -> Reply:
    """GET /v1/api-key: facts about the presented key (reached only with a valid key).

    Clients use it to tell a bad key from a bad argument: xAI answers both with HTTP 400.
    """
    return json_reply(
        200,
        {
            "redacted_api_key": "xai-****",
            "user_id": "sandbox-user",
            "name": "sandbox",
            "team_id": "sandbox-team",
            "api_key_id": "sandbox-key",
            "acls": ["api-key:model:*", "api-key:endpoint:*"],
            "team_blocked": False,
            "api_key_blocked": False,
            "api_key_disabled": False,
        },
    )


def chat(call: Call) -> Reply:
    """POST /v1/chat/completions: describes the images it is shown, deterministically."""
    body = _body(call)
    model = body.get("model")
    if not isinstance(model, str):
        raise _error(422, "Failed to deserialize the JSON body into the target type: missing field `model`.")
    if model in _RETIRED_CHAT or not model.startswith("grok-") or model in (*IMAGE_MODELS, *ALIASES):
        raise _model_not_found(model)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _error(
            422, "Failed to deserialize the JSON body into the target type: missing field `messages`."
        )
    texts: list[str] = []
    descriptions: list[str] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
            continue
        for part in content if isinstance(content, list) else []:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif part.get("type") == "image_url":
                descriptions.append(draw.describe(_load_image(call, part.get("image_url"), "image_url")))
    text = " ".join(texts)
    answer = " ".join(descriptions) if descriptions else f"A sandbox reply to: {text[:200]}"
    prompt_tokens = max(1, len(text) // 4) + 256 * len(descriptions)
    completion_tokens = max(1, len(answer) // 4)
    return json_reply(
        200,
        {
            "id": str(uuid.uuid4()),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer, "refusal": None},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {
                    "text_tokens": prompt_tokens - 256 * len(descriptions),
                    "image_tokens": 256 * len(descriptions),
                },
            },
            "system_fingerprint": "fp_sandbox",
        },
    )


#: The dialect with every endpoint it answers, as the provider's registration names it.
DIALECT = dataclasses.replace(
    DIALECT,
    routes=(
        Route("POST", r"/v1/images/generations", "generations", generations),
        Route("POST", r"/v1/images/edits", "edits", edits),
        Route("POST", r"/v1/chat/completions", "chat", chat),
        Route("GET", r"/v1/api-key", "api_key", api_key),
        Route("GET", r"/v1/image-generation-models", "models", models),
    ),
)
