"""The OpenAI dialect: GPT-image generations and edits (multipart or JSON), always `b64_json`.

Errors are `{"error": {"message", "type", "param", "code"}}`; every answer carries `x-request-id`.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import time
from typing import TYPE_CHECKING, Any

from imagerelay.emulator import draw
from imagerelay.emulator.openai_errors import auth_error, error, error_reply, invalid, not_found, unsupported
from imagerelay.emulator.openai_models import (
    EDIT_PARAMS,
    FIXED_SIZES,
    GEN_PARAMS,
    MODELS,
    OTHER_LISTED,
    TIERED,
    Params,
    output_tokens,
)
from imagerelay.emulator.wire import Call, Dialect, Reply, Route, decode_data_uri, json_reply

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = ["DIALECT", "default_listing", "edits", "generations", "models"]

_MAX_MASK_BYTES = 4 * 1024 * 1024
_MAX_IMAGE_BYTES = 50 * 1024 * 1024
_INPUT_MIME = {"image/png", "image/jpeg", "image/jpg", "image/webp"}
_PIL_FORMATS = {"PNG", "JPEG", "WEBP"}

DIALECT = Dialect("openai", auth_error, error_reply, not_found, request_ids=True)


def _image_tokens(img: Image) -> int:
    """Input image tokens: 85 + 170 per 512px tile after fitting 2048 and a 768px short side."""
    w, h = float(img.width), float(img.height)
    scale = min(1.0, 2048 / max(w, h))
    w, h = w * scale, h * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def _respond(call: Call, params: Params, references: list[Image]) -> Reply:
    fault = call.fault
    if fault is not None and fault.blocked:
        raise error(
            400,
            "Your request was rejected by the safety system. If you believe this is an error, "
            "contact us at help.openai.com and include the request ID.",
            type_="image_generation_user_error",
            code="moderation_blocked",
        )
    reference = references[0] if references else None
    size = params.size
    if size is None:  # auto: the standard size nearest the reference's shape
        target = reference.width / reference.height if reference is not None else 1.0
        w, h = min(
            (tuple(int(v) for v in s.split("x")) for s in FIXED_SIZES),
            key=lambda s: abs(math.log(s[0] / s[1] / target)),
        )
        size = (w, h)
    quality = params.resolved_quality()
    transparent = params.background == "transparent"
    count = 0 if fault is not None and fault.empty else params.n
    data = []
    for index in range(count):
        image = draw.render(
            prompt=params.prompt,
            model=params.model,
            size=size,
            index=index,
            reference=reference,
            fmt=params.output_format,
            quality=params.compression,
            transparent=transparent,
        )
        if fault is not None and fault.truncate:
            image = image[: len(image) // 2]
        data.append({"b64_json": base64.b64encode(image).decode()})
    text_tokens = max(1, len(params.prompt) // 4)
    image_tokens = sum(_image_tokens(r) for r in references)
    out_tokens = output_tokens(quality, size) * params.n
    body = {
        "created": int(time.time()),
        "background": "transparent" if transparent else "opaque",
        "output_format": params.output_format,
        "quality": quality,
        "size": f"{size[0]}x{size[1]}",
        "data": data,
        "usage": {
            "input_tokens": text_tokens + image_tokens,
            "input_tokens_details": {"image_tokens": image_tokens, "text_tokens": text_tokens},
            "output_tokens": out_tokens,
            "output_tokens_details": {"image_tokens": out_tokens, "text_tokens": 0},
            "total_tokens": text_tokens + image_tokens + out_tokens,
        },
    }
    return json_reply(200, body, openai_processing_ms="42", openai_version="2020-10-01")


def _json_fields(call: Call) -> dict[str, Any]:
    if call.content_type != "application/json" or not isinstance(call.json, dict):
        raise error(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
            "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
            "valid JSON.)",
        )
    return call.json


def generations(call: Call) -> Reply:
    """POST /v1/images/generations."""
    params = Params(_json_fields(call), GEN_PARAMS)
    return _respond(call, params, [])


def _decode(param: str, data: bytes, mime: str) -> Image:
    if len(data) >= _MAX_IMAGE_BYTES:
        raise invalid(
            param, f"Invalid file '{param}': the file must be smaller than 50 MB.", "image_too_large"
        )
    try:
        img = draw.load(data)
    except ValueError as exc:
        raise invalid(param, f"Invalid image file or mode for image '{param}'.", "invalid_image") from exc
    if img.format not in _PIL_FORMATS or (mime not in _INPUT_MIME and mime != "application/octet-stream"):
        raise invalid(
            param,
            f"Invalid file '{param}': unsupported mimetype ('{mime}'). Supported file formats are "
            "'image/jpeg', 'image/png', and 'image/webp'.",
            "unsupported_file_mimetype",
        )
    return img


def _json_image(call: Call, param: str, ref: Any) -> Image:
    if not isinstance(ref, dict):
        raise invalid(param, f"Invalid type for '{param}': expected an object.", "invalid_type")
    if "file_id" in ref:
        raise invalid(param, f"No such File object: {ref['file_id']}.", "invalid_value")
    url = ref.get("image_url")
    if not isinstance(url, str):
        raise invalid(
            param, f"Missing required parameter: '{param}.image_url'.", "missing_required_parameter"
        )
    if url.startswith("data:"):
        try:
            mime, data = decode_data_uri(url)
        except ValueError as exc:
            raise invalid(param, f"Invalid base64 image_url in '{param}'.", "invalid_image_url") from exc
        return _decode(param, data, mime)
    fetched = call.emu.fetch_local(url)
    if fetched is None:
        raise invalid(param, f"Error while downloading {url[:200]}.", "invalid_image_url")
    return _decode(param, fetched, "application/octet-stream")


def edits(call: Call) -> Reply:
    """POST /v1/images/edits: multipart `image`/`image[]` files, or JSON `images` references."""
    if call.content_type == "multipart/form-data":
        fields: dict[str, Any] = dict(call.form)
        files = [p for p in call.parts if p.filename is not None]
        for part in files:
            fields.setdefault(part.name, "<file>")
        params = Params(fields, EDIT_PARAMS)
        inputs = [p for p in files if p.name in ("image", "image[]")]
        if not inputs:
            raise invalid("image", "Missing required parameter: 'image'.", "missing_required_parameter")
        if len(inputs) > 16:
            raise invalid("image", "Invalid 'image': expected at most 16 images.", "array_above_max_length")
        images = [_decode(p.name, p.data, p.content_type.lower()) for p in inputs]
        masks = [p for p in files if p.name == "mask"]
        if masks and len(masks[0].data) >= _MAX_MASK_BYTES:
            raise invalid("mask", "Invalid mask: the mask must be smaller than 4 MB.", "image_too_large")
        mask = _decode("mask", masks[0].data, masks[0].content_type.lower()) if masks else None
        markups = [p for p in files if p.name == "markup"]
        if markups:
            _check_markup(params, mask, _decode("markup", markups[0].data, markups[0].content_type.lower()))
    else:
        body = _json_fields(call)
        params = Params(body, EDIT_PARAMS - {"image", "image[]", "markup"})
        refs = body.get("images")
        if not isinstance(refs, list) or not refs:
            raise invalid("images", "Missing required parameter: 'images'.", "missing_required_parameter")
        if len(refs) > 16:
            raise invalid("images", "Invalid 'images': expected at most 16 images.", "array_above_max_length")
        images = [_json_image(call, f"images[{i}]", ref) for i, ref in enumerate(refs)]
        mask = _json_image(call, "mask", body["mask"]) if body.get("mask") is not None else None
    if mask is not None:
        if mask.format != "PNG":
            raise invalid("mask", "Invalid mask: the mask must be a PNG image.", "invalid_image_format")
        if mask.size != images[0].size:
            raise invalid(
                "mask",
                f"Invalid mask: its size {mask.width}x{mask.height} does not match the image size "
                f"{images[0].width}x{images[0].height}.",
            )
    return _respond(call, params, images)


def _check_markup(params: Params, mask: Image | None, markup: Image) -> None:
    """`markup` (a transparent PNG guiding the edit): GPT Image 2.5 and later, never with a mask."""
    if params.model not in TIERED:
        raise unsupported("markup", params.model)
    if mask is not None:
        raise invalid("markup", "markup cannot be combined with mask.", "invalid_value")
    if markup.format != "PNG":
        raise invalid("markup", "Invalid markup: it must be a PNG image.", "invalid_image_format")


def models(call: Call) -> Reply:
    """GET /v1/models: the account's models (tests may change `emu.listings.openai`)."""
    return json_reply(200, {"object": "list", "data": [dict(m) for m in call.emu.listings.openai]})


def default_listing() -> list[dict[str, Any]]:
    """What `GET /v1/models` lists today: the image models served, and a few others."""
    return [
        {"id": model, "object": "model", "created": 1_764_547_200, "owned_by": "system"}
        for model in (*MODELS, *OTHER_LISTED)
    ]


#: The dialect with every endpoint it answers, as the provider's registration names it.
DIALECT = dataclasses.replace(
    DIALECT,
    listings={"openai": default_listing},
    routes=(
        Route("GET", r"/v1/models", "models", models),
        Route("POST", r"/v1/images/generations", "generations", generations),
        Route("POST", r"/v1/images/edits", "edits", edits),
    ),
)
