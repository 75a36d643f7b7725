"""OpenAI GPT-image through the official `openai` SDK (which runs on httpx2, not httpx).

Wire facts (see providers/openai.toml): GPT-image models always answer with bare-base64
`b64_json`, so `response_format` is never sent (it is a 400 `unknown_parameter`), nor are `seed`,
`style` or `aspect_ratio`. References go up as multipart files to `/images/edits`. Cost comes from
the token counts in `usage`. Errors are `{"error": {"message", "type", "param", "code"}}` and every
answer carries `x-request-id`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import (
    ArgumentRejected,
    AuthenticationFailed,
    ConnectionFailed,
    ContentBlocked,
    EmptyResult,
    MalformedResponse,
    ModelUnavailable,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    ReadTimedOut,
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
    images_summary,
    retry_after_seconds,
)

if TYPE_CHECKING:
    import openai

    from ..imaging import ImageInfo
    from ..references import PreparedImage

__all__ = ["OpenAIBackend"]

#: Canonical request fields sent when the model declares them (besides `prompt` and `n`).
_PARAMS = ("size", "quality", "output_format")
#: Extra fields each endpoint documents (CreateImageRequest / CreateImageEditRequest). An extra
#: the other endpoint does not take is left out and listed under `not_sent` in the receipt.
_COMMON_EXTRAS = frozenset({"background", "output_compression", "complexity", "safety_identifier", "user"})
_GENERATE_EXTRAS = _COMMON_EXTRAS | {"moderation"}
_EDIT_EXTRAS = _COMMON_EXTRAS | {"input_fidelity"}
_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}


class OpenAIBackend(Backend):
    """`/images/generations` (JSON) and `/images/edits` (multipart), via `AsyncOpenAI`."""

    _client: openai.AsyncOpenAI | None = None

    def _sdk(self) -> openai.AsyncOpenAI:
        if self._key is None:
            raise AuthenticationFailed(
                f"{self.provider.key_env} is not set: export it or add it to .env",
                provider=self.provider.name,
            )
        if self._client is None:
            import openai

            self._client = openai.AsyncOpenAI(
                api_key=self._key.get_secret_value(),
                base_url=self.base_url,
                # Our relay is the one retry loop: the SDK would otherwise retry 429/5xx twice.
                max_retries=0,
                timeout=openai.Timeout(self.settings.timeout, connect=self.settings.connect_timeout),
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def build_request(self, call: Call) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """(endpoint, SDK keyword arguments, the same with image bytes summarised) for `call`."""
        m = call.model
        kwargs: dict[str, Any] = {"model": m.id, m.wire("prompt"): call.prompt}
        if m.accepts("n"):
            kwargs[m.wire("n")] = call.n
        for name in _PARAMS:
            if name in call.params and m.accepts(name):
                kwargs[m.wire(name)] = call.params[name]
        endpoint = "images.edit" if call.references else "images.generate"
        allowed = _EDIT_EXTRAS if call.references else _GENERATE_EXTRAS
        not_sent = {k: v for k, v in call.extras.items() if k not in allowed}
        kwargs.update({k: v for k, v in call.extras.items() if k in allowed})
        sent = dict(kwargs)
        if not_sent:
            where = "generations" if endpoint == "images.generate" else "edits"
            sent["not_sent"] = dict.fromkeys(not_sent, f"/images/{where} does not take it")
        if call.references:
            files = [_upload(ref) for ref in call.references]
            # One image goes up as `image`, several as `image[]` (how the SDK names a list).
            kwargs["image"] = files[0] if len(files) == 1 else files
            sent["image"] = images_summary(call.references, "image")
            if call.mask is not None:
                kwargs["mask"] = _upload(call.mask)
                sent["mask"] = images_summary((call.mask,), "mask")
        return endpoint, kwargs, sent

    async def generate(self, call: Call, deliver: Deliver, on_event: OnEvent) -> CallResult:
        endpoint, kwargs, sent = self.build_request(call)
        on_event(Sent(sent))  # a failed attempt's receipt says what was sent, too
        model = call.model.id
        client = self._sdk()
        images = client.images.with_raw_response
        with self._errors(model):
            if endpoint == "images.edit":
                raw = await images.edit(**kwargs)
            else:
                raw = await images.generate(**kwargs)
        request_id = raw.headers.get("x-request-id")
        with self._errors(model, request_id=request_id, status=raw.status_code):
            parsed = raw.parse()
        import openai.types

        if not isinstance(parsed, openai.types.ImagesResponse):
            raise MalformedResponse(
                f"openai:{model} answered 200 with a body that is not an images response",
                provider=self.provider.name,
                model=model,
                status=raw.status_code,
                request_id=request_id,
            )
        fmt = parsed.output_format or call.params.get("output_format") or "png"
        delivered = 0
        for item in parsed.data or []:
            if not item.b64_json:
                continue
            data, info = self._decode(item.b64_json, model, request_id)
            await deliver(Delivered(data=data, mime=_MIME.get(str(fmt)), info=info))
            delivered += 1
        if delivered == 0:
            raise EmptyResult(
                f"openai:{model} answered 200 with no image",
                provider=self.provider.name,
                model=model,
                status=200,
                request_id=request_id,
            )
        usage = parsed.usage.model_dump(exclude_none=True) if parsed.usage is not None else {}
        return CallResult(
            images=delivered,
            reported_cost_usd=call.model.price.from_usage(usage),
            request_id=request_id,
            sent=sent,
            usage=usage,
        )

    def _decode(self, b64: str, model: str, request_id: str | None) -> tuple[bytes, ImageInfo]:
        """Bare base64 → verified image bytes; a truncated or corrupt image is MalformedResponse."""
        from ..imaging import CorruptImage, probe

        where: dict[str, Any] = {
            "provider": self.provider.name,
            "model": model,
            "request_id": request_id,
            "status": 200,  # only a 200 answer's images are decoded
        }
        # GPT-image sends bare base64; a data URI is accepted too, in case that ever changes.
        payload = b64.split(",", 1)[1] if b64.startswith("data:") else b64
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedResponse(f"openai:{model} sent b64_json that is not base64", **where) from exc
        try:
            info = probe(data)
        except CorruptImage as exc:
            raise MalformedResponse(
                f"openai:{model} sent an image that does not decode ({exc})", **where
            ) from exc
        return data, info

    # -- the one seam where the SDK's exceptions become typed outcomes ----------------------------

    @contextlib.contextmanager
    def _errors(
        self, model: str, *, request_id: str | None = None, status: int | None = None
    ) -> Iterator[None]:
        """Map what the SDK raises (or, while parsing a body, what httpx2 and json raise)."""
        import httpx2
        import openai

        where: dict[str, Any] = {
            "provider": self.provider.name,
            "model": model,
            "request_id": request_id,
            "status": status,
        }
        try:
            yield
        except openai.APITimeoutError as exc:  # before APIConnectionError: it is a subclass
            raise ReadTimedOut(
                f"openai:{model} did not answer in time (the call may have been billed)",
                maybe_billed=True,
                **where,
            ) from exc
        except openai.APIConnectionError as exc:
            # Sent, then no (whole) answer: the generation may have run and been billed.
            cause = exc.__cause__ or exc.__context__
            sent = isinstance(cause, httpx2.RemoteProtocolError | httpx2.ReadError)
            raise ConnectionFailed(
                f"openai connection failed: {_cause_name(exc)}", maybe_billed=sent, **where
            ) from exc
        except openai.APIStatusError as exc:
            raise self._status_error(exc, model) from exc
        except openai.APIResponseValidationError as exc:
            where["status"] = exc.status_code
            raise MalformedResponse(
                f"openai:{model} answered with a body it does not document", **where
            ) from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MalformedResponse(
                f"openai:{model} answered 200 with a body that is not JSON", **where
            ) from exc
        except httpx2.TimeoutException as exc:  # while reading a body the SDK had not read yet
            raise ReadTimedOut(
                f"openai:{model} stopped sending its answer (the call may have been billed)",
                maybe_billed=True,
                **where,
            ) from exc
        except httpx2.TransportError as exc:  # while reading a body the SDK had not read yet
            raise ConnectionFailed(
                f"openai dropped the connection: {type(exc).__name__}", maybe_billed=True, **where
            ) from exc

    def _status_error(self, exc: openai.APIStatusError, model: str) -> ProviderError:
        import openai

        status = exc.status_code
        code = exc.code
        kw: dict[str, Any] = {
            "provider": self.provider.name,
            "model": model,
            "status": status,
            "request_id": exc.request_id,
        }
        detail = _detail(exc)
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError) or status in (401, 403):
            # The provider's message echoes part of the key: say which variable to fix instead.
            return AuthenticationFailed(
                f"openai refused the key in {self.provider.key_env} ({status}): check it and its "
                "organisation's access to this model",
                **kw,
            )
        if code == "insufficient_quota":
            return QuotaExhausted(f"openai: no credit left or spending limit reached ({status})", **kw)
        if code == "moderation_blocked":
            return ContentBlocked(f"openai:{model} refused the request (moderation_blocked)", **kw)
        if isinstance(exc, openai.NotFoundError) or code == "model_not_found":
            return ModelUnavailable(
                f"openai has no model {model!r} ({status}): treated as retired for this run", **kw
            )
        if isinstance(exc, openai.RateLimitError) or status == 429:
            return RateLimited(
                f"openai rate limit (429): {detail}",
                retry_after=retry_after_seconds(exc.response.headers),
                **kw,
            )
        if isinstance(exc, openai.InternalServerError) or status >= 500 or status in (408, 409):
            return ServerError(
                f"openai server error ({status})", retry_after=retry_after_seconds(exc.response.headers), **kw
            )
        return ArgumentRejected(f"openai:{model} rejected the request ({status}): {detail}", **kw)


def _upload(image: PreparedImage) -> tuple[str, bytes, str]:
    """A multipart file as the SDK takes it: (file name, bytes, content type)."""
    return (image.filename, image.data, image.mime)


def _detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str) and message:
            return message[:300]
    return exc.response.reason_phrase or f"HTTP {exc.status_code}"


def _cause_name(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__
    return type(cause).__name__ if cause is not None else type(exc).__name__
