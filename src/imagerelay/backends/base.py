"""What every backend receives and returns, and the pieces they share (downloads, httpx errors)."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import (
    ConnectionFailed,
    DownloadFailed,
    MalformedResponse,
    ReadTimedOut,
    ServerError,
)

if TYPE_CHECKING:
    from pydantic import SecretStr

    from ..catalog import ModelSpec, ProviderSpec
    from ..imaging import ImageInfo
    from ..references import PreparedImage
    from ..settings import ProviderSettings

__all__ = [
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
    #: Replicate: a prediction created earlier (e.g. before a crash) to re-attach to by id.
    resume_id: str | None = None


@dataclass(frozen=True)
class Delivered:
    """One image exactly as the provider delivered it (after download when it came as a URL)."""

    data: bytes
    mime: str | None = None
    revised_prompt: str | None = None
    #: What `imaging.probe` found when the backend verified the bytes (saves decoding them again).
    info: ImageInfo | None = None


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
#: Reports progress the caller must record before it is too late, e.g. ("prediction", id).
OnEvent = Callable[[str, Any], None]


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
    """
    from ..imaging import CorruptImage, probe

    last: Exception | None = None
    for _ in range(2):
        with httpx_errors(provider, model, billed_on_timeout=False):
            async with http.stream("GET", url, timeout=timeout) as resp:
                if resp.status_code in (401, 403, 404, 410):
                    raise DownloadFailed(
                        f"{provider}:{model} image URL answered {resp.status_code} (expired?): "
                        "the image was generated but could not be fetched",
                        provider=provider,
                        model=model,
                        status=resp.status_code,
                    )
                if resp.status_code >= 500:
                    raise ServerError(
                        f"{provider} image host answered {resp.status_code}",
                        provider=provider,
                        model=model,
                        status=resp.status_code,
                    )
                if resp.status_code != 200:
                    raise DownloadFailed(
                        f"{provider} image host answered {resp.status_code}",
                        provider=provider,
                        model=model,
                        status=resp.status_code,
                    )
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise MalformedResponse(
                            f"{provider} image is over {max_bytes // 2**20} MiB",
                            provider=provider,
                            model=model,
                        )
                    chunks.append(chunk)
                data = b"".join(chunks)
                mime = resp.headers.get("content-type", "").split(";")[0] or None
        try:
            info = probe(data)
        except CorruptImage as exc:
            last = exc
            continue
        return Delivered(data=data, mime=mime, info=info)
    raise DownloadFailed(
        f"{provider}:{model} sent an image that does not decode ({last}): truncated or corrupt",
        provider=provider,
        model=model,
    ) from last


def images_summary(images: tuple[PreparedImage, ...], what: str) -> str:
    """What a receipt shows instead of image bytes: "<2 images, 345 KB>"."""
    from ..imaging import human_bytes

    total = sum(len(i.data) for i in images)
    count = f"{len(images)} {what}{'s' if len(images) != 1 else ''}"
    return f"<{count}, {human_bytes(total)}>"


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
