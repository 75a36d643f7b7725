"""The error layer every backend shares: who failed (`ErrorContext`), the HTTP status table with
per-backend overrides, transport errors, and decoding images from base64 (downloads: `download`).

A backend's own seam is then only what differs from these: its error body, its machine-readable
codes (OpenAI's `code`, Gemini's `ErrorInfo`), its few statuses that mean something else.
Classification is by exception type and status, never by message text.
"""

from __future__ import annotations

import binascii
import contextlib
import dataclasses
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from ..errors import (
    ArgumentRejected,
    AuthenticationFailed,
    ConnectionFailed,
    ContentBlocked,
    MalformedResponse,
    ModelUnavailable,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    ReadTimedOut,
    ServerError,
    TransientError,
)
from ..offload import in_thread

if TYPE_CHECKING:
    from ..catalog import ModelSpec
    from ..imaging import ImageInfo
    from .base import Call

__all__ = [
    "MESSAGES",
    "STATUS_TABLE",
    "ErrorContext",
    "StatusTable",
    "checked_image",
    "decode_base64_image",
    "decoded_image",
    "error_detail",
    "httpx_errors",
    "json_answer",
    "json_object",
    "retry_after_seconds",
    "verified_image",
    "wire_params",
]

log = logging.getLogger("imagerelay")

E = TypeVar("E", bound=ProviderError)
Status = int | range


@dataclass(frozen=True)
class ErrorContext:
    """Who failed: the catalog's provider name (never the wire API's), the model, the HTTP status
    and the provider's request id — carried into every error a backend raises."""

    provider: str
    model: str = ""
    status: int | None = None
    request_id: str | None = None
    #: The variable(s) the key is read from, as messages name them ("A or B").
    keys: str = ""

    @property
    def where(self) -> str:
        """`provider:model` (or the provider alone)."""
        return f"{self.provider}:{self.model}" if self.model else self.provider

    def but(self, **changes: Any) -> ErrorContext:
        return dataclasses.replace(self, **changes)

    def error(self, cls: type[E], message: str, **extra: Any) -> E:
        """`cls(message)` located by this context (`extra`: `retry_after`, `maybe_billed`)."""
        return cls(
            message,
            provider=self.provider,
            model=self.model,
            status=self.status,
            request_id=self.request_id,
            **extra,
        )

    def missing_key(self) -> AuthenticationFailed:
        """The one missing-key error: names the variable(s) and the fix."""
        return self.error(
            AuthenticationFailed,
            f"{self.keys or 'the API key'} is not set: export it or add it to .env "
            "(or try --env sandbox, which needs no key)",
        )


#: HTTP status → outcome, shared by every backend. The most specific entry wins: an exact status
#: over a range (httpx's HTTPCORE_EXC_MAP idea); a backend passes only its overrides.
STATUS_TABLE: Mapping[Status, type[ProviderError]] = {
    401: AuthenticationFailed,
    402: QuotaExhausted,
    403: AuthenticationFailed,
    404: ModelUnavailable,
    408: ServerError,
    409: ServerError,
    410: ModelUnavailable,
    429: RateLimited,
    range(400, 500): ArgumentRejected,
    range(500, 600): ServerError,
}

#: The sentence of each outcome; fields: provider, where (provider:model), subject (model 'x'),
#: label (the status, with the provider's status word when it has one), detail, keys.
MESSAGES: Mapping[type[ProviderError], str] = {
    AuthenticationFailed: "{provider} refused the key in {keys} ({label}): check it",
    QuotaExhausted: "{provider}: no credit left or spending limit reached ({label}): {detail}",
    ModelUnavailable: "{provider} has no {subject} ({label}): {detail}",
    RateLimited: "{provider} rate limit ({label}): {detail}",
    ServerError: "{provider} server error ({label})",
    ArgumentRejected: "{where} rejected the request ({label}): {detail}",
    ContentBlocked: "{where} refused the request as unsafe ({label}): {detail}",
    MalformedResponse: "{where} answered {label}, which its API does not document: {detail}",
}


class StatusTable:
    """`STATUS_TABLE` and `MESSAGES` with one backend's overrides: a status may map to another
    class, or to (class, its own sentence)."""

    def __init__(
        self,
        overrides: Mapping[Status, type[ProviderError] | tuple[type[ProviderError], str]] | None = None,
        messages: Mapping[type[ProviderError], str] | None = None,
    ) -> None:
        self._table: dict[Status, tuple[type[ProviderError], str | None]] = {
            k: (v, None) for k, v in STATUS_TABLE.items()
        }
        for status, target in (overrides or {}).items():
            self._table[status] = target if isinstance(target, tuple) else (target, None)
        self._messages = {**MESSAGES, **(messages or {})}

    def lookup(self, status: int) -> tuple[type[ProviderError], str]:
        """(the outcome of `status`, its sentence): an exact entry, else the narrowest range."""
        found = self._table.get(status)
        if found is None:
            ranges = [k for k in self._table if isinstance(k, range) and status in k]
            found = self._table[min(ranges, key=len)] if ranges else (MalformedResponse, None)
        cls, message = found
        return cls, message or self._messages[cls]

    def classify(self, status: int) -> type[ProviderError]:
        return self.lookup(status)[0]

    def error(
        self,
        ctx: ErrorContext,
        *,
        detail: str = "",
        label: str | None = None,
        retry_after: float | None = None,
        subject: str | None = None,
        cls: type[ProviderError] | None = None,
        sentence: str | None = None,
    ) -> ProviderError:
        """The error for `ctx.status` (or `cls`, when the backend decided by a code of its own),
        in the table's sentence for it (or `sentence`, with the same fields)."""
        status = ctx.status or 0
        found, message = self.lookup(status)
        if cls is not None and cls is not found:
            found, message = cls, self._messages[cls]
        text = (sentence or message).format(
            provider=ctx.provider,
            where=ctx.where,
            subject=subject or f"model {ctx.model!r}",
            label=label or str(status),
            detail=detail or f"HTTP {status}",
            keys=ctx.keys or "its key variable",
        )
        extra: dict[str, Any] = {"retry_after": retry_after} if issubclass(found, TransientError) else {}
        return ctx.error(found, text, **extra)


#: The shared table as is, for a backend with no overrides.
DEFAULT = StatusTable()


def wire_params(call: Call, names: Iterable[str]) -> dict[str, Any]:
    """The prompt, `n` and each canonical parameter in `names` the model declares, under the
    model's wire names (values were already translated by the planner)."""
    m: ModelSpec = call.model
    out: dict[str, Any] = {m.wire("prompt"): call.prompt}
    if m.accepts("n"):
        out[m.wire("n")] = call.n
    for name in names:
        if name in call.params and m.accepts(name):
            out[m.wire(name)] = call.params[name]
    return out


def verified_image(data: bytes, ctx: ErrorContext, what: str = "an image") -> ImageInfo:
    """`probe(data)`; bytes that do not decode in full are a MalformedResponse (the call was
    answered, so it is billed: never re-sent to the model)."""
    from ..imaging import CorruptImage, probe

    try:
        return probe(data)
    except CorruptImage as exc:
        raise ctx.error(MalformedResponse, f"{ctx.where} sent {what} that does not decode ({exc})") from exc


def decode_base64_image(value: str, ctx: ErrorContext, what: str = "b64_json") -> tuple[bytes, ImageInfo]:
    """Base64, bare or as a data URI (`data:image/png;base64,…`), to verified image bytes."""
    payload = value.split(",", 1)[1] if value.startswith("data:") else value
    try:
        # Strict mode checks the alphabet and padding in C as it decodes: the same refusals as
        # `b64decode(validate=True)`, without its regex pass over the whole string first (a
        # third of the decode time of a megapixel image).
        data = binascii.a2b_base64(payload, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise ctx.error(MalformedResponse, f"{ctx.where} sent {what} that is not base64") from exc
    return data, verified_image(data, ctx, f"{what} that is an image but")


async def decoded_image(value: str, ctx: ErrorContext, what: str = "b64_json") -> tuple[bytes, ImageInfo]:
    """`decode_base64_image` in a worker thread: decoding and verifying a megapixel image takes a
    millisecond or more, which the event loop spends on the other requests in flight meanwhile."""
    return await in_thread(lambda: decode_base64_image(value, ctx, what))


async def checked_image(data: bytes, ctx: ErrorContext, what: str = "an image") -> ImageInfo:
    """`verified_image` in a worker thread (see `decoded_image`)."""
    return await in_thread(lambda: verified_image(data, ctx, what))


def json_object(resp: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or {} when it has none."""
    try:
        data = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def error_detail(resp: httpx.Response, *keys: str) -> str:
    """A short text of an error body: the first of `keys` it has, else its start."""
    body = json_object(resp)
    for key in keys:
        if body.get(key):
            return str(body[key])[:300]
    if body:
        return str(body)[:300]
    return resp.text[:200].strip() or resp.reason_phrase


def json_answer(resp: httpx.Response, ctx: ErrorContext) -> dict[str, Any]:
    """The JSON object of a successful answer; anything else is a MalformedResponse."""
    try:
        data = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ctx.error(
            MalformedResponse, f"{ctx.where} answered {ctx.status} with a body that is not JSON"
        ) from exc
    if not isinstance(data, dict):
        raise ctx.error(MalformedResponse, f"{ctx.where} answered {ctx.status} with a non-object body")
    return data


@contextlib.contextmanager
def httpx_errors(ctx: ErrorContext, *, billed_on_timeout: bool, lib: ModuleType = httpx) -> Iterator[None]:
    """Map httpx transport errors to typed outcomes (statuses go through a `StatusTable`).

    `lib` is the module whose errors are mapped: `httpx`, or `httpx2` (its fork with the same
    exception tree, which the openai and google-genai SDKs run on).
    """
    name = ctx.provider
    try:
        yield
    except lib.ReadTimeout as exc:
        raise ctx.error(
            ReadTimedOut,
            f"{ctx.where} did not answer in time"
            + (" (the call may have been billed)" if billed_on_timeout else ""),
            maybe_billed=billed_on_timeout,
        ) from exc
    except (lib.ConnectError, lib.ConnectTimeout, lib.PoolTimeout) as exc:
        raise ctx.error(ConnectionFailed, f"cannot connect to {name}: {type(exc).__name__}") from exc
    except (lib.WriteError, lib.WriteTimeout) as exc:  # the request never fully left
        raise ctx.error(ConnectionFailed, f"{name} dropped the connection: {type(exc).__name__}") from exc
    except (lib.RemoteProtocolError, lib.ReadError) as exc:  # sent, then no (whole) answer
        raise ctx.error(
            ConnectionFailed,
            f"{name} dropped the connection after the request was sent: {type(exc).__name__}",
            maybe_billed=billed_on_timeout,
        ) from exc
    except lib.DecodingError as exc:
        raise ctx.error(MalformedResponse, f"{name} sent a body that cannot be decoded") from exc
    except (lib.HTTPError, lib.InvalidURL) as exc:  # bad URL or scheme, redirect loop, proxy …
        raise ctx.error(ConnectionFailed, f"{name} request failed: {type(exc).__name__}: {exc}") from exc


def retry_after_seconds(headers: Any) -> float | None:
    """The wait a response asks for: `retry-after-ms`, else `retry-after` in seconds or as a date."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils
    import time

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
