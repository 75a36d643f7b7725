"""The Gemini backend with the real `google-genai` SDK over real HTTP against the emulator."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.genai import errors as genai_errors
from pydantic import SecretStr

from imagerelay.backends.base import Call, CallResult, Delivered
from imagerelay.backends.gemini import GeminiBackend
from imagerelay.catalog import load_catalog
from imagerelay.emulator import Emulator, Fault
from imagerelay.errors import (
    ArgumentRejected,
    AuthenticationFailed,
    ConnectionFailed,
    ContentBlocked,
    EmptyResult,
    MalformedResponse,
    ModelUnavailable,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    ReadTimedOut,
    ServerError,
)
from imagerelay.references import ImageLimits, PreparedImage, load_reference, prepare
from imagerelay.settings import ProviderSettings
from tests.emulator.emulator_helpers import is_reddish, mean_rgb
from tests.images import BLUE, GREEN, RED, decode, jpeg_bytes, png_bytes, write

CATALOG = load_catalog()
GEMINI = CATALOG.provider("gemini")
ROUTE = "gemini.generate"
NB21 = "gemini-nano-banana-2.1"
PRO = "gemini-3-pro-image"
LITE = "gemini-3.1-flash-lite-image"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
async def backend(
    emulator: Emulator, http: httpx.AsyncClient, test_keys: dict[str, str]
) -> AsyncIterator[GeminiBackend]:
    b = make_backend(emulator, http, test_keys["gemini"])
    yield b
    await b.aclose()


def make_backend(
    emulator: Emulator, http: httpx.AsyncClient, key: str | None, *, base_url: str | None = None, **kw: Any
) -> GeminiBackend:
    settings = ProviderSettings(base_url=base_url or emulator.base_url("gemini"), **kw)
    return GeminiBackend(GEMINI, settings, SecretStr(key) if key else None, http)


def call(model: str = NB21, **kw: Any) -> Call:
    return Call(model=GEMINI.models[model], provider=GEMINI, prompt="a lighthouse", n=1, **kw)


async def run(b: GeminiBackend, c: Call) -> tuple[list[Delivered], CallResult]:
    got: list[Delivered] = []

    async def deliver(image: Delivered) -> None:
        got.append(image)

    result = await b.generate(c, deliver, lambda event: None)
    return got, result


def reference(tmp_path: Path, colour: tuple[int, int, int], index: int = 0) -> PreparedImage:
    ref = load_reference(write(tmp_path, f"ref-{index}.jpg", jpeg_bytes((96, 64), colour)))
    lim = GEMINI.reference_limits
    return prepare(ref, ImageLimits(accept=frozenset(lim.accept), max_bytes=lim.max_bytes), label=f"r{index}")


def body(emulator: Emulator, index: int = -1) -> dict[str, Any]:
    """The JSON body of a generateContent request, as the emulator received it."""
    sent: dict[str, Any] = emulator.requests_for(ROUTE)[index].json
    return sent


def image_reply(*parts: dict[str, Any], candidates: int = 1) -> dict[str, Any]:
    """A 200 body with `parts` in each of `candidates` candidates."""
    return {
        "candidates": [
            {"content": {"role": "model", "parts": list(parts)}, "finishReason": "STOP", "index": i}
            for i in range(candidates)
        ]
    }


def inline(data: bytes, mime: str) -> dict[str, Any]:
    return {"inlineData": {"mimeType": mime, "data": base64.b64encode(data).decode()}}


# -- the request on the wire ----------------------------------------------------------------------


async def test_text_call_posts_one_text_part_and_image_config(
    backend: GeminiBackend, emulator: Emulator
) -> None:
    """Text-to-image: one user text part, responseModalities IMAGE, the key in x-goog-api-key, v1beta."""
    images, result = await run(backend, call(params={"aspect_ratio": "16:9", "resolution": "2k"}))
    [request] = emulator.requests_for(ROUTE)
    assert request.path == f"/gemini/v1beta/models/{NB21}:generateContent"
    assert request.key_ok
    assert request.headers["x-goog-api-key"] == "<redacted>"
    assert request.json == {
        "contents": [{"parts": [{"text": "a lighthouse"}], "role": "user"}],
        "generationConfig": {
            "responseModalities": ["IMAGE"],
            "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"},
        },
    }
    [image] = images
    assert image.info is not None
    assert (image.info.width, image.info.height) == (2752, 1536)
    assert result.sent["generationConfig"]["imageConfig"] == {"aspectRatio": "16:9", "imageSize": "2K"}
    assert result.request_id  # the answer's responseId


async def test_the_final_image_is_delivered_not_the_thought(
    backend: GeminiBackend, emulator: Emulator
) -> None:
    """A Gemini 3 answer holds a small interim thought image before the final one: only the final
    (full-size) one is delivered; the usage metadata comes with it."""
    images, result = await run(backend, call())
    assert len(images) == 1
    assert images[0].info is not None
    assert (images[0].info.width, images[0].info.height) == (1024, 1024)
    assert images[0].mime == "image/png"
    assert result.usage["candidatesTokenCount"] == 1120
    assert result.usage["thoughtsTokenCount"] == 200
    assert result.usage["totalTokenCount"] == result.usage["promptTokenCount"] + 1120 + 200


async def test_v1_base_url_is_served_too(
    emulator: Emulator, http: httpx.AsyncClient, test_keys: dict[str, str]
) -> None:
    """A base_url ending in /v1 (the SDK's own default version) posts to /v1/models/…."""
    b = make_backend(emulator, http, test_keys["gemini"], base_url=emulator.url + "/gemini/v1")
    try:
        images, _ = await run(b, call(LITE))
    finally:
        await b.aclose()
    assert emulator.requests_for(ROUTE)[0].path == f"/gemini/v1/models/{LITE}:generateContent"
    assert len(images) == 1


@pytest.mark.parametrize("count", [1, 4, 14])
async def test_references_go_first_in_order(
    backend: GeminiBackend, emulator: Emulator, tmp_path: Path, count: int
) -> None:
    """1, 4 or 14 references go up as inlineData parts, in the order given, before the text part."""
    colours = [RED, GREEN, BLUE]
    refs = tuple(reference(tmp_path, colours[i % 3], i) for i in range(count))
    images, result = await run(backend, call(PRO, references=refs))
    parts = body(emulator)["contents"][0]["parts"]
    assert len(parts) == count + 1
    assert parts[-1] == {"text": "a lighthouse"}
    for ref, part in zip(refs, parts, strict=False):
        blob = part["inlineData"]
        assert blob["mime_type"] == ref.mime == "image/jpeg"  # the SDK's snake_case key
        assert base64.urlsafe_b64decode(blob["data"]) == ref.data  # and URL-safe base64
    assert result.sent["inlineData"].startswith(f"<{count} image{'s' if count > 1 else ''}, ")
    assert len(images) == 1
    if count == 1:
        assert is_reddish(mean_rgb(images[0].data))  # the answer is drawn from the reference


async def test_each_reference_arrives_where_it_was_put(
    backend: GeminiBackend, emulator: Emulator, tmp_path: Path
) -> None:
    """Two references (red, then blue) come back tiled left to right: both arrived, in order."""
    refs = (reference(tmp_path, RED, 0), reference(tmp_path, BLUE, 1))
    images, _ = await run(backend, call(PRO, references=refs, params={"aspect_ratio": "16:9"}))
    im = decode(images[0].data).convert("RGB")
    w, h = im.size
    left = im.crop((0, 0, w // 4, h // 2)).resize((1, 1)).getpixel((0, 0))
    right = im.crop((3 * w // 4, 0, w, h // 2)).resize((1, 1)).getpixel((0, 0))
    assert isinstance(left, tuple)
    assert isinstance(right, tuple)
    assert left[0] > left[2] + 60  # red
    assert right[2] > right[0] + 60  # blue


@pytest.mark.parametrize(
    ("size", "pixels", "fmt"),
    [("1k", (1024, 1024), "png"), ("2k", (2048, 2048), "jpeg"), ("4k", (4096, 4096), "jpeg")],
)
async def test_every_size_is_sent_with_a_capital_k(
    backend: GeminiBackend, emulator: Emulator, size: str, pixels: tuple[int, int], fmt: str
) -> None:
    """1k/2k/4k go up as imageSize 1K/2K/4K; the image comes back at that size, its type sniffed."""
    images, _ = await run(backend, call(params={"resolution": size}))
    assert body(emulator)["generationConfig"]["imageConfig"] == {"imageSize": size.upper()}
    assert images[0].info is not None
    assert (images[0].info.width, images[0].info.height, images[0].info.format) == (*pixels, fmt)
    assert images[0].mime == f"image/{fmt}"


@pytest.mark.parametrize(
    ("ratio", "pixels"),
    [("9:16", (768, 1376)), ("21:9", (1584, 672)), ("4:5", (928, 1152)), ("4:1", (2048, 512))],
)
async def test_aspect_ratios_shape_the_image(
    backend: GeminiBackend, emulator: Emulator, ratio: str, pixels: tuple[int, int]
) -> None:
    """aspectRatio goes up as given and the image comes back in that shape."""
    images, _ = await run(backend, call(params={"aspect_ratio": ratio}))
    assert body(emulator)["generationConfig"]["imageConfig"] == {"aspectRatio": ratio}
    assert images[0].info is not None
    assert (images[0].info.width, images[0].info.height) == pixels


async def test_a_one_size_model_never_gets_image_size(backend: GeminiBackend, emulator: Emulator) -> None:
    """Lite takes 1K only: a resolution the planner let through is not sent as imageSize."""
    await run(backend, call(LITE, params={"aspect_ratio": "3:2", "resolution": "2k"}))
    assert body(emulator)["generationConfig"]["imageConfig"] == {"aspectRatio": "3:2"}


async def test_thinking_level_goes_into_the_thinking_config(
    backend: GeminiBackend, emulator: Emulator
) -> None:
    """The thinking_level extra is sent as generationConfig.thinkingConfig and recorded as sent."""
    _, result = await run(backend, call(extras={"thinking_level": "high"}))
    thinking = body(emulator)["generationConfig"]["thinkingConfig"]
    assert thinking == {"thinking_level": "HIGH"}  # the SDK's own spelling
    assert result.sent["generationConfig"]["thinkingConfig"] == {"thinkingLevel": "high"}


@pytest.mark.filterwarnings("error::UserWarning")
async def test_an_unknown_thinking_level_is_refused_by_the_api(
    backend: GeminiBackend, emulator: Emulator
) -> None:
    """thinking_level=furious goes up (the SDK lets unknown words through) and its 400 is an
    ArgumentRejected quoting the API, from one request, without the SDK's own UserWarning."""
    with pytest.raises(ArgumentRejected, match="Unsupported thinking level FURIOUS"):
        await run(backend, call(extras={"thinking_level": "furious"}))
    assert len(emulator.requests_for(ROUTE)) == 1


async def test_a_thinking_level_that_is_not_a_word_is_refused_before_sending(
    backend: GeminiBackend, emulator: Emulator
) -> None:
    """thinking_level=5 (a number from a CSV column) is refused by name; nothing is sent."""
    with pytest.raises(ArgumentRejected, match="thinking_level as a word"):
        await run(backend, call(extras={"thinking_level": 5}))
    assert emulator.requests_for(ROUTE) == []


async def test_vertex_mode_in_the_environment_changes_nothing(
    backend: GeminiBackend, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GOOGLE_GENAI_USE_VERTEXAI, a replay mode or GOOGLE_GEMINI_BASE_URL in the environment does not
    send the call anywhere but the configured API root."""
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    monkeypatch.setenv("GOOGLE_GENAI_CLIENT_MODE", "replay")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:9/elsewhere")
    monkeypatch.setenv("GOOGLE_GENAI_API_VERSION", "v1alpha")
    images, _ = await run(backend, call())
    assert emulator.requests_for(ROUTE)[0].path == f"/gemini/v1beta/models/{NB21}:generateContent"
    assert len(images) == 1


async def test_the_key_handed_over_is_used_and_the_sdk_does_not_say_otherwise(
    emulator: Emulator,
    http: httpx.AsyncClient,
    test_keys: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With GOOGLE_API_KEY and GEMINI_API_KEY both in the environment, the key given to the backend is
    the one sent, and the SDK's warning that it would use GOOGLE_API_KEY is not passed on."""
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza" + "-some-other-google-key")
    monkeypatch.setenv("GEMINI_API_KEY", test_keys["gemini"])
    caplog.set_level(logging.DEBUG)
    b = make_backend(emulator, http, test_keys["gemini"])
    try:
        await run(b, call())
    finally:
        await b.aclose()
    assert emulator.requests_for(ROUTE)[0].key_ok
    assert not [r for r in caplog.records if "GOOGLE_API_KEY" in r.getMessage()]


# -- what comes back ------------------------------------------------------------------------------


async def test_an_only_image_flagged_as_thought_is_still_delivered(
    backend: GeminiBackend, emulator: Emulator
) -> None:
    """Some answers flag their only image as a thought: it is delivered rather than lost."""
    data = png_bytes((64, 48), GREEN)
    emulator.script(ROUTE, Fault(body=image_reply({**inline(data, "image/png"), "thought": True})))
    images, _ = await run(backend, call())
    assert [i.data for i in images] == [data]


async def test_a_mislabelled_image_is_saved_as_what_it_is(backend: GeminiBackend, emulator: Emulator) -> None:
    """JPEG bytes declared as image/png are delivered as image/jpeg: the bytes decide, not the label."""
    data = jpeg_bytes((64, 48), BLUE)
    emulator.script(ROUTE, Fault(body=image_reply(inline(data, "image/png"))))
    images, _ = await run(backend, call())
    assert images[0].mime == "image/jpeg"
    assert images[0].data == data


async def test_every_image_in_the_answer_is_delivered(backend: GeminiBackend, emulator: Emulator) -> None:
    """Two candidates with an image each (both paid for) → two images delivered, in order."""
    red, blue = png_bytes((32, 32), RED), png_bytes((32, 32), BLUE)
    reply = image_reply(inline(red, "image/png"), candidates=2)
    reply["candidates"][1]["content"]["parts"] = [inline(blue, "image/png")]
    emulator.script(ROUTE, Fault(body=reply))
    images, result = await run(backend, call())
    assert [i.data for i in images] == [red, blue]
    assert result.images == 2


async def test_a_broken_second_image_keeps_the_first(backend: GeminiBackend, emulator: Emulator) -> None:
    """The first image is delivered before a corrupt second one fails the call (as possibly billed)."""
    good = png_bytes((32, 32), RED)
    reply = image_reply(inline(good, "image/png"), inline(b"\x89PNG\r\n\x1a\nbroken", "image/png"))
    emulator.script(ROUTE, Fault(body=reply))
    got: list[Delivered] = []

    async def deliver(image: Delivered) -> None:
        got.append(image)

    with pytest.raises(MalformedResponse) as info:
        await backend.generate(call(), deliver, lambda event: None)
    assert [g.data for g in got] == [good]
    assert info.value.maybe_billed


# -- every outcome, at the one seam -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        pytest.param(Fault(status=403), AuthenticationFailed, id="403-permission"),
        pytest.param(Fault(status=401), AuthenticationFailed, id="401"),
        pytest.param(Fault(status=404), ModelUnavailable, id="404"),
        pytest.param(Fault(status=400), ArgumentRejected, id="400-invalid-argument"),
        pytest.param(Fault(status=429), RateLimited, id="429"),
        pytest.param(Fault(status=500), ServerError, id="500-internal"),
        pytest.param(Fault(status=502), ServerError, id="502-html"),
        pytest.param(Fault(status=503), ServerError, id="503-unavailable"),
        pytest.param(Fault(status=504), ServerError, id="504-deadline"),
        pytest.param(
            Fault(status=400, body={"error": {"code": 400, "message": "x", "status": "FAILED_PRECONDITION"}}),
            QuotaExhausted,
            id="400-failed-precondition",
        ),
        pytest.param(
            Fault(status=404, body='[{"error": {"code": 404, "message": "gone", "status": "NOT_FOUND"}}]'),
            ModelUnavailable,
            id="404-as-a-list",
        ),
        pytest.param(Fault(status=201, body=image_reply()), MalformedResponse, id="201-not-200"),
        pytest.param(Fault(drop=True), ConnectionFailed, id="dropped"),
        pytest.param(Fault(drop=True, truncate=True), ConnectionFailed, id="dropped-mid-body"),
        pytest.param(Fault(malformed=True), MalformedResponse, id="200-not-json"),
        pytest.param(Fault(body={"candidates": 5}), MalformedResponse, id="200-candidates-not-a-list"),
        pytest.param(
            Fault(body=image_reply({"inlineData": {"mimeType": "image/png", "data": "!!"}})),
            MalformedResponse,
            id="200-image-not-base64",
        ),
        pytest.param(Fault(truncate=True), MalformedResponse, id="truncated-image"),
        pytest.param(Fault(blocked=True), ContentBlocked, id="prompt-blocked"),
        pytest.param(Fault(blocked=True, error="SAFETY"), ContentBlocked, id="prompt-blocked-safety"),
        pytest.param(Fault(finish="IMAGE_SAFETY"), ContentBlocked, id="finish-image-safety"),
        pytest.param(Fault(finish="PROHIBITED_CONTENT"), ContentBlocked, id="finish-prohibited"),
        pytest.param(Fault(finish="IMAGE_PROHIBITED_CONTENT"), ContentBlocked, id="finish-image-prohibited"),
        pytest.param(Fault(finish="NO_IMAGE"), EmptyResult, id="finish-no-image"),
        pytest.param(Fault(finish="SOME_NEW_REASON"), EmptyResult, id="finish-unknown"),
        pytest.param(Fault(empty=True), EmptyResult, id="text-only"),
        pytest.param(Fault(body={}), EmptyResult, id="no-candidate"),
        pytest.param(Fault(body=image_reply()), EmptyResult, id="candidate-without-parts"),
    ],
)
@pytest.mark.filterwarnings("ignore:SOME_NEW_REASON is not a valid")
async def test_fault_maps_to_typed_outcome(
    backend: GeminiBackend, emulator: Emulator, fault: Fault, expected: type[ProviderError]
) -> None:
    """Each answer ends as its typed outcome, from one request (the SDK never retries), cause chained."""
    emulator.script(ROUTE, fault)
    with pytest.raises(expected) as info:
        await run(backend, call())
    exc = info.value
    assert type(exc) is expected
    assert (exc.provider, exc.model) == ("gemini", NB21)
    assert len(emulator.requests_for(ROUTE)) == 1
    if fault.status is not None:
        assert exc.status == fault.status
        assert isinstance(exc.__cause__, genai_errors.APIError)
    if (
        isinstance(exc, ContentBlocked | EmptyResult)
        or fault.malformed
        or (fault.truncate and not fault.drop)
    ):
        assert exc.status == 200
    if isinstance(exc, MalformedResponse | ConnectionFailed) and fault.status is None:
        assert exc.maybe_billed  # the generation was accepted: never re-sent to this model


async def test_a_text_only_answer_says_what_the_model_said(
    backend: GeminiBackend, emulator: Emulator
) -> None:
    """An EmptyResult from text alone quotes the model's words and its finishReason."""
    emulator.script(ROUTE, Fault(empty=True))
    with pytest.raises(EmptyResult, match=r"finishReason STOP.*I can't create that image"):
        await run(backend, call())


async def test_block_reason_is_named(backend: GeminiBackend, emulator: Emulator) -> None:
    """A blocked prompt names its blockReason; a withheld image names its finishReason."""
    emulator.script(ROUTE, Fault(blocked=True, error="BLOCKLIST"), Fault(finish="IMAGE_SAFETY"))
    with pytest.raises(ContentBlocked, match="blockReason BLOCKLIST"):
        await run(backend, call())
    with pytest.raises(ContentBlocked, match="finishReason IMAGE_SAFETY"):
        await run(backend, call())


@pytest.mark.parametrize(("seconds", "wait"), [(7.5, 7.5), (53, 53.0), (0.25, 0.25)])
async def test_rate_limit_honours_retry_info(
    backend: GeminiBackend, emulator: Emulator, seconds: float, wait: float
) -> None:
    """429 RESOURCE_EXHAUSTED → RateLimited with retry_after from the RetryInfo retryDelay in details."""
    emulator.script(ROUTE, Fault(status=429, seconds=seconds))
    with pytest.raises(RateLimited) as info:
        await run(backend, call())
    assert info.value.retry_after == wait
    assert isinstance(info.value.__cause__, genai_errors.ClientError)


async def test_rate_limit_without_retry_info_falls_back_to_the_header(
    backend: GeminiBackend, emulator: Emulator
) -> None:
    """A 429 with no RetryInfo (a proxy's) honours a Retry-After header; with neither, no wait is set."""
    plain = {"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}}
    emulator.script(
        ROUTE, Fault(status=429, body=plain, headers={"retry-after": "4"}), Fault(status=429, body=plain)
    )
    with pytest.raises(RateLimited) as first:
        await run(backend, call())
    with pytest.raises(RateLimited) as second:
        await run(backend, call())
    assert (first.value.retry_after, second.value.retry_after) == (4.0, None)


async def test_bad_key_names_the_variables_never_the_key(emulator: Emulator, http: httpx.AsyncClient) -> None:
    """400 INVALID_ARGUMENT with reason API_KEY_INVALID → AuthenticationFailed naming the variables."""
    key = "AIza" + "WrongWrongWrong" * 2  # fake, built so secret scanners do not flag it
    b = make_backend(emulator, http, key)
    try:
        with pytest.raises(AuthenticationFailed) as info:
            await run(b, call())
    finally:
        await b.aclose()
    assert info.value.status == 400
    assert "GEMINI_API_KEY or GOOGLE_API_KEY" in str(info.value)
    for shown in (str(info.value), repr(info.value), repr(b), str(info.value.__cause__)):
        assert key not in shown
        assert key[-10:] not in shown


async def test_an_argument_400_is_not_a_bad_key(backend: GeminiBackend, emulator: Emulator) -> None:
    """A 400 the emulator raises for a ratio the model lacks is ArgumentRejected, quoting Google's message."""
    with pytest.raises(ArgumentRejected, match="Unsupported aspect ratio: 4:1") as info:
        await run(backend, call(PRO, params={"aspect_ratio": "4:1"}))
    assert info.value.status == 400


async def test_missing_key_fails_before_sending(emulator: Emulator, http: httpx.AsyncClient) -> None:
    """No key at all → AuthenticationFailed naming GEMINI_API_KEY, and nothing is sent."""
    b = make_backend(emulator, http, None)
    with pytest.raises(AuthenticationFailed, match="GEMINI_API_KEY"):
        await run(b, call())
    assert emulator.requests == []


@pytest.mark.parametrize("model", ["gemini-3.1-flash-image", "imagen-4.0-generate-001"])
async def test_retired_model_is_unavailable(backend: GeminiBackend, emulator: Emulator, model: str) -> None:
    """A shut-down model (Gemini or Imagen) → 404 "no longer available" → ModelUnavailable."""
    c = Call(model=GEMINI.models[NB21].model_copy(update={"id": model}), provider=GEMINI, prompt="x", n=1)
    with pytest.raises(ModelUnavailable, match="no longer available") as info:
        await run(backend, c)
    assert info.value.status == 404


async def test_read_timeout_may_be_billed_and_is_sent_once(
    emulator: Emulator, http: httpx.AsyncClient
) -> None:
    """No answer within the timeout → ReadTimedOut(maybe_billed=True) after one request; the SDK
    announced its deadline in X-Server-Timeout."""
    b = make_backend(emulator, http, "AIza" + "-test-0000", timeout=0.3)
    emulator.script(ROUTE, Fault(latency=1.0))
    try:
        with pytest.raises(ReadTimedOut) as info:
            await run(b, call())
    finally:
        await b.aclose()
    assert info.value.maybe_billed is True
    [request] = emulator.requests_for(ROUTE)
    assert request.headers["x-server-timeout"] == "1"


async def test_connection_refused_is_not_billed(http: httpx.AsyncClient) -> None:
    """Nothing listening → ConnectionFailed that was never sent, so it may be retried."""
    settings = ProviderSettings(base_url="http://127.0.0.1:9/gemini/v1beta", timeout=2)
    b = GeminiBackend(GEMINI, settings, SecretStr("AIza" + "-test-0000"), http)
    try:
        with pytest.raises(ConnectionFailed) as info:
            await run(b, call())
    finally:
        await b.aclose()
    assert not info.value.maybe_billed


async def test_a_continuation_is_never_fetched_by_the_sdk(backend: GeminiBackend, emulator: Emulator) -> None:
    """finishReason CONTINUATION with a token → one request only (a second would be billed): empty."""
    reply = {"candidates": [{"finishReason": "CONTINUATION", "index": 0}], "continuationToken": "dG9r"}
    emulator.script(ROUTE, Fault(body=reply))
    with pytest.raises(EmptyResult, match="CONTINUATION"):
        await run(backend, call())
    assert len(emulator.requests_for(ROUTE)) == 1


async def test_backend_repr_never_shows_the_key(http: httpx.AsyncClient) -> None:
    """repr of the backend names provider and base URL only, before and after its SDK client exists."""
    key = "AIza" + "SecretSecret" * 3
    b = GeminiBackend(GEMINI, ProviderSettings(), SecretStr(key), http)
    expected = "GeminiBackend(provider='gemini', base_url='https://generativelanguage.googleapis.com/v1beta')"
    assert repr(b) == expected
    b._sdk()
    try:
        assert repr(b) == expected
        assert key not in repr(vars(b))
    finally:
        await b.aclose()
