"""The xAI backend over real HTTP against the emulator: wire shape, outputs, and the error seam."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from imagerelay.backends.base import Call, Delivered
from imagerelay.backends.xai import XAIBackend
from imagerelay.catalog import load_catalog
from imagerelay.emulator import Emulator, Fault
from imagerelay.errors import (
    ArgumentRejected,
    AuthenticationFailed,
    ConnectionFailed,
    ContentBlocked,
    DownloadFailed,
    EmptyResult,
    MalformedResponse,
    ModelUnavailable,
    RateLimited,
    ReadTimedOut,
    ServerError,
)
from imagerelay.imaging import probe
from imagerelay.references import ImageLimits, PreparedImage, load_reference, prepare
from imagerelay.settings import ProviderSettings
from tests.images import BLUE, RED, jpeg_bytes, write

CATALOG = load_catalog()
XAI = CATALOG.provider("xai")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def backend(emulator: Emulator, http: httpx.AsyncClient, key: str, **settings: Any) -> XAIBackend:
    return XAIBackend(
        XAI, ProviderSettings(base_url=emulator.base_url("xai"), **settings), SecretStr(key), http
    )


def call(model: str = "grok-imagine-image", n: int = 1, **kw: Any) -> Call:
    return Call(model=XAI.models[model], provider=XAI, prompt="a lighthouse", n=n, **kw)


async def run(b: XAIBackend, c: Call) -> tuple[list[Delivered], Any]:
    got: list[Delivered] = []

    async def deliver(image: Delivered) -> None:
        got.append(image)

    result = await b.generate(c, deliver, lambda event: None)
    return got, result


def reference(tmp_path: Any, color: tuple[int, int, int] = RED) -> PreparedImage:
    ref = load_reference(write(tmp_path, f"ref-{color[0]}.jpg", jpeg_bytes((64, 48), color)))
    return prepare(ref, ImageLimits())


async def test_generation_sends_only_declared_fields(
    emulator: Emulator, http: httpx.AsyncClient, test_keys: dict[str, str]
) -> None:
    """A text call posts JSON with aspect_ratio/resolution and b64_json — never size or style."""
    b = backend(emulator, http, test_keys["xai"])
    images, result = await run(b, call(n=2, params={"aspect_ratio": "16:9", "resolution": "1k"}))
    body = emulator.requests_for("xai.generations")[0].json
    assert body == {
        "model": "grok-imagine-image",
        "prompt": "a lighthouse",
        "n": 2,
        "aspect_ratio": "16:9",
        "resolution": "1k",
        "response_format": "b64_json",
    }
    assert len(images) == 2
    info = probe(images[0].data)
    assert (info.format, info.width, info.height) == ("jpeg", 1360, 768)  # about 1 MP at 16:9
    assert result.reported_cost_usd == pytest.approx(0.04)


async def test_url_outputs_are_downloaded_at_once(
    emulator: Emulator, http: httpx.AsyncClient, test_keys: dict[str, str]
) -> None:
    """With response_format=url, each hosted image is fetched before generate returns."""
    b = backend(emulator, http, test_keys["xai"])
    b.response_format = "url"
    images, _ = await run(b, call())
    assert probe(images[0].data).format == "jpeg"
    assert len(emulator.requests_for("files")) == 1


async def test_expired_url_is_download_failed(
    emulator: Emulator, http: httpx.AsyncClient, test_keys: dict[str, str]
) -> None:
    """An output URL that no longer works is a DownloadFailed, not a success or a crash."""
    emulator.script("files", Fault(expired=True))
    b = backend(emulator, http, test_keys["xai"])
    b.response_format = "url"
    with pytest.raises(DownloadFailed):
        await run(b, call())


async def test_truncated_download_is_fetched_again(
    emulator: Emulator, http: httpx.AsyncClient, test_keys: dict[str, str]
) -> None:
    """A truncated image body is fetched once more from the same URL before giving up."""
    emulator.script("files", Fault(truncate=True))
    b = backend(emulator, http, test_keys["xai"])
    b.response_format = "url"
    images, _ = await run(b, call())
    assert probe(images[0].data).width == 1024
    assert len(emulator.requests_for("files")) == 2


async def test_edits_send_references_as_data_uris(
    emulator: Emulator, http: httpx.AsyncClient, test_keys: dict[str, str], tmp_path: Any
) -> None:
    """References go to /images/edits as JSON data URIs: one as `image`, several as `images`."""
    b = backend(emulator, http, test_keys["xai"])
    one = reference(tmp_path, RED)
    await run(b, call(references=(one,)))
    body = emulator.requests_for("xai.edits")[0].json
    assert body["image"] == {"url": one.data_uri()}
    assert "images" not in body
    three = (one, reference(tmp_path, BLUE), one)
    _images, result = await run(b, call(references=three))
    body = emulator.requests_for("xai.edits")[1].json
    assert len(body["images"]) == 3
    assert "image" not in body
    assert result.reported_cost_usd == pytest.approx(0.02 + 3 * 0.01)
    assert "<data URI" in str(result.sent["images"][0])


@pytest.mark.parametrize(
    ("fault", "error", "retry_after"),
    [
        (Fault(status=429, headers={"retry-after": "7"}), RateLimited, 7.0),
        (Fault(status=500), ServerError, None),
        (Fault(status=503), ServerError, None),
        (Fault(drop=True), ConnectionFailed, None),
        (Fault(malformed=True), MalformedResponse, None),
        (Fault(blocked=True), ContentBlocked, None),
        (Fault(empty=True), EmptyResult, None),
        (Fault(truncate=True), MalformedResponse, None),
        (Fault(status=422), ArgumentRejected, None),
        (Fault(status=404), ModelUnavailable, None),
    ],
    ids=["429", "500", "503", "drop", "malformed", "blocked", "empty", "truncated", "422", "404"],
)
async def test_faults_map_to_typed_outcomes(
    emulator: Emulator,
    http: httpx.AsyncClient,
    test_keys: dict[str, str],
    fault: Fault,
    error: type[Exception],
    retry_after: float | None,
) -> None:
    """Each scripted fault ends as its typed outcome, never as a success."""
    emulator.script("xai.generations", fault)
    with pytest.raises(error) as info:
        await run(backend(emulator, http, test_keys["xai"]), call())
    assert getattr(info.value, "retry_after", None) == retry_after
    assert info.value.provider == "xai"
    assert info.value.model == "grok-imagine-image"
    if isinstance(info.value, MalformedResponse | ConnectionFailed):  # mapped from a lower error
        assert info.value.__cause__ is not None


async def test_bad_key_is_authentication_not_bad_request(emulator: Emulator, http: httpx.AsyncClient) -> None:
    """xAI answers a bad key with HTTP 400; the seam reports AuthenticationFailed naming XAI_API_KEY."""
    with pytest.raises(AuthenticationFailed) as info:
        await run(backend(emulator, http, "xai-not-the-right-key-000"), call())
    assert info.value.status == 400
    assert "XAI_API_KEY" in str(info.value)
    assert "not-the-right-key" not in repr(info.value)


async def test_retired_model_is_unavailable(
    emulator: Emulator, http: httpx.AsyncClient, test_keys: dict[str, str]
) -> None:
    """grok-2-image (retired) answers 404: ModelUnavailable."""
    with pytest.raises(ModelUnavailable):
        await run(backend(emulator, http, test_keys["xai"]), call("grok-2-image"))


async def test_read_timeout_marks_maybe_billed(
    emulator: Emulator, http: httpx.AsyncClient, test_keys: dict[str, str]
) -> None:
    """A generation that does not answer in time is ReadTimedOut with maybe_billed set."""
    emulator.script("xai.generations", Fault(latency=1.0))
    with pytest.raises(ReadTimedOut) as info:
        await run(backend(emulator, http, test_keys["xai"], timeout=0.2), call())
    assert info.value.maybe_billed


async def test_describe_uses_vision_chat(
    emulator: Emulator, http: httpx.AsyncClient, test_keys: dict[str, str], tmp_path: Any
) -> None:
    """describe() sends the image as a data URI to /chat/completions and returns the text."""
    b = backend(emulator, http, test_keys["xai"])
    ref = reference(tmp_path)
    text = await b.describe(ref, model="grok-4.6", instruction="Describe it.")
    body = emulator.requests_for("xai.chat")[0].json
    parts = body["messages"][0]["content"]
    assert parts[1]["image_url"]["url"] == ref.data_uri()
    assert isinstance(text, str)
    assert text


def test_repr_hides_the_key(emulator: Emulator) -> None:
    """The backend's repr names provider and URL, never the key."""
    b = XAIBackend(XAI, ProviderSettings(), SecretStr("xai-secret-value-1234"), httpx.AsyncClient())
    assert "secret-value" not in repr(b)
    assert "xai" in repr(b)
