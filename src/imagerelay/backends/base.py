"""What every backend receives and returns, and the pieces they share (downloads, httpx errors)."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import (
    ConnectionFailed,
    DownloadFailed,
    MalformedResponse,
    ReadTimedOut,
)
from ..hooks import OnCallEvent

if TYPE_CHECKING:
    from pydantic import SecretStr

    from ..catalog import ModelSpec, ProviderSpec
    from ..imaging import ImageInfo
    from ..references import PreparedImage
    from ..settings import ProviderSettings

__all__ = [
    "Adopt",
    "Backend",
    "Call",
    "CallResult",
    "Deliver",
    "Delivered",
    "OnEvent",
    "download_image",
    "httpx_errors",
    "images_summary",
    "retry_after_seconds",
]


@dataclass(frozen=True)
class Call:
    """One API call to one model, already translated by the planner.

    `params` uses canonical names (`aspect_ratio`, `resolution`, `size`, `quality`, `seed`,
    `output_format`) with values valid for this model; the backend renames them with
    `model.wire(...)`. `extras` are passed through under the names the caller gave (the planner
    kept only those the model declares in `extra_fields`).
    """

    model: ModelSpec
    provider: ProviderSpec
    prompt: str
    n: int
    params: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    references: tuple[PreparedImage, ...] = ()
    mask: PreparedImage | None = None
    #: A prediction created earlier (e.g. before a crash) to re-attach to by id, for this attempt
    #: only: once it is resumed it ends, one way or another (see `next_attempt`).
    resume_id: str | None = None
    #: Replicate: an earlier run of this request was cut short; a prediction it created that was
    #: never recorded is looked for before creating another (see `Adopt`).
    adopt: Adopt | None = None
    #: Replicate: cancel the prediction in flight when the call is interrupted (Ctrl-C) — unless
    #: the caller resumes later (a batch), which re-attaches to it instead.
    cancel_on_interrupt: bool = False

    def next_attempt(self, *, n: int, known: frozenset[str]) -> Call:
        """The call for the next attempt at this model, asking for `n` images: never the resumed
        prediction again (the backend polled it until it ended, or gave up on it, and a retry must
        make a fresh one), and never adopting a prediction this run has made itself (`known`)."""
        adopt = self.adopt if self.adopt is None else replace(self.adopt, known=self.adopt.known | known)
        return replace(self, n=n, resume_id=None, adopt=adopt)


@dataclass(frozen=True)
class Adopt:
    """Where to look for a prediction an interrupted run created but never recorded."""

    since: datetime  # when that run began: only predictions created after it are candidates
    known: frozenset[str] = frozenset()  # ids already recorded (by any item): never taken twice


@dataclass(frozen=True)
class Delivered:
    """One image exactly as the provider delivered it (after download when it came as a URL)."""

    data: bytes
    mime: str | None = None
    revised_prompt: str | None = None
    #: What `imaging.probe` found when the backend verified the bytes (saves decoding them again).
    info: ImageInfo | None = None
    #: Where it was fetched from (provider URLs stay valid for a while): a last resort when the
    #: bytes can be written nowhere.
    url: str | None = None


@dataclass
class CallResult:
    """What a successful call reports besides its images (those went to `deliver`)."""

    images: int = 0
    reported_cost_usd: float | None = None
    request_id: str | None = None
    prediction_id: str | None = None
    #: The parameters actually sent, with image data replaced by short descriptions.
    sent: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)


#: Persists one delivered image at once (bytes first) — called before anything else can fail.
Deliver = Callable[[Delivered], Awaitable[None]]
#: Reports progress the caller must record before it is too late (`hooks.CallEvent`): `Sent` just
#: before the generation is sent, `PredictionCreated` once a prediction exists (or is re-attached
#: to), `PredictionCancelled` when an interrupted call cancelled it.
OnEvent = OnCallEvent


class Backend(ABC):
    """Speaks one provider's wire API and maps its errors to `imagerelay.errors` at one seam."""

    def __init__(
        self,
        provider: ProviderSpec,
        settings: ProviderSettings,
        key: SecretStr | None,
        http: httpx.AsyncClient,
    ) -> None:
        self.provider = provider
        self.settings = settings
        self._key = key
        self.http = http
        self.base_url = (settings.base_url or provider.base_url).rstrip("/")

    def __repr__(self) -> str:  # never shows the key
        return f"{type(self).__name__}(provider={self.provider.name!r}, base_url={self.base_url!r})"

    @abstractmethod
    async def generate(self, call: Call, deliver: Deliver, on_event: OnEvent) -> CallResult:
        """Make `call`, pass every image to `deliver` as soon as its bytes are in hand."""

    async def describe(self, image: PreparedImage, *, model: str, instruction: str) -> str:
        """Describe an image in words (vision). Backends without a vision API raise ConfigError."""
        from ..errors import ConfigError

        raise ConfigError(f'{self.provider.name} has no vision model: set [vision] provider = "xai"')

    async def aclose(self) -> None:
        """Release SDK clients (the shared httpx client belongs to the caller)."""


@contextlib.contextmanager
def httpx_errors(
    provider: str, model: str, *, billed_on_timeout: bool, lib: ModuleType = httpx
) -> Iterator[None]:
    """Map httpx transport errors to typed outcomes (the HTTP-status half is per backend).

    `lib` is the module whose errors are mapped: `httpx`, or `httpx2` (its fork with the same
    exception tree, which the openai and google-genai SDKs run on).
    """
    where: dict[str, Any] = {"provider": provider, "model": model}
    try:
        yield
    except lib.ReadTimeout as exc:
        raise ReadTimedOut(
            f"{provider}:{model} did not answer in time"
            + (" (the call may have been billed)" if billed_on_timeout else ""),
            maybe_billed=billed_on_timeout,
            **where,
        ) from exc
    except (lib.ConnectError, lib.ConnectTimeout, lib.PoolTimeout) as exc:
        raise ConnectionFailed(f"cannot connect to {provider}: {type(exc).__name__}", **where) from exc
    except (lib.WriteError, lib.WriteTimeout) as exc:  # the request never fully left
        raise ConnectionFailed(f"{provider} dropped the connection: {type(exc).__name__}", **where) from exc
    except (lib.RemoteProtocolError, lib.ReadError) as exc:  # sent, then no (whole) answer
        raise ConnectionFailed(
            f"{provider} dropped the connection after the request was sent: {type(exc).__name__}",
            maybe_billed=billed_on_timeout,
            **where,
        ) from exc
    except lib.DecodingError as exc:
        raise MalformedResponse(f"{provider} sent a body that cannot be decoded", **where) from exc
    except (lib.HTTPError, lib.InvalidURL) as exc:  # bad URL or scheme, redirect loop, proxy …
        raise ConnectionFailed(f"{provider} request failed: {type(exc).__name__}: {exc}", **where) from exc


async def download_image(
    http: httpx.AsyncClient,
    url: str,
    *,
    provider: str,
    model: str,
    timeout: float,
    max_bytes: int = 200 * 1024 * 1024,
) -> Delivered:
    """Fetch a delivered image now (provider URLs expire); verify it decodes completely.

    A truncated body is fetched once more before giving up: the URL usually still works.
    The image was generated (and billed) before its URL was handed out, so every way this can fail
    — an expired URL, a host that refuses, resets or does not resolve, a broken body — is a
    `DownloadFailed` (possibly billed: never re-sent to the same model) naming the host.
    """
    from urllib.parse import urlsplit

    from ..imaging import CorruptImage, probe

    host = urlsplit(url).netloc.rpartition("@")[2] or "the image host"
    kw: dict[str, Any] = {"provider": provider, "model": model}
    made = f"{provider}:{model} made the image (it may be billed), but"
    last: Exception | None = None
    for _ in range(2):
        try:
            async with http.stream("GET", url, timeout=timeout) as resp:
                if resp.status_code != 200:
                    why = " (expired?)" if resp.status_code in (401, 403, 404, 410) else ""
                    raise DownloadFailed(
                        f"{made} its URL on {host} answered {resp.status_code}{why}",
                        status=resp.status_code,
                        **kw,
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        big = f"{max_bytes // 2**20} MiB"
                        raise DownloadFailed(f"{made} the image on {host} is over {big}", **kw)
                    chunks.append(chunk)
                data = b"".join(chunks)
                mime = resp.headers.get("content-type", "").split(";")[0] or None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise DownloadFailed(
                f"{made} fetching it from {host} failed: {_transport_failure(exc)}", **kw
            ) from exc
        try:
            info = probe(data)
        except CorruptImage as exc:
            last = exc
            continue
        return Delivered(data=data, mime=mime, info=info, url=url)
    raise DownloadFailed(
        f"{made} the image from {host} does not decode ({last}): truncated or corrupt", **kw
    ) from last


def images_summary(images: tuple[PreparedImage, ...], what: str) -> str:
    """What a receipt shows instead of image bytes: "<2 images, 345 KB>"."""
    from ..imaging import human_bytes

    total = sum(len(i.data) for i in images)
    count = f"{len(images)} {what}{'s' if len(images) != 1 else ''}"
    return f"<{count}, {human_bytes(total)}>"


def _transport_failure(exc: Exception) -> str:
    """What went wrong on the wire, in words (never the URL: it may carry a signed token)."""
    if isinstance(exc, httpx.ConnectError):
        return "the connection was refused or the name did not resolve (ConnectError)"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer in time ({type(exc).__name__})"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return f"the connection was reset or cut off ({type(exc).__name__})"
    return type(exc).__name__


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
