"""The relay's HTTP client: a few small connection pools behind one transport, proxies kept."""

from __future__ import annotations

import contextlib
import socket
from urllib.parse import urlsplit

import httpx
import pytest

from imagerelay.emulator import Emulator
from imagerelay.transport import ShardedTransport, http_client


def _models_url(emulator: Emulator) -> str:
    return emulator.base_url("xai") + "/image-generation-models"


async def test_each_request_goes_to_the_least_busy_pool_and_gives_its_place_back(
    emulator: Emulator, test_keys: dict[str, str]
) -> None:
    """Responses held open fill the pools evenly; closing them frees every place again."""
    transport = ShardedTransport(connections=8, shards=4)
    headers = {"authorization": f"Bearer {test_keys['xai']}"}
    async with httpx.AsyncClient(transport=transport) as client, contextlib.AsyncExitStack() as held:
        seen = []
        for _ in range(8):
            stream = client.stream("GET", _models_url(emulator), headers=headers)
            response = await held.enter_async_context(stream)
            assert response.status_code == 200
            seen.append(list(transport.in_flight))
        assert seen[3] == [1, 1, 1, 1]
        assert transport.in_flight == [2, 2, 2, 2]
        await held.aclose()
        assert transport.in_flight == [0, 0, 0, 0]
        again = await client.get(_models_url(emulator), headers=headers)  # read in full: closed
        assert again.status_code == 200
        assert transport.in_flight == [0, 0, 0, 0]


async def test_a_request_that_fails_to_connect_gives_its_place_back() -> None:
    """A refused connection raises httpx's ConnectError and leaves no place taken."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before the request: nothing listens there
    transport = ShardedTransport(connections=4, shards=2)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"http://127.0.0.1:{port}/")
    assert transport.in_flight == [0, 0]


async def test_the_relays_client_honours_a_proxy_from_the_environment(
    emulator: Emulator, test_keys: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With HTTP_PROXY set, requests go through the proxy (here the emulator, which answers an
    absolute URL), so a host only the proxy can reach is served."""
    root = urlsplit(emulator.base_url("xai"))
    monkeypatch.setenv("HTTP_PROXY", f"http://{root.netloc}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    url = f"http://imagerelay-proxy-test.invalid{root.path}/image-generation-models"
    async with http_client() as client:
        response = await client.get(url, headers={"authorization": f"Bearer {test_keys['xai']}"})
    assert response.status_code == 200
    assert emulator.requests[-1].route == "xai.models"
