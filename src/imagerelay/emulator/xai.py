"""The xAI dialect: Grok Imagine image generation and edits, and vision chat.

Errors are `{"code": <gRPC status text>, "error": <message>}`, not OpenAI-shaped; a bad key is 400.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import TYPE_CHECKING, Any

from imagerelay.emulator import draw
from imagerelay.emulator.wire import Call, Dialect, Reply, Route, data_uri, decode_data_uri, json_reply
from imagerelay.emulator.xai_errors import (
    auth_error,
    bad_type,
    error,
    error_reply,
    missing_field,
    model_not_found,
    not_found,
)
from imagerelay.emulator.xai_models import (
    ALIASES,
    EDIT_FIELDS,
    GEN_FIELDS,
    IMAGE_MODELS,
    INPUT_IMAGE_TICKS,
    PRICES,
    RETIRED_CHAT,
    Params,
)

if TYPE_CHECKING:
    from PIL.Image import Image

    from imagerelay.emulator.server import Emulator

__all__ = [
    "BLOCK_REASON",
    "DIALECT",
    "api_key",
    "chat",
    "default_listing",
    "edits",
    "generations",
    "listed",
    "models",
]

_MAX_IMAGE_BYTES = 10 * 1024 * 1024
BLOCK_REASON = "The request was blocked by content moderation."


DIALECT = Dialect("xai", auth_error, error_reply, not_found)


def _body(call: Call) -> dict[str, Any]:
    if call.content_type != "application/json":
        raise error(415, "Expected request with `Content-Type: application/json`")
    if call.json is None:
        raise error(400, "Failed to parse the request body as JSON.")
    if not isinstance(call.json, dict):
        raise error(422, "Failed to deserialize the JSON body into the target type: expected a JSON object.")
    return call.json


def _load_image(call: Call, ref: Any, field: str, image_only: bool = True) -> Image:
    """Decode one `{"url": ...}` image reference (data URI or a URL this emulator serves)."""
    if not isinstance(ref, dict) or not isinstance(ref.get("url"), str):
        raise bad_type(field, 'an object {"url": <string>}')
    url: str = ref["url"]
    if url.startswith("data:"):
        try:
            mime, data = decode_data_uri(url)
        except ValueError as exc:
            raise error(400, f"Invalid image in {field}: {exc}.") from exc
        if mime not in ("image/jpeg", "image/jpg", "image/png", "image/webp"):
            raise error(400, f"Unsupported image type {mime} in {field}; use PNG, JPG or WebP.")
    elif url.startswith(("http://", "https://")):
        fetched = call.emu.fetch_local(url)
        if fetched is None:
            raise error(400, f"Image in {field} could not fetch from URL: {url[:200]}")
        data = fetched
    else:
        raise error(400, f"Invalid image URL in {field}: expected https:// or a data URI.")
    if len(data) > _MAX_IMAGE_BYTES:
        raise error(400, f"Image in {field} is larger than the 10 MiB limit.")
    try:
        return draw.load(data)
    except ValueError as exc:
        raise error(400, f"Invalid image data in {field}: the image could not be decoded.") from exc


def _images_reply(call: Call, params: Params, reference: Image | None, inputs: int) -> Reply:
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
    ticks = params.ticks_per_image() * len(data) + (INPUT_IMAGE_TICKS * inputs if data else 0)
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
    params = Params(_body(call), GEN_FIELDS, edit=False)
    return _images_reply(call, params, None, 0)


def edits(call: Call) -> Reply:
    """POST /v1/images/edits: JSON only, one `image` or up to three `images` (five on 2.0)."""
    body = _body(call)
    params = Params(body, EDIT_FIELDS, edit=True)
    image, images = body.get("image"), body.get("images")
    if image is not None and images is not None:
        raise error(400, "Provide either image or images, not both.")
    if image is None and images is None:
        raise error(400, "One of image or images is required.")
    refs = [image] if image is not None else images
    if not isinstance(refs, list):
        raise bad_type("images", "a list")
    if not 1 <= len(refs) <= params.max_images:
        raise error(400, f"Between 1 and {params.max_images} images are supported, got {len(refs)}.")
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


def listed(emu: Emulator, model_id: str) -> dict[str, Any]:
    """The xAI listing entry of `model_id` (`emu.listings.xai`), to edit in place."""
    entry: dict[str, Any] = next(m for m in emu.listings.xai if m["id"] == model_id)
    return entry


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
            "image_price": PRICES[model][("low", "1k")],
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
        raise missing_field("model")
    if model in RETIRED_CHAT or not model.startswith("grok-") or model in (*IMAGE_MODELS, *ALIASES):
        raise model_not_found(model)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise missing_field("messages")
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


#: What an expired image URL answers (xAI's storage: 403 XML, not the API's JSON).
_XML_EXPIRED = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
    b"<Message>Request has expired.</Message></Error>"
)


def expired_file() -> Reply:
    return Reply(403, _XML_EXPIRED, "application/xml")


#: The dialect with every endpoint it answers, as the provider's registration names it.
DIALECT = dataclasses.replace(
    DIALECT,
    expired_file=expired_file,
    listings={"xai": default_listing},
    routes=(
        Route("POST", r"/v1/images/generations", "generations", generations),
        Route("POST", r"/v1/images/edits", "edits", edits),
        Route("POST", r"/v1/chat/completions", "chat", chat),
        Route("GET", r"/v1/api-key", "api_key", api_key),
        Route("GET", r"/v1/image-generation-models", "models", models),
    ),
)
