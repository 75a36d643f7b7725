"""The relay's HTTP client: httpx's own transports, split into a few small connection pools.

httpcore's pool (httpx 0.28 runs on httpcore 1.0) walks every connection it holds each time a
request joins or leaves it, and probes the socket of each idle one, so its cost per request grows
with the connections open. Measured with `bench/concurrency.py` (200 images, 50 at a time, the
emulator answering in 0.2 s; bench/README.md, P5), client CPU per image: one pool of 64
connections keeping 32 alive 12.6 ms, the same 64 in 8 pools of 8 10.0 ms (0.90x within rounds;
0.65x in an earlier run); keeping all 64 alive in one pool was worse still (21 ms). Each
request goes to the pool with the fewest requests in flight. Everything else (HTTP, keep-alive,
timeouts, TLS) is httpx's; proxies from the environment still apply: the pools are mounted for
every URL, behind the proxy routes httpx makes from HTTP(S)_PROXY and NO_PROXY.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import httpx

__all__ = ["ShardedTransport", "http_client"]

#: Connections open at most, and how many pools they are split into.
CONNECTIONS = 64
SHARDS = 8


def http_client() -> httpx.AsyncClient:
    """The relay's client: redirects followed, environment proxies honoured, pools sharded."""
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS // 2)
    # One TLS context for every pool: loading the CA bundle takes ~20 ms each time.
    tls = httpx.create_ssl_context()
    # `transport=` would turn the environment's proxies off; a mount keeps them (httpx tries
    # the more specific proxy routes first, and a NO_PROXY host goes to its default transport).
    sharded = ShardedTransport(verify=tls)
    return httpx.AsyncClient(verify=tls, limits=limits, mounts={"all://": sharded}, follow_redirects=True)


class ShardedTransport(httpx.AsyncBaseTransport):
    """`shards` httpx transports of `connections // shards` connections each, every one of which
    may stay open between requests (closing idle ones under load only means opening them again)."""

    def __init__(
        self, *, connections: int = CONNECTIONS, shards: int = SHARDS, verify: ssl.SSLContext | bool = True
    ) -> None:
        per = max(1, connections // shards)
        limits = httpx.Limits(max_connections=per, max_keepalive_connections=per)
        tls = httpx.create_ssl_context(verify) if verify is True else verify
        self._shards = [httpx.AsyncHTTPTransport(verify=tls, limits=limits) for _ in range(shards)]
        #: Requests in flight per pool, from sending until the response is closed.
        self.in_flight = [0] * shards

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        i = self.in_flight.index(min(self.in_flight))
        self.in_flight[i] += 1
        try:
            response = await self._shards[i].handle_async_request(request)
        except BaseException:
            self.in_flight[i] -= 1
            raise
        response.stream = _Counted(response.stream, self.in_flight, i)
        return response

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


class _Counted(httpx.AsyncByteStream):
    """A response body that gives its request's place in the pool back once it is closed."""

    def __init__(
        self, stream: httpx.SyncByteStream | httpx.AsyncByteStream, counts: list[int], i: int
    ) -> None:
        assert isinstance(stream, httpx.AsyncByteStream)
        self._stream = stream
        self._counts = counts
        self._i: int | None = i

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._i is not None:
                self._counts[self._i] -= 1
                self._i = None
