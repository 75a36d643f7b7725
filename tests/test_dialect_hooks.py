"""What a dialect brings besides its routes — state kept across requests, its model listing, how
its expired URLs answer — works for a registered plugin's dialect exactly as for the built-ins',
and the emulator names no provider to get there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from imagerelay import plugins
from imagerelay.emulator import Emulator
from imagerelay.emulator.wire import Call, Dialect, Reply, Route, json_reply


class Shelf:
    """The tiny API's state: the bytes stored by id."""

    def __init__(self) -> None:
        self.items: dict[str, bytes] = {}

    def clear(self) -> None:
        self.items.clear()


def _problem(status: int, fault: Any = None) -> Reply:
    return json_reply(status, {"oops": status})


def _store(call: Call) -> Reply:
    shelf: Shelf = call.emu.state("tiny")
    item = str(len(shelf.items))
    shelf.items[item] = call.raw
    url = call.emu.host_file("tiny", call.raw, "application/octet-stream", f"tiny-{item}.bin")
    return json_reply(200, {"id": item, "url": url, "get": f"{call.emu.url}/tiny/v1/items/{item}"})


def _fetch(call: Call) -> Reply:
    shelf: Shelf = call.emu.state("tiny")
    data = shelf.items.get(call.params["id"])
    return Reply(200, data, "application/octet-stream") if data is not None else _problem(404)


def _models(call: Call) -> Reply:
    return json_reply(200, {"models": call.emu.listings.tiny})


DIALECT = Dialect(
    "tiny",
    lambda key: _problem(401),
    _problem,
    lambda method, path: _problem(404),
    routes=(
        Route("POST", r"/v1/items", "store", _store),
        Route("GET", r"/v1/items/(?P<id>[^/]+)", "item", _fetch, hosted=True),
        Route("GET", r"/v1/models", "models", _models),
    ),
    expired_file=lambda: Reply(410, b"gone for good", "text/plain"),
    state=Shelf,
    listings={"tiny": lambda: [{"id": "tiny-1"}]},
)


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """An emulator with `tiny` registered as a provider plugin (for this test only)."""
    monkeypatch.setattr(plugins, "_REGISTERED", {})
    monkeypatch.setattr(plugins, "_SCANNED", {})
    plugins.register_provider(
        plugins.Provider("tiny", backend="tests.nowhere:Backend", dialect=f"{__name__}:DIALECT")
    )
    with Emulator() as emu:
        yield emu


def test_its_state_is_kept_across_requests_and_cleared_by_reset(emu: Emulator) -> None:
    """`emu.state("tiny")` is the dialect's own object, shared by its requests; `reset()` clears it."""
    with httpx.Client(base_url=emu.base_url("tiny"), headers={"Authorization": "Bearer k"}) as client:
        stored = client.post("/items", content=b"\x01\x02").json()
        assert client.get(f"/items/{stored['id']}").content == b"\x01\x02"
    assert emu.state("tiny").items == {"0": b"\x01\x02"}
    emu.reset()
    assert emu.state("tiny").items == {}
    with pytest.raises(ValueError, match="keeps no state"):
        emu.state("openai")


def test_its_listing_is_served_edited_and_reset(emu: Emulator) -> None:
    """`emu.listings.tiny` starts from the dialect's listing; an edit is served; `reset()` restores it."""
    with httpx.Client(base_url=emu.base_url("tiny"), headers={"Authorization": "Bearer k"}) as client:
        assert client.get("/models").json() == {"models": [{"id": "tiny-1"}]}
        emu.listings.tiny = []
        assert client.get("/models").json() == {"models": []}
        emu.reset()
        assert client.get("/models").json() == {"models": [{"id": "tiny-1"}]}


def test_its_hosted_bytes_are_local_and_its_expired_urls_answer_its_way(emu: Emulator) -> None:
    """`fetch_local` finds the bytes behind its hosted URLs (a hosted file, a hosted route); once
    expired, a hosted file answers as the dialect's `expired_file` says."""
    with httpx.Client(base_url=emu.base_url("tiny"), headers={"Authorization": "Bearer k"}) as client:
        stored = client.post("/items", content=b"bytes").json()
        assert emu.fetch_local(stored["url"]) == emu.fetch_local(stored["get"]) == b"bytes"
        assert emu.fetch_local(f"{emu.url}/tiny/v1/items/99") is None
        emu.expire_urls()
        gone = client.get(stored["url"])
    assert (gone.status_code, gone.content) == (410, b"gone for good")
    assert emu.fetch_local(stored["url"]) is None
