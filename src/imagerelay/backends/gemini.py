"""Google Gemini (Nano Banana) image models through the official `google-genai` SDK (async client).

Wire facts (see providers/gemini.toml): one `models/{model}:generateContent` call per image; the
references are `inlineData` parts before the prompt's text part; `generationConfig` asks for
`responseModalities: ["IMAGE"]` and an `imageConfig {aspectRatio, imageSize}`. The image comes
back as base64 `inlineData` in a candidate — PNG or JPEG whatever the declared type says, so the
bytes are sniffed — and Gemini 3 models may put interim "thought" images before the final one.
A 200 can carry no image: `promptFeedback.blockReason`, a candidate that finished for a safety
reason, or text alone. Errors are `{"error": {"code", "message", "status", "details"}}`; a bad key
is a 400 whose `google.rpc.ErrorInfo` says `API_KEY_INVALID`, and the wait a 429 asks for is a
`google.rpc.RetryInfo` in `details` (no Retry-After header).

The SDK is held to one plain HTTP request per call: its retries stay off (ours is the one retry
loop), its automatic continuation (a second, billed request) is off, and it gets its own httpx2
client, so it never switches to aiohttp, whose transport retries a dropped connection by itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import (
    ArgumentRejected,
    AuthenticationFailed,
    ContentBlocked,
    EmptyResult,
    MalformedResponse,
    ProviderError,
    QuotaExhausted,
    RateLimited,
)
from ..hooks import Sent
from ..plugins import builtin
from .base import Backend, Call, CallResult, Deliver, Delivered, OnEvent, images_summary
from .http import ErrorContext, StatusTable, checked_image, httpx_errors, retry_after_seconds

if TYPE_CHECKING:
    import httpx2
    from google import genai
    from google.genai import errors as genai_errors
    from google.genai import types

__all__ = ["PROVIDER", "GeminiBackend"]

#: This provider, as `pyproject.toml` registers it in the `imagerelay.providers` entry-point group.
PROVIDER = builtin("gemini", "GeminiBackend", order=3, catalog_check="imagerelay.catalog_check.gemini:gemini")

#: Extras sent inside `generationConfig` (the planner passes only those a model declares).
_EXTRAS = frozenset({"thinking_level"})
#: `finishReason` values that mean moderation (or recitation) kept the image back: retrying the
#: same request would be refused again, and is billed again.
_BLOCKED = frozenset(
    {
        "SAFETY",
        "PROHIBITED_CONTENT",
        "BLOCKLIST",
        "SPII",
        "RECITATION",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)


class _KeyIsOurs(logging.Filter):
    """Drops the SDK's "Both GOOGLE_API_KEY and GEMINI_API_KEY are set. Using GOOGLE_API_KEY."
    warning (from its `get_env_api_key`): it is logged even when the key is handed to the client,
    and that key — GEMINI_API_KEY first, the one the catalog names — is the one used."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.funcName != "get_env_api_key"


_SDK_LOG = logging.getLogger("google_genai._api_client")
_STATUS = StatusTable(
    {
        403: (
            AuthenticationFailed,
            "{provider} denied the key in {keys} access ({label}): check the key, and that its "
            "project has the Generative Language API enabled",
        )
    },
    messages={RateLimited: "{provider} rate limit or quota ({label}): {detail}"},
)
_NO_BILLING = (
    "{provider}: billing is not enabled, or the free tier is not offered where you are ({label}): {detail}"
)


class GeminiBackend(Backend):
    """`generateContent` on a Gemini image model, via `genai.Client(...).aio`."""

    _client: genai.Client | None = None
    _transport: httpx2.AsyncClient | None = None

    def _sdk(self) -> genai.client.AsyncClient:
        key = self.key()
        if self._client is None:
            import httpx2
            from google import genai
            from google.genai import types
            from google.genai.client import DebugConfig

            if not any(isinstance(f, _KeyIsOurs) for f in _SDK_LOG.filters):
                _SDK_LOG.addFilter(_KeyIsOurs())
            self._transport = httpx2.AsyncClient(
                limits=httpx2.Limits(max_connections=64, max_keepalive_connections=32)
            )
            self._client = genai.Client(
                # Explicit, so GOOGLE_GENAI_USE_VERTEXAI or a replay mode in the environment
                # cannot send these calls anywhere else.
                vertexai=False,
                api_key=key,
                debug_config=DebugConfig(client_mode=None, replays_directory=None, replay_id=None),
                http_options=types.HttpOptions(
                    # base_url carries the version (…/v1beta), so the SDK adds none of its own.
                    base_url=self.base_url,
                    api_version="",
                    # Milliseconds, for every phase of the call; also sent as X-Server-Timeout.
                    timeout=round(self.settings.timeout * 1000),
                    retry_options=None,  # one attempt: our relay is the retry loop
                    httpx_async_client=self._transport,
                ),
            )
        return self._client.aio

    async def aclose(self) -> None:
        if self._client is not None:
            self._client.close()  # the SDK's own (sync) pool
            self._client = None
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None

    def build_request(
        self, call: Call
    ) -> tuple[list[types.Content], types.GenerateContentConfig, dict[str, Any]]:
        """(contents, config, what the receipt records as sent) for `call`."""
        from google.genai import types

        m = call.model
        parts = [types.Part.from_bytes(data=ref.data, mime_type=ref.mime) for ref in call.references]
        parts.append(types.Part.from_text(text=call.prompt))
        image: dict[str, str] = {}
        if "aspect_ratio" in call.params and m.accepts("aspect_ratio"):
            image["aspectRatio"] = call.params["aspect_ratio"]
        if "resolution" in call.params and m.accepts("resolution"):
            image["imageSize"] = str(call.params["resolution"]).upper()  # "2k" → "2K": a capital K
        generation: dict[str, Any] = {"responseModalities": ["IMAGE"]}
        if image:
            generation["imageConfig"] = image
        level = call.extras.get("thinking_level")
        if level is not None and not isinstance(level, str):
            # The SDK would fail on it with an AttributeError; the API names the words it takes.
            ctx = self.ctx(m.id)
            raise ctx.error(
                ArgumentRejected, f"{ctx.where} takes thinking_level as a word (e.g. high), not {level!r}"
            )
        if level is not None:
            generation["thinkingConfig"] = {"thinkingLevel": level}
        with warnings.catch_warnings():
            # The SDK warns (with its own source line) about a level it does not know, then sends
            # it anyway: the API's answer says what is wrong, in words we pass on.
            warnings.simplefilter("ignore", UserWarning)
            level_enum = types.ThinkingLevel(level.upper()) if level is not None else None
        thinking = types.ThinkingConfig(thinking_level=level_enum) if level_enum is not None else None
        config = types.GenerateContentConfig(
            response_modalities=["IMAGE"],
            image_config=types.ImageConfig(
                aspect_ratio=image.get("aspectRatio"), image_size=image.get("imageSize")
            )
            if image
            else None,
            thinking_config=thinking,
            # A CONTINUATION answer would otherwise be followed by a second, billed request.
            automatic_continuation=False,
        )
        sent: dict[str, Any] = {"model": m.id, "prompt": call.prompt, "generationConfig": generation}
        if call.references:
            sent["inlineData"] = images_summary(call.references, "image")
        not_sent = sorted(k for k in call.extras if k not in _EXTRAS)
        if not_sent:
            sent["not_sent"] = dict.fromkeys(not_sent, "generateContent has no such field")
        return [types.Content(role="user", parts=parts)], config, sent

    async def generate(self, call: Call, deliver: Deliver, on_event: OnEvent) -> CallResult:
        contents, config, sent = self.build_request(call)
        on_event(Sent(sent))  # a failed attempt's receipt says what was sent, too
        ctx = self.ctx(call.model.id)
        aio = self._sdk()
        with self._errors(ctx):
            response = await aio.models.generate_content(model=ctx.model, contents=contents, config=config)
        ctx = ctx.but(status=200, request_id=response.response_id)
        found = _images_of(response)
        if not found:
            raise _no_image(response, ctx)
        for index, data in enumerate(found, 1):
            # The type is what the bytes are: Gemini's label can be wrong.
            info = await checked_image(data, ctx, f"image {index} of {len(found)}")
            await deliver(Delivered(data=data, mime=info.mime, info=info))
        usage = (
            response.usage_metadata.model_dump(mode="json", by_alias=True, exclude_none=True)
            if response.usage_metadata is not None
            else {}
        )
        return CallResult(images=len(found), request_id=response.response_id, sent=sent, usage=usage)

    # -- the one seam where the SDK's exceptions become typed outcomes ----------------------------

    @contextlib.contextmanager
    def _errors(self, ctx: ErrorContext) -> Iterator[None]:
        """Map what the SDK raises: its APIError by status, httpx2's transport errors (it does not
        wrap them), and whatever it raises reading a 200 whose body is not what it expects."""
        import httpx2
        from google.genai import errors as genai_errors

        try:
            # Every generateContent POST may be billed once it has left: a timeout or a cut-off
            # answer after sending is never re-sent to this model.
            with httpx_errors(ctx, billed_on_timeout=True, lib=httpx2):
                yield
        except genai_errors.APIError as exc:
            raise _status_error(exc, ctx) from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ctx.but(status=200).error(
                MalformedResponse, f"{ctx.where} answered 200 with a body that is not JSON"
            ) from exc
        except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
            # pydantic's ValidationError, or the SDK's converters tripping over fields of the wrong
            # shape (`"candidates": 5` is a TypeError): the 200 came, its body cannot be read.
            raise ctx.but(status=200).error(
                MalformedResponse,
                f"{ctx.where} answered 200 with a body it does not document ({type(exc).__name__})",
            ) from exc


def _status_error(exc: genai_errors.APIError, ctx: ErrorContext) -> ProviderError:
    ctx = ctx.but(status=exc.code)
    status = exc.status if isinstance(exc.status, str) else ""
    details = _details(exc.details)
    reasons = {d.get("reason") for d in details if _is(d, "ErrorInfo")}
    label = f"{exc.code} {status}".strip()
    message = exc.message if isinstance(exc.message, str) else ""
    wait = _retry_delay(details)
    cls: type[ProviderError] | None = None
    sentence = None
    if "API_KEY_INVALID" in reasons:
        # Gemini answers a bad key with 400 INVALID_ARGUMENT; only ErrorInfo tells it apart.
        cls = AuthenticationFailed
    elif status == "FAILED_PRECONDITION" and _STATUS.classify(exc.code) is ArgumentRejected:
        cls, sentence = QuotaExhausted, _NO_BILLING
    return _STATUS.error(
        ctx,
        detail=(message or label)[:300],
        label=label,
        retry_after=wait if wait is not None else _header_wait(exc),
        cls=cls,
        sentence=sentence,
    )


def _no_image(response: types.GenerateContentResponse, ctx: ErrorContext) -> ProviderError:
    """Why a 200 holds no image: a block (stop), or an empty result (never a success)."""
    feedback = response.prompt_feedback
    block = _name(feedback.block_reason) if feedback is not None else None
    if block and block != "BLOCKED_REASON_UNSPECIFIED":
        return ctx.error(ContentBlocked, f"{ctx.where} refused the prompt (blockReason {block})")
    finishes = [_name(c.finish_reason) for c in response.candidates or [] if c.finish_reason]
    blocked = [f for f in finishes if f in _BLOCKED]
    if blocked:
        return ctx.error(ContentBlocked, f"{ctx.where} withheld the image (finishReason {blocked[0]})")
    why = f" (finishReason {finishes[0]})" if finishes else " (no candidate)"
    text = " ".join(_texts(response))
    said = f": it said {text[:200]!r}" if text else ""
    return ctx.error(EmptyResult, f"{ctx.where} answered 200 with no image{why}{said}")


def _images_of(response: types.GenerateContentResponse) -> list[bytes]:
    """The image bytes of every candidate: its final images, else its last interim ("thought")
    one — some answers flag their only image as a thought. Text and empty parts are skipped."""
    found: list[bytes] = []
    for candidate in response.candidates or []:
        parts = (candidate.content.parts if candidate.content is not None else None) or []
        images = [
            p
            for p in parts
            if p.inline_data is not None
            and p.inline_data.data
            and (p.inline_data.mime_type or "image/").startswith("image/")
        ]
        final = [p for p in images if not p.thought] or images[-1:]
        found.extend(p.inline_data.data for p in final if p.inline_data is not None and p.inline_data.data)
    return found


def _texts(response: types.GenerateContentResponse) -> list[str]:
    """The non-thought text the model sent instead of an image (a refusal, a question)."""
    out: list[str] = []
    for candidate in response.candidates or []:
        for part in (candidate.content.parts if candidate.content is not None else None) or []:
            if part.text and not part.thought:
                out.append(part.text.strip())
    return out


def _name(value: Any) -> str | None:
    """An enum member's value, or the raw string the SDK kept for a value it does not know."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


def _details(body: Any) -> list[dict[str, Any]]:
    """`error.details[]` of an error body (the SDK keeps the whole parsed body in `.details`)."""
    error = body.get("error", body) if isinstance(body, dict) else None
    items = error.get("details") if isinstance(error, dict) else None
    return [d for d in items if isinstance(d, dict)] if isinstance(items, list) else []


def _is(detail: dict[str, Any], kind: str) -> bool:
    return str(detail.get("@type", "")).endswith(f"google.rpc.{kind}")


def _retry_delay(details: list[dict[str, Any]]) -> float | None:
    """Seconds from a `google.rpc.RetryInfo` (`retryDelay` is a Duration: "53s", "1.5s")."""
    for detail in details:
        if not _is(detail, "RetryInfo"):
            continue
        raw = detail.get("retryDelay")
        try:
            if isinstance(raw, str) and raw.endswith("s"):
                return max(0.0, float(raw[:-1]))
            if isinstance(raw, dict):  # the proto form {"seconds": 53, "nanos": 16000000}
                return max(0.0, float(raw.get("seconds", 0)) + float(raw.get("nanos", 0)) / 1e9)
        except (TypeError, ValueError):
            return None
    return None


def _header_wait(exc: genai_errors.APIError) -> float | None:
    """Retry-After, should a proxy in front of Gemini add one."""
    headers = getattr(exc.response, "headers", None)
    return retry_after_seconds(headers) if headers is not None else None
