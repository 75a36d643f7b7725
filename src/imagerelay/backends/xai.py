"""xAI Grok Imagine over plain httpx (the official xai-sdk speaks gRPC, not this HTTP API).

Wire facts (see providers/xai.toml): JSON only, `size`/`style` are refused, `b64_json` is a
data-URI string, `block_reason` marks a moderation refusal, cost comes as `cost_in_usd_ticks`
(1e10 ticks = 1 USD), and errors are `{"code", "error"}` — not OpenAI-shaped.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import (
    ArgumentRejected,
    AuthenticationFailed,
    ContentBlocked,
    EmptyResult,
    MalformedResponse,
    ModelUnavailable,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    ServerError,
)
from ..hooks import Sent
from .base import (
    Backend,
    Call,
    CallResult,
    Deliver,
    Delivered,
    OnEvent,
    download_image,
    httpx_errors,
    retry_after_seconds,
)

if TYPE_CHECKING:
    from ..references import PreparedImage

__all__ = ["XAIBackend"]

TICKS_PER_USD = 10_000_000_000


class XAIBackend(Backend):
    """`/images/generations`, `/images/edits` (JSON, data-URI references) and vision chat."""

    #: `b64_json` returns the bytes in the response itself, so no URL can expire before we save it.
    response_format = "b64_json"

    def _headers(self) -> dict[str, str]:
        if self._key is None:
            raise AuthenticationFailed(
                f"{self.provider.key_env} is not set: export it or add it to .env",
                provider=self.provider.name,
            )
        return {"Authorization": f"Bearer {self._key.get_secret_value()}"}

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.settings.timeout, connect=self.settings.connect_timeout)

    def build_body(self, call: Call) -> tuple[str, dict[str, Any]]:
        """The endpoint path and JSON body for `call` (only fields the model declares)."""
        m = call.model
        body: dict[str, Any] = {"model": m.id, m.wire("prompt"): call.prompt}
        if m.accepts("n"):
            body[m.wire("n")] = call.n
        for name in ("aspect_ratio", "resolution", "quality"):
            if name in call.params and m.accepts(name):
                body[m.wire(name)] = call.params[name]
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
        data = await self._post(path, body, call.model.id)
        if data.get("block_reason"):
            raise ContentBlocked(
                f"xai:{call.model.id} refused the request (block_reason: {data['block_reason']})",
                provider=self.provider.name,
                model=call.model.id,
                status=200,
            )
        items = data.get("data")
        if not isinstance(items, list):
            raise MalformedResponse(
                "xai answered 200 without a `data` list", provider="xai", model=call.model.id, status=200
            )
        delivered = 0
        for item in items:
            if not isinstance(item, dict):
                continue
            image = await self._image_of(item, call.model.id)
            if image is None:
                continue
            await deliver(image)
            delivered += 1
        if delivered == 0:
            raise EmptyResult(
                f"xai:{call.model.id} answered 200 with no image",
                provider="xai",
                model=call.model.id,
                status=200,
            )
        ticks = (data.get("usage") or {}).get("cost_in_usd_ticks")
        cost = ticks / TICKS_PER_USD if isinstance(ticks, int | float) else None
        return CallResult(images=delivered, reported_cost_usd=cost, sent=sent, usage=data.get("usage") or {})

    async def _image_of(self, item: dict[str, Any], model: str) -> Delivered | None:
        from ..imaging import CorruptImage, probe

        revised = item.get("revised_prompt") or None
        if isinstance(item.get("b64_json"), str) and item["b64_json"]:
            raw = _decode_data_uri(item["b64_json"], model)
            try:
                info = probe(raw)
            except CorruptImage as exc:
                raise MalformedResponse(
                    f"xai:{model} sent an image that does not decode ({exc})",
                    provider="xai",
                    model=model,
                    status=200,
                ) from exc
            return Delivered(data=raw, mime=item.get("mime_type"), revised_prompt=revised, info=info)
        if isinstance(item.get("url"), str) and item["url"]:
            got = await download_image(
                self.http, item["url"], provider="xai", model=model, timeout=self.settings.download_timeout
            )
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
        data = await self._post("/chat/completions", body, model)
        try:
            text = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise MalformedResponse(
                "xai chat answer has no message content", provider="xai", model=model, status=200
            ) from exc
        if not isinstance(text, str) or not text.strip():
            raise EmptyResult("xai vision answered with an empty description", provider="xai", model=model)
        return text.strip()

    # -- the one seam where xAI's answers become typed outcomes ---------------------------------

    async def _post(self, path: str, body: dict[str, Any], model: str) -> dict[str, Any]:
        headers = self._headers()
        with httpx_errors("xai", model, billed_on_timeout=True):
            resp = await self.http.post(
                self.base_url + path, json=body, headers=headers, timeout=self._timeout()
            )
        if resp.status_code == 200:
            try:
                data = resp.json()
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise MalformedResponse(
                    "xai answered 200 with a body that is not JSON", provider="xai", model=model, status=200
                ) from exc
            if not isinstance(data, dict):
                raise MalformedResponse(
                    "xai answered 200 with a non-object body", provider="xai", model=model, status=200
                )
            return data
        raise await self._error(resp, model)

    async def _error(self, resp: httpx.Response, model: str) -> ProviderError:
        status = resp.status_code
        detail = _error_text(resp)
        kw: dict[str, Any] = {"provider": "xai", "model": model, "status": status}
        if status == 400 and not await self._key_is_valid():
            # xAI answers a bad key with 400 and the same `code` as a bad argument. Rather than
            # read the message, ask the key endpoint (free, and authoritative) which one it was.
            return AuthenticationFailed(f"xai refused the key in {self.provider.key_env}: check it", **kw)
        if status in (400, 422):
            return ArgumentRejected(f"xai:{model} rejected the request ({status}): {detail}", **kw)
        if status == 401:
            return AuthenticationFailed(f"xai refused the key in {self.provider.key_env}: check it", **kw)
        if status == 403:
            return QuotaExhausted(f"xai denied the request (403: no credit or no access): {detail}", **kw)
        if status == 404:
            return ModelUnavailable(f"xai has no model {model!r} (404): {detail}", **kw)
        if status == 429:
            # xAI uses 429 for rate limits *and* exhausted credit; retries are bounded either way.
            return RateLimited(
                f"xai rate limit (429): {detail}", retry_after=retry_after_seconds(resp.headers), **kw
            )
        if status >= 500 or status == 408:
            return ServerError(
                f"xai server error ({status})", retry_after=retry_after_seconds(resp.headers), **kw
            )
        return ArgumentRejected(f"xai:{model} answered {status}: {detail}", **kw)

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


def _decode_data_uri(value: str, model: str) -> bytes:
    # xAI sends `b64_json` as a data URI (data:image/jpeg;base64,…); accept bare base64 too.
    payload = value.split(",", 1)[1] if value.startswith("data:") else value
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedResponse(
            f"xai:{model} sent b64_json that is not base64", provider="xai", model=model, status=200
        ) from exc


def _error_text(resp: httpx.Response) -> str:
    try:
        data = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return resp.text[:200].strip() or resp.reason_phrase
    if isinstance(data, dict):
        return str(data.get("error") or data.get("code") or data)[:300]
    return str(data)[:300]


def _redact(body: dict[str, Any]) -> dict[str, Any]:
    """The body as sent, with image data replaced by its size (receipts hold no image bytes)."""
    out = dict(body)
    if "image" in out:
        out["image"] = {"url": f"<data URI, {len(out['image']['url'])} chars>"}
    if "images" in out:
        out["images"] = [{"url": f"<data URI, {len(i['url'])} chars>"} for i in out["images"]]
    return out
