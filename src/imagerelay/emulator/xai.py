"""The xAI dialect: Grok Imagine image generation and edits, and vision chat.

Errors are `{"code": <gRPC status text>, "error": <message>}`, not OpenAI-shaped; a bad key is 400.
"""

from __future__ import annotations

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

# Prices in ticks (1e10 ticks = 1 USD), per output image; catalog values, unconfirmed.
IMAGE_MODELS = ("grok-imagine-image", "grok-imagine-image-quality", "grok-imagine-image-2.0")
_TICKS_PER_USD = 10_000_000_000
_INPUT_IMAGE_TICKS = _TICKS_PER_USD // 100
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
_LONG_SIDE = {"1k": 1024, "2k": 2048}
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

    def __init__(self, body: dict[str, Any], allowed: set[str]) -> None:
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
        if model not in IMAGE_MODELS:
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
        self.model: str = model
        self.prompt: str = prompt
        self.n: int = n
        self.response_format = _enum(body, "response_format", ["url", "b64_json"], "url")
        self.aspect_ratio = _enum(body, "aspect_ratio", [*ASPECT_RATIOS, "auto"], "auto")
        self.resolution = _enum(body, "resolution", list(_LONG_SIDE), "1k") or "1k"
        if "quality" in body and body["quality"] is not None and model != "grok-imagine-image-2.0":
            raise _error(400, "Argument not supported: quality")
        self.quality = _enum(body, "quality", ["low", "medium"], None)
        if "user" in body and body["user"] is not None and not isinstance(body["user"], str):
            raise _bad_type("user", "a string")

    def size(self, reference: Image | None) -> tuple[int, int]:
        long_side = _LONG_SIDE[self.resolution]
        if self.aspect_ratio in ASPECT_RATIOS:
            return draw.ratio_size(*ASPECT_RATIOS[self.aspect_ratio], long_side, multiple=2)
        if reference is not None:
            return draw.ratio_size(reference.width, reference.height, long_side, multiple=2)
        return long_side, long_side

    def ticks_per_image(self) -> int:
        if self.model == "grok-imagine-image-quality":
            cents = 5 if self.resolution == "1k" else 7
        elif self.model == "grok-imagine-image-2.0":
            cents = {"low": 4, "medium": 6}.get(self.quality or "", 8)
        else:
            cents = 2
        return cents * _TICKS_PER_USD // 100


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
        if mime not in ("image/jpeg", "image/jpg", "image/png"):
            raise _error(400, f"Unsupported image type {mime} in {field}; use image/jpeg or image/png.")
    elif url.startswith(("http://", "https://")):
        fetched = call.emu.fetch_local(url)
        if fetched is None:
            raise _error(400, f"Image in {field} could not fetch from URL: {url[:200]}")
        data = fetched
    else:
        raise _error(400, f"Invalid image URL in {field}: expected https:// or a data URI.")
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
    return json_reply(
        200, {"created": created, "block_reason": None, "data": data, "usage": {"cost_in_usd_ticks": ticks}}
    )


def generations(call: Call) -> Reply:
    """POST /v1/images/generations."""
    params = _Params(_body(call), _GEN_FIELDS)
    return _images_reply(call, params, None, 0)


def edits(call: Call) -> Reply:
    """POST /v1/images/edits: JSON only, one `image` or up to three `images`."""
    body = _body(call)
    params = _Params(body, _EDIT_FIELDS)
    image, images = body.get("image"), body.get("images")
    if image is not None and images is not None:
        raise _error(400, "Provide either image or images, not both.")
    if image is None and images is None:
        raise _error(400, "One of image or images is required.")
    refs = [image] if image is not None else images
    if not isinstance(refs, list):
        raise _bad_type("images", "a list")
    if not 1 <= len(refs) <= 3:
        raise _error(400, f"Between 1 and 3 images are supported, got {len(refs)}.")
    loaded = [
        _load_image(call, ref, f"images[{i}]" if images is not None else "image")
        for i, ref in enumerate(refs)
    ]
    if body.get("mask") is not None:
        _load_image(call, body["mask"], "mask")
    return _images_reply(call, params, loaded[0], len(loaded))


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
    if model in _RETIRED_CHAT or not model.startswith("grok-") or model in IMAGE_MODELS:
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
