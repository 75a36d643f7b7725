"""The OpenAI dialect: GPT-image generations and edits (multipart or JSON), always `b64_json`.

Errors are `{"error": {"message", "type", "param", "code"}}`; every answer carries `x-request-id`.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import re
import time
from typing import TYPE_CHECKING, Any

from imagerelay.emulator import draw
from imagerelay.emulator.wire import (
    Call,
    Dialect,
    DialectError,
    Fault,
    Reply,
    Route,
    decode_data_uri,
    json_reply,
)

if TYPE_CHECKING:
    from PIL.Image import Image

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
_TIERED = GPT_IMAGE_2_5 + GPT_IMAGE_2_6
#: Output tokens per image: ceil(f * round(f*short/long) * (2e6 + w*h) / 4e6), f by quality
#: (the gpt-image-2 calculator's formula; xhigh and max are this stand-in's own figures).
_QUALITY_FACTORS = {"low": 16, "medium": 48, "high": 96, "xhigh": 128, "max": 176}
_MIN_PIXELS = 655_360
_MAX_MASK_BYTES = 4 * 1024 * 1024

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
_GEN_PARAMS = _COMMON | {"moderation"}
# `moderation` is a generation parameter only; `input_fidelity` is for the shut-down 1.x models.
_EDIT_PARAMS = _COMMON | {"mask", "markup", "image", "image[]", "images"}
_MAX_IMAGE_BYTES = 50 * 1024 * 1024
_INPUT_MIME = {"image/png", "image/jpeg", "image/jpg", "image/webp"}
_PIL_FORMATS = {"PNG", "JPEG", "WEBP"}

_STATUS_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model.", "invalid_request_error", None),
    404: ("The requested resource was not found.", "invalid_request_error", None),
    409: ("The request conflicted with another request.", "invalid_request_error", None),
    429: (
        "Rate limit reached for images per minute. Please try again in 1s.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
}


def _error(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> DialectError:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return DialectError(json_reply(status, body))


def mask_key(key: str) -> str:
    """Show a key the way the error message does: a few characters, never the whole key."""
    tail = key[-4:] if len(key) >= 16 else ""
    return f"{key[:5]}***{tail}"


def _auth_error(key: str | None) -> Reply:
    if not key:
        return _error(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        ).reply
    return _error(
        401,
        f"Incorrect API key provided: {mask_key(key)}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    ).reply


def _error_reply(status: int, fault: Fault | None) -> Reply:
    message, type_, code = _STATUS_ERRORS.get(status, (f"HTTP {status}", "server_error", None))
    if fault is not None and fault.error:
        message = fault.error
    reply = _error(status, message, type_, None, code).reply
    if status == 429:
        headers = {k.lower(): v for k, v in (fault.headers if fault else {}).items()}
        seconds = headers.get("retry-after", "1")
        try:
            ms = str(int(float(seconds) * 1000))
        except ValueError:
            ms = "1000"
        reply.headers.update(
            {
                "retry-after": seconds,
                "retry-after-ms": headers.get("retry-after-ms", ms),
                "x-ratelimit-limit-requests": "50",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": f"{seconds}s",
                "x-ratelimit-limit-tokens": "100000",
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": f"{seconds}s",
            }
        )
    return reply


def _not_found(method: str, path: str) -> Reply:
    api_path = path.removeprefix("/openai")
    return _error(404, f"Invalid URL ({method} {api_path})").reply


DIALECT = Dialect("openai", _auth_error, _error_reply, _not_found, request_ids=True)


def _model_not_found(model: str) -> DialectError:
    return _error(
        404, f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
    )


def _invalid(param: str, message: str, code: str = "invalid_value") -> DialectError:
    return _error(400, message, param=param, code=code)


def _enum(fields: dict[str, Any], param: str, allowed: tuple[str, ...], default: str) -> str:
    value = fields.get(param)
    if value is None:
        return default
    if value not in allowed:
        supported = ", ".join(f"'{a}'" for a in allowed)
        raise _invalid(param, f"Invalid value: '{value}'. Supported values are: {supported}.")
    return str(value)


def _int(fields: dict[str, Any], param: str, lo: int, hi: int, default: int) -> int:
    value = fields.get(param)
    if value is None:
        return default
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        value = int(value)  # multipart fields arrive as text
    if not isinstance(value, int) or isinstance(value, bool):
        raise _invalid(param, f"Invalid type for '{param}': expected an integer.", "invalid_type")
    if value < lo:
        raise _invalid(
            param,
            f"Invalid '{param}': integer below minimum value. Expected >= {lo}.",
            "integer_below_min_value",
        )
    if value > hi:
        raise _invalid(
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
    bad = _invalid("size", f"Invalid value: '{value}'. Supported values are: {allowed}.")
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
        raise _invalid("size", f"Invalid size '{value}': width and height must both be divisible by 16.")
    if long_side > 3 * short_side:
        raise _invalid("size", f"Invalid size '{value}': the aspect ratio must be between 1:3 and 3:1.")
    if long_side > 3840 or short_side > 2160:
        raise _invalid("size", f"Invalid size '{value}': the maximum supported resolution is 3840x2160.")
    if w * h < _MIN_PIXELS:
        raise _invalid("size", f"Invalid size '{value}': the image must have at least {_MIN_PIXELS} pixels.")
    return w, h


def _unsupported(param: str, model: str) -> DialectError:
    return _error(
        400,
        f"Unsupported parameter: '{param}' is not supported with this model.",
        param=param,
        code="unsupported_parameter",
    )


class _Params:
    """Validated parameters shared by generations and edits."""

    def __init__(self, fields: dict[str, Any], allowed: set[str]) -> None:
        model = fields.get("model")
        if model is None:
            raise _error(400, "you must provide a model parameter")
        if not isinstance(model, str) or model not in MODELS:
            raise _model_not_found(str(model))
        for name in fields:
            if name not in allowed:
                raise _error(400, f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
        prompt = fields.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise _invalid("prompt", "Missing required parameter: 'prompt'.", "missing_required_parameter")
        if len(prompt) > 32000:
            raise _invalid(
                "prompt",
                f"Invalid 'prompt': string too long. Expected a string with maximum length 32000, "
                f"but got a string with length {len(prompt)} instead.",
                "string_above_max_length",
            )
        tiered = model in _TIERED
        self.model: str = model
        self.prompt: str = prompt
        self.n = _int(fields, "n", 1, 10, 1)
        self.size = _size(model, fields.get("size"))
        qualities = ("low", "medium", "high", *(("xhigh", "max") if tiered else ()), "auto")
        self.quality = _enum(fields, "quality", qualities, "auto")
        formats = ("png", "jpeg", "webp", "gif", "svg") if model in GPT_IMAGE_2_6 else ("png", "jpeg", "webp")
        self.output_format = _enum(fields, "output_format", formats, "png")
        if self.output_format in ("gif", "svg"):
            raise _error(
                403,
                f"Your organization does not have access to the {self.output_format.upper()} output preview "
                "for this model.",
                param="output_format",
            )
        self.compression = _int(fields, "output_compression", 0, 100, 100)
        self.background = _enum(fields, "background", ("transparent", "opaque", "auto"), "auto")
        if self.background == "transparent" and self.output_format == "jpeg":
            raise _invalid(
                "background", "Transparent background is not supported for the 'jpeg' output format."
            )
        _enum(fields, "moderation", ("low", "auto"), "auto")
        if fields.get("complexity") is not None and not tiered:
            raise _unsupported("complexity", model)
        _enum(fields, "complexity", ("low", "medium", "high"), "high")
        for text in ("user", "safety_identifier"):
            if fields.get(text) is not None and not isinstance(fields[text], str):
                raise _invalid(text, f"Invalid type for '{text}': expected a string.", "invalid_type")
        stream = fields.get("stream")
        if stream not in (None, False, "false"):
            raise _invalid("stream", "Streaming is not supported by this endpoint of the sandbox.")

    def resolved_quality(self) -> str:
        return "medium" if self.quality == "auto" else self.quality


def output_tokens(quality: str, size: tuple[int, int]) -> int:
    """Output tokens OpenAI bills for one image of `size` at `quality`."""
    w, h = size
    f = _QUALITY_FACTORS[quality]
    short_factor = (2 * f * min(w, h) + max(w, h)) // (2 * max(w, h))
    return (f * short_factor * (2_000_000 + w * h) + 4_000_000 - 1) // 4_000_000


def _image_tokens(img: Image) -> int:
    """Input image tokens: 85 + 170 per 512px tile after fitting 2048 and a 768px short side."""
    w, h = float(img.width), float(img.height)
    scale = min(1.0, 2048 / max(w, h))
    w, h = w * scale, h * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def _respond(call: Call, params: _Params, references: list[Image]) -> Reply:
    fault = call.fault
    if fault is not None and fault.blocked:
        raise _error(
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
        raise _error(
            400,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
            "your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not "
            "valid JSON.)",
        )
    return call.json


def generations(call: Call) -> Reply:
    """POST /v1/images/generations."""
    params = _Params(_json_fields(call), _GEN_PARAMS)
    return _respond(call, params, [])


def _decode(param: str, data: bytes, mime: str) -> Image:
    if len(data) >= _MAX_IMAGE_BYTES:
        raise _invalid(
            param, f"Invalid file '{param}': the file must be smaller than 50 MB.", "image_too_large"
        )
    try:
        img = draw.load(data)
    except ValueError as exc:
        raise _invalid(param, f"Invalid image file or mode for image '{param}'.", "invalid_image") from exc
    if img.format not in _PIL_FORMATS or (mime not in _INPUT_MIME and mime != "application/octet-stream"):
        raise _invalid(
            param,
            f"Invalid file '{param}': unsupported mimetype ('{mime}'). Supported file formats are "
            "'image/jpeg', 'image/png', and 'image/webp'.",
            "unsupported_file_mimetype",
        )
    return img


def _json_image(call: Call, param: str, ref: Any) -> Image:
    if not isinstance(ref, dict):
        raise _invalid(param, f"Invalid type for '{param}': expected an object.", "invalid_type")
    if "file_id" in ref:
        raise _invalid(param, f"No such File object: {ref['file_id']}.", "invalid_value")
    url = ref.get("image_url")
    if not isinstance(url, str):
        raise _invalid(
            param, f"Missing required parameter: '{param}.image_url'.", "missing_required_parameter"
        )
    if url.startswith("data:"):
        try:
            mime, data = decode_data_uri(url)
        except ValueError as exc:
            raise _invalid(param, f"Invalid base64 image_url in '{param}'.", "invalid_image_url") from exc
        return _decode(param, data, mime)
    fetched = call.emu.fetch_local(url)
    if fetched is None:
        raise _invalid(param, f"Error while downloading {url[:200]}.", "invalid_image_url")
    return _decode(param, fetched, "application/octet-stream")


def edits(call: Call) -> Reply:
    """POST /v1/images/edits: multipart `image`/`image[]` files, or JSON `images` references."""
    if call.content_type == "multipart/form-data":
        fields: dict[str, Any] = dict(call.form)
        files = [p for p in call.parts if p.filename is not None]
        for part in files:
            fields.setdefault(part.name, "<file>")
        params = _Params(fields, _EDIT_PARAMS)
        inputs = [p for p in files if p.name in ("image", "image[]")]
        if not inputs:
            raise _invalid("image", "Missing required parameter: 'image'.", "missing_required_parameter")
        if len(inputs) > 16:
            raise _invalid("image", "Invalid 'image': expected at most 16 images.", "array_above_max_length")
        images = [_decode(p.name, p.data, p.content_type.lower()) for p in inputs]
        masks = [p for p in files if p.name == "mask"]
        if masks and len(masks[0].data) >= _MAX_MASK_BYTES:
            raise _invalid("mask", "Invalid mask: the mask must be smaller than 4 MB.", "image_too_large")
        mask = _decode("mask", masks[0].data, masks[0].content_type.lower()) if masks else None
        markups = [p for p in files if p.name == "markup"]
        if markups:
            _check_markup(params, mask, _decode("markup", markups[0].data, markups[0].content_type.lower()))
    else:
        body = _json_fields(call)
        params = _Params(body, _EDIT_PARAMS - {"image", "image[]", "markup"})
        refs = body.get("images")
        if not isinstance(refs, list) or not refs:
            raise _invalid("images", "Missing required parameter: 'images'.", "missing_required_parameter")
        if len(refs) > 16:
            raise _invalid(
                "images", "Invalid 'images': expected at most 16 images.", "array_above_max_length"
            )
        images = [_json_image(call, f"images[{i}]", ref) for i, ref in enumerate(refs)]
        mask = _json_image(call, "mask", body["mask"]) if body.get("mask") is not None else None
    if mask is not None:
        if mask.format != "PNG":
            raise _invalid("mask", "Invalid mask: the mask must be a PNG image.", "invalid_image_format")
        if mask.size != images[0].size:
            raise _invalid(
                "mask",
                f"Invalid mask: its size {mask.width}x{mask.height} does not match the image size "
                f"{images[0].width}x{images[0].height}.",
            )
    return _respond(call, params, images)


def _check_markup(params: _Params, mask: Image | None, markup: Image) -> None:
    """`markup` (a transparent PNG guiding the edit): GPT Image 2.5 and later, never with a mask."""
    if params.model not in _TIERED:
        raise _unsupported("markup", params.model)
    if mask is not None:
        raise _invalid("markup", "markup cannot be combined with mask.", "invalid_value")
    if markup.format != "PNG":
        raise _invalid("markup", "Invalid markup: it must be a PNG image.", "invalid_image_format")


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
    routes=(
        Route("GET", r"/v1/models", "models", models),
        Route("POST", r"/v1/images/generations", "generations", generations),
        Route("POST", r"/v1/images/edits", "edits", edits),
    ),
)
