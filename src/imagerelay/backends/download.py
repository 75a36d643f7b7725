"""Fetching a delivered image from the URL a provider handed out: retried while the failure is
on the way (a download is free), and every way it ends in failure is possibly billed."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import httpx

from ..errors import AuthenticationFailed, DownloadFailed, ModelUnavailable
from ..offload import in_thread
from .http import DEFAULT, ErrorContext

if TYPE_CHECKING:
    from .base import Delivered

__all__ = ["DOWNLOAD_BACKOFF", "download_image"]

log = logging.getLogger("imagerelay")


#: Seconds before each further GET of an image URL that failed on the way (a reset, a refused
#: connection, a 5xx, a truncated body): a download is free, so it is retried before the paid image
#: is given up on — but boundedly, so a host that is gone costs seconds, not minutes.
DOWNLOAD_BACKOFF = (0.2, 0.6)


async def download_image(
    http: httpx.AsyncClient,
    url: str,
    ctx: ErrorContext,
    *,
    timeout: float,
    max_bytes: int = 200 * 1024 * 1024,
    backoff: tuple[float, ...] = DOWNLOAD_BACKOFF,
) -> Delivered:
    """Fetch a delivered image now (provider URLs expire); verify it decodes completely.

    A GET that fails on the way — the connection refused, reset or timed out, a 5xx or 429, a
    truncated body — is made again after each delay of `backoff`: the URL usually still works, and
    fetching it again is not a new generation. The image was generated (and billed) before its URL
    was handed out, so every way this can end in failure — an expired URL, a host that refuses,
    resets or does not resolve, a broken body — is a `DownloadFailed` (possibly billed: never
    re-sent to the same model) naming the host.
    """
    import asyncio
    from urllib.parse import urlsplit

    host = urlsplit(url).netloc.rpartition("@")[2] or "the image host"
    ctx = ctx.but(status=None)
    failure: DownloadFailed | None = None
    delays = (0.0, *backoff)
    for i, delay in enumerate(delays):
        if delay:
            await asyncio.sleep(delay)
        got = await _fetch_once(http, url, ctx, host, timeout=timeout, max_bytes=max_bytes)
        if not isinstance(got, tuple):
            return got
        failure, again = got
        if not again:
            break
        if i + 1 < len(delays):
            log.info("%s: fetching an image from %s failed (%s); trying again", ctx.where, host, failure)
    assert failure is not None
    tries = i + 1
    if tries > 1:
        failure.message += f" ({tries} tries)"
        failure.args = (failure.message,)
    raise failure


async def _fetch_once(
    http: httpx.AsyncClient, url: str, ctx: ErrorContext, host: str, *, timeout: float, max_bytes: int
) -> Delivered | tuple[DownloadFailed, bool]:
    """One GET of `url`: the image, or (why it failed, whether another GET may succeed)."""
    from ..imaging import CorruptImage, probe
    from .base import Delivered

    made = f"{ctx.where} made the image (it may be billed), but"
    try:
        async with http.stream("GET", url, timeout=timeout) as resp:
            if resp.status_code != 200:
                # What the shared table calls a refused key or a missing model is, for a URL
                # handed out minutes ago, most likely one that has expired.
                gone = DEFAULT.classify(resp.status_code) in (AuthenticationFailed, ModelUnavailable)
                why = " (expired?)" if gone else ""
                error = ctx.but(status=resp.status_code).error(
                    DownloadFailed, f"{made} its URL on {host} answered {resp.status_code}{why}"
                )
                return error, resp.status_code >= 500 or resp.status_code in (408, 429)
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    big = f"{max_bytes // 2**20} MiB"
                    return ctx.error(DownloadFailed, f"{made} the image on {host} is over {big}"), False
                chunks.append(chunk)
            data = b"".join(chunks)
            mime = resp.headers.get("content-type", "").split(";")[0] or None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        error = ctx.error(DownloadFailed, f"{made} fetching it from {host} failed: {_transport_failure(exc)}")
        error.__cause__ = exc
        return error, not isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol)
    try:
        info = await in_thread(lambda: probe(data))
    except CorruptImage as exc:
        error = ctx.error(
            DownloadFailed, f"{made} the image from {host} does not decode ({exc}): truncated or corrupt"
        )
        error.__cause__ = exc
        return error, True
    return Delivered(data=data, mime=mime, info=info, url=url)


def _transport_failure(exc: Exception) -> str:
    """What went wrong on the wire, in words (never the URL: it may carry a signed token)."""
    if isinstance(exc, httpx.ConnectError):
        return "the connection was refused or the name did not resolve (ConnectError)"
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer in time ({type(exc).__name__})"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return f"the connection was reset or cut off ({type(exc).__name__})"
    return type(exc).__name__
