"""xAI Grok Imagine over plain httpx (the official xai-sdk speaks gRPC, not this HTTP API).

Wire facts (see providers/xai.toml): JSON only, `size`/`style` are refused, `b64_json` is a
data-URI string, `block_reason` marks a moderation refusal, cost comes as `cost_in_usd_ticks`
(1e10 ticks = 1 USD), and errors are `{"code", "error"}` — not OpenAI-shaped.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import (
    AuthenticationFailed,
    ContentBlocked,
    EmptyResult,
    MalformedResponse,
    ProviderError,
    QuotaExhausted,
)
from ..hooks import Sent
from ..plugins import builtin
from .base import Backend, Call, CallResult, Deliver, Delivered, OnEvent
from .download import download_image
from .http import (
    ErrorContext,
    StatusTable,
    decoded_image,
    error_detail,
    httpx_errors,
    json_answer,
    retry_after_seconds,
    wire_params,
)

if TYPE_CHECKING:
    from ..references import PreparedImage

__all__ = ["PROVIDER", "XAIBackend"]

#: This provider, as `pyproject.toml` registers it in the `imagerelay.providers` entry-point group.
PROVIDER = builtin("xai", "XAIBackend", order=0, catalog_check="imagerelay.catalog_check.listings:xai")

TICKS_PER_USD = 10_000_000_000
#: xAI answers 403 for no credit or no access to the model (a bad key is 400 or 401).
_STATUS = StatusTable(
    {403: (QuotaExhausted, "{provider} denied the request ({label}: no credit or no access): {detail}")}
)


class XAIBackend(Backend):
    """`/images/generations`, `/images/edits` (JSON, data-URI references) and vision chat."""

    #: `b64_json` returns the bytes in the response itself, so no URL can expire before we save it.
    response_format = "b64_json"

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key()}"}

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.settings.timeout, connect=self.settings.connect_timeout)

    def build_body(self, call: Call) -> tuple[str, dict[str, Any]]:
        """The endpoint path and JSON body for `call` (only fields the model declares)."""
        body: dict[str, Any] = {"model": call.model.id}
        body.update(wire_params(call, ("aspect_ratio", "resolution", "quality")))
        body.update(call.extras)
        body["response_format"] = self.response_format
        if not call.references:
            return "/images/generations", body
        images = [{"url": ref.data_uri()} for ref in call.references]
        if len(images) == 1:
            body["image"] = images[0]
        else:
            body["images"] = images
        return "/images/edits", body

    async def generate(self, call: Call, deliver: Deliver, on_event: OnEvent) -> CallResult:
        path, body = self.build_body(call)
        sent = _redact(body)
        on_event(Sent(sent))  # a failed attempt's receipt says what was sent, too
        ctx = self.ctx(call.model.id)
        data = await self._post(path, body, ctx)
        ok = ctx.but(status=200)
        if data.get("block_reason"):
            raise ok.error(
                ContentBlocked, f"{ok.where} refused the request (block_reason: {data['block_reason']})"
            )
        items = data.get("data")
        if not isinstance(items, list):
            raise ok.error(MalformedResponse, f"{ok.where} answered 200 without a `data` list")
        delivered = 0
        for item in items:
            image = await self._image_of(item, ok) if isinstance(item, dict) else None
            if image is not None:
                await deliver(image)
                delivered += 1
        if delivered == 0:
            raise ok.error(EmptyResult, f"{ok.where} answered 200 with no image")
        ticks = (data.get("usage") or {}).get("cost_in_usd_ticks")
        cost = ticks / TICKS_PER_USD if isinstance(ticks, int | float) else None
        return CallResult(images=delivered, reported_cost_usd=cost, sent=sent, usage=data.get("usage") or {})

    async def _image_of(self, item: dict[str, Any], ctx: ErrorContext) -> Delivered | None:
        revised = item.get("revised_prompt") or None
        if isinstance(item.get("b64_json"), str) and item["b64_json"]:
            # A data URI (data:image/jpeg;base64,…); bare base64 is accepted too.
            raw, info = await decoded_image(item["b64_json"], ctx)
            return Delivered(data=raw, mime=item.get("mime_type"), revised_prompt=revised, info=info)
        if isinstance(item.get("url"), str) and item["url"]:
            got = await download_image(self.http, item["url"], ctx, timeout=self.settings.download_timeout)
            return Delivered(
                data=got.data, mime=got.mime or item.get("mime_type"), revised_prompt=revised, info=got.info
            )
        return None

    async def describe(self, image: PreparedImage, *, model: str, instruction: str) -> str:
        """Describe `image` with a vision chat model (`/chat/completions`, image as a data URI)."""
        body = {
            "model": model,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": instruction},
                        {"type": "image_url", "image_url": {"url": image.data_uri(), "detail": "high"}},
                    ],
                }
            ],
        }
        ctx = self.ctx(model)
        data = await self._post("/chat/completions", body, ctx)
        try:
            text = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise ctx.but(status=200).error(
                MalformedResponse, f"{ctx.where} chat answer has no message content"
            ) from exc
        if not isinstance(text, str) or not text.strip():
            raise ctx.error(EmptyResult, f"{ctx.where} vision answered with an empty description")
        return text.strip()

    # -- the one seam where xAI's answers become typed outcomes ---------------------------------

    async def _post(self, path: str, body: dict[str, Any], ctx: ErrorContext) -> dict[str, Any]:
        headers = self._headers()
        with httpx_errors(ctx, billed_on_timeout=True):
            resp = await self.http.post(
                self.base_url + path, json=body, headers=headers, timeout=self._timeout()
            )
        if resp.status_code == 200:
            return json_answer(resp, ctx.but(status=200))
        raise await self._error(resp, ctx.but(status=resp.status_code))

    async def _error(self, resp: httpx.Response, ctx: ErrorContext) -> ProviderError:
        if resp.status_code == 400 and not await self._key_is_valid():
            # xAI answers a bad key with 400 and the same `code` as a bad argument. Rather than
            # read the message, ask the key endpoint (free, and authoritative) which one it was.
            return _STATUS.error(ctx, cls=AuthenticationFailed)
        # xAI uses 429 for rate limits *and* exhausted credit; retries are bounded either way.
        return _STATUS.error(
            ctx, detail=error_detail(resp, "error", "code"), retry_after=retry_after_seconds(resp.headers)
        )

    async def _key_is_valid(self) -> bool:
        """Ask `GET /v1/api-key` (documented, free): 400 for a bad key, flags for a blocked one."""
        try:
            resp = await self.http.get(
                self.base_url + "/api-key", headers=self._headers(), timeout=self.settings.connect_timeout
            )
        except httpx.HTTPError:
            return True  # cannot tell: treat the 400 as about the request, which also falls back
        if resp.status_code in (400, 401, 403):
            return False
        if resp.status_code != 200:
            return True  # the check itself failed: do not call the key bad on that
        try:
            info = resp.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return True
        flags = ("api_key_blocked", "api_key_disabled", "team_blocked")
        return not (isinstance(info, dict) and any(info.get(f) for f in flags))


def _redact(body: dict[str, Any]) -> dict[str, Any]:
    """The body as sent, with image data replaced by its size (receipts hold no image bytes)."""
    out = dict(body)
    if "image" in out:
        out["image"] = {"url": f"<data URI, {len(out['image']['url'])} chars>"}
    if "images" in out:
        out["images"] = [{"url": f"<data URI, {len(i['url'])} chars>"} for i in out["images"]]
    return out
