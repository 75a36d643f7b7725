"""OpenAI GPT-image through the official `openai` SDK (which runs on httpx2, not httpx).

Wire facts (see providers/openai.toml): GPT-image models always answer with bare-base64
`b64_json`, so `response_format` is never sent (it is a 400 `unknown_parameter`), nor are `seed`,
`style` or `aspect_ratio`. References go up as multipart files to `/images/edits`. Cost comes from
the token counts in `usage`. Errors are `{"error": {"message", "type", "param", "code"}}` and every
answer carries `x-request-id`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import (
    AuthenticationFailed,
    ConnectionFailed,
    ContentBlocked,
    EmptyResult,
    MalformedResponse,
    ModelUnavailable,
    ProviderError,
    QuotaExhausted,
    ReadTimedOut,
)
from ..hooks import Sent
from ..plugins import builtin
from .base import Backend, Call, CallResult, Deliver, Delivered, OnEvent, images_summary
from .http import (
    ErrorContext,
    StatusTable,
    decoded_image,
    httpx_errors,
    retry_after_seconds,
    wire_params,
)

if TYPE_CHECKING:
    import openai

    from ..references import PreparedImage

__all__ = ["PROVIDER", "OpenAIBackend"]

#: This provider, as `pyproject.toml` registers it in the `imagerelay.providers` entry-point group.
PROVIDER = builtin(
    "openai", "OpenAIBackend", order=1, catalog_check="imagerelay.catalog_check.listings:openai"
)

#: Canonical request fields sent when the model declares them (besides `prompt` and `n`).
_PARAMS = ("size", "quality", "output_format")
#: Extra fields each endpoint documents (CreateImageRequest / CreateImageEditRequest). An extra
#: the other endpoint does not take is left out and listed under `not_sent` in the receipt.
_COMMON_EXTRAS = frozenset({"background", "output_compression", "complexity", "safety_identifier", "user"})
_GENERATE_EXTRAS = _COMMON_EXTRAS | {"moderation"}
_EDIT_EXTRAS = _COMMON_EXTRAS | {"input_fidelity"}
_MIME = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}
#: The provider's message echoes part of the key: say which variable to fix instead.
_STATUS = StatusTable(
    messages={
        AuthenticationFailed: "{provider} refused the key in {keys} ({label}): check it and its "
        "organisation's access to this model",
        ModelUnavailable: "{provider} has no {subject} ({label}): treated as retired for this run",
    }
)
#: OpenAI's machine-readable `code`s that decide before the status does.
_CODES = {
    "insufficient_quota": QuotaExhausted,
    "moderation_blocked": ContentBlocked,
    "model_not_found": ModelUnavailable,
}


class OpenAIBackend(Backend):
    """`/images/generations` (JSON) and `/images/edits` (multipart), via `AsyncOpenAI`."""

    _client: openai.AsyncOpenAI | None = None

    def _sdk(self) -> openai.AsyncOpenAI:
        key = self.key()
        if self._client is None:
            import openai

            self._client = openai.AsyncOpenAI(
                api_key=key,
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
        kwargs: dict[str, Any] = {"model": call.model.id, **wire_params(call, _PARAMS)}
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
        ctx = self.ctx(call.model.id)
        client = self._sdk()
        images = client.images.with_raw_response
        with self._errors(ctx):
            if endpoint == "images.edit":
                raw = await images.edit(**kwargs)
            else:
                raw = await images.generate(**kwargs)
        ctx = ctx.but(request_id=raw.headers.get("x-request-id"), status=raw.status_code)
        with self._errors(ctx):
            parsed = raw.parse()
        import openai.types

        if not isinstance(parsed, openai.types.ImagesResponse):
            raise ctx.error(
                MalformedResponse, f"{ctx.where} answered 200 with a body that is not an images response"
            )
        fmt = (
            parsed.output_format
            or call.params.get("output_format")
            or call.model.default_output_format
            or "png"
        )
        delivered = 0
        for item in parsed.data or []:
            if not item.b64_json:
                continue
            # GPT-image sends bare base64; a data URI is accepted too, in case that ever changes.
            data, info = await decoded_image(item.b64_json, ctx.but(status=200))
            await deliver(Delivered(data=data, mime=_MIME.get(str(fmt)), info=info))
            delivered += 1
        if delivered == 0:
            raise ctx.but(status=200).error(EmptyResult, f"{ctx.where} answered 200 with no image")
        usage = parsed.usage.model_dump(exclude_none=True) if parsed.usage is not None else {}
        return CallResult(
            images=delivered,
            reported_cost_usd=call.model.price.from_usage(usage),
            request_id=ctx.request_id,
            sent=sent,
            usage=usage,
        )

    # -- the one seam where the SDK's exceptions become typed outcomes ----------------------------

    @contextlib.contextmanager
    def _errors(self, ctx: ErrorContext) -> Iterator[None]:
        """Map what the SDK raises (or, while parsing a body, what httpx2 and json raise)."""
        import httpx2
        import openai

        try:
            # While reading a body the SDK had not read yet, httpx2's own errors: a timeout or a
            # cut-off answer then was billed.
            with httpx_errors(ctx, billed_on_timeout=True, lib=httpx2):
                yield
        except openai.APITimeoutError as exc:  # before APIConnectionError: it is a subclass
            late = f"{ctx.where} did not answer in time (the call may have been billed)"
            raise ctx.error(ReadTimedOut, late, maybe_billed=True) from exc
        except openai.APIConnectionError as exc:
            # Sent, then no (whole) answer: the generation may have run and been billed.
            billed = isinstance(
                exc.__cause__ or exc.__context__, httpx2.RemoteProtocolError | httpx2.ReadError
            )
            failed = f"{ctx.provider} connection failed: {_cause_name(exc)}"
            raise ctx.error(ConnectionFailed, failed, maybe_billed=billed) from exc
        except openai.APIStatusError as exc:
            raise self._status_error(exc, ctx) from exc
        except openai.APIResponseValidationError as exc:
            raise ctx.but(status=exc.status_code).error(
                MalformedResponse, f"{ctx.where} answered with a body it does not document"
            ) from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ctx.error(
                MalformedResponse, f"{ctx.where} answered 200 with a body that is not JSON"
            ) from exc

    def _status_error(self, exc: openai.APIStatusError, ctx: ErrorContext) -> ProviderError:
        ctx = ctx.but(status=exc.status_code, request_id=exc.request_id)
        code = _CODES.get(str(exc.code)) if exc.status_code not in (401, 403) else None
        return _STATUS.error(
            ctx, detail=_detail(exc), retry_after=retry_after_seconds(exc.response.headers), cls=code
        )


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
