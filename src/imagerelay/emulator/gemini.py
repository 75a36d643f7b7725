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
import dataclasses
import re
import uuid
from typing import Any

from imagerelay.emulator import draw
from imagerelay.emulator.gemini_errors import (
    JSON,
    auth_error,
    error,
    error_reply,
    invalid,
    not_found,
    presented_key,
)
from imagerelay.emulator.gemini_models import MODELS, GenerateRequest
from imagerelay.emulator.wire import Call, Dialect, Reply, Route, json_reply

__all__ = ["DIALECT", "default_listing", "generate", "get_model", "list_models"]

DIALECT = Dialect(
    "gemini",
    auth_error,
    error_reply,
    not_found,
    presented_key=presented_key,
    secret_headers=("x-goog-api-key",),
    version="v1beta",
)


def _usage(req: GenerateRequest, candidates: int) -> dict[str, Any]:
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


def _answer(req: GenerateRequest, body: dict[str, Any]) -> Reply:
    body["modelVersion"] = req.name
    body["responseId"] = uuid.uuid4().hex[:22]
    if req.model.stage:
        body["modelStatus"] = {"modelStage": req.model.stage, "message": f"models/{req.name} is deprecated."}
    return json_reply(200, body, JSON)


def _inline(mime: str, data: bytes) -> dict[str, Any]:
    return {"mimeType": mime, "data": base64.b64encode(data).decode()}


def generate(call: Call) -> Reply:
    """POST /{version}/models/{model}:generateContent."""
    fault = call.fault
    req = GenerateRequest(call, call.params["model"], call.params.get("version") or "")
    deadline = call.headers.get("x-server-timeout", "")
    if (
        fault is not None
        and fault.latency
        and re.fullmatch(r"\d+", deadline)
        and fault.latency > int(deadline)
    ):
        raise error(504)  # slower than the deadline the client announced
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
            "inputTokenLimit": model.token_limits[0],
            "outputTokenLimit": model.token_limits[1],
            "supportedGenerationMethods": ["generateContent", "countTokens"],
            "thinking": bool(model.thinking),
        }
        for name, model in MODELS.items()
    ]


def list_models(call: Call) -> Reply:
    """GET /{version}/models: the listing, `pageSize` models a page (50 unless asked, at most
    1000, as Google pages it), the next page named by `nextPageToken` (`pageToken`)."""
    listed = call.emu.listings.gemini
    try:
        size = min(int(call.query.get("pageSize") or 50), 1000)
        start = int(call.query.get("pageToken") or 0)
    except ValueError:
        raise invalid("Invalid value at 'page_size' or 'page_token' (TYPE_INT32)") from None
    if size <= 0:
        size = 50
    body: dict[str, Any] = {"models": [dict(m) for m in listed[start : start + size]]}
    if start + size < len(listed):
        body["nextPageToken"] = str(start + size)
    return json_reply(200, body, JSON)


def get_model(call: Call) -> Reply:
    """GET /{version}/models/{model}: one listed model, or the 404 a generation would get."""
    name = call.params["model"]
    found = next((m for m in call.emu.listings.gemini if m["name"] == f"models/{name}"), None)
    if found is None:
        GenerateRequest.missing(name, call.params.get("version") or "")
    return json_reply(200, dict(found), JSON)


#: The dialect with every endpoint it answers, as the provider's registration names it.
DIALECT = dataclasses.replace(
    DIALECT,
    listings={"gemini": default_listing},
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
