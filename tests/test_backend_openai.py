"""The OpenAI backend with the real `openai` SDK over real HTTP against the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from pydantic import SecretStr

from imagerelay.backends.base import Call, CallResult, Delivered
from imagerelay.backends.openai import OpenAIBackend
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
from imagerelay.imaging import probe
from imagerelay.references import ImageLimits, PreparedImage, as_mask, load_reference, prepare
from imagerelay.settings import ProviderSettings
from tests.clikit import sandbox_generate
from tests.images import BLUE, GREEN, RED, jpeg_bytes, rgba_png_bytes, write

CATALOG = load_catalog()
OPENAI = CATALOG.provider("openai")
ROUTE = "openai.generations"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
async def backend(
    emulator: Emulator, http: httpx.AsyncClient, test_keys: dict[str, str]
) -> AsyncIterator[OpenAIBackend]:
    b = make_backend(emulator, http, test_keys["openai"])
    yield b
    await b.aclose()


def make_backend(emulator: Emulator, http: httpx.AsyncClient, key: str | None, **kw: Any) -> OpenAIBackend:
    settings = ProviderSettings(base_url=emulator.base_url("openai"), **kw)
    return OpenAIBackend(OPENAI, settings, SecretStr(key) if key else None, http)


def call(model: str = "gpt-image-2", n: int = 1, **kw: Any) -> Call:
    return Call(model=OPENAI.models[model], provider=OPENAI, prompt="a lighthouse", n=n, **kw)


async def run(b: OpenAIBackend, c: Call) -> tuple[list[Delivered], CallResult]:
    got: list[Delivered] = []

    async def deliver(image: Delivered) -> None:
        got.append(image)

    result = await b.generate(c, deliver, lambda event: None)
    return got, result


def image(tmp_path: Path, name: str, data: bytes, label: str) -> PreparedImage:
    ref = load_reference(write(tmp_path, name, data))
    return prepare(ref, ImageLimits(accept=frozenset({"image/jpeg", "image/png", "image/webp"})), label=label)


def mask(tmp_path: Path, size: tuple[int, int]) -> PreparedImage:
    ref = as_mask(load_reference(write(tmp_path, "mask.png", rgba_png_bytes(size, (0, 0, 0, 0)))))
    return prepare(ref, ImageLimits(accept=frozenset({"image/png"})), label="mask")


# -- success -----------------------------------------------------------------------------------


async def test_text_call_delivers_decodable_images_with_cost(
    backend: OpenAIBackend, emulator: Emulator
) -> None:
    """A text call → n PNGs of the asked size, cost from `usage` at catalog prices, x-request-id."""
    images, result = await run(backend, call(n=2, params={"size": "1536x1024", "quality": "low"}))
    assert len(images) == 2
    for img in images:
        info = probe(img.data)
        assert (info.format, info.width, info.height) == ("png", 1536, 1024)
        assert img.mime == "image/png"
    assert result.images == 2
    assert result.usage["output_tokens"] == 2 * 158  # low at 1536x1024: 16 * 11 * 3,572,864 / 4e6
    assert result.reported_cost_usd == OPENAI.models["gpt-image-2"].price.from_usage(result.usage)
    assert result.reported_cost_usd is not None
    assert result.reported_cost_usd > 0
    assert result.request_id is not None
    assert result.request_id.startswith("req_")


async def test_generation_body_has_only_declared_fields(backend: OpenAIBackend, emulator: Emulator) -> None:
    """The JSON body holds what the model declares; never response_format, seed, style or aspect_ratio."""
    c = call(
        params={
            "size": "1024x1024",
            "quality": "high",
            "output_format": "jpeg",
            "seed": 7,
            "aspect_ratio": "1:1",
        },
        extras={"background": "opaque", "moderation": "low"},
    )
    images, result = await run(backend, c)
    body = emulator.requests_for(ROUTE)[0].json
    assert body == {
        "model": "gpt-image-2",
        "prompt": "a lighthouse",
        "n": 1,
        "size": "1024x1024",
        "quality": "high",
        "output_format": "jpeg",
        "background": "opaque",
        "moderation": "low",
    }
    assert probe(images[0].data).format == "jpeg"
    assert images[0].mime == "image/jpeg"
    assert result.sent == body


async def test_response_format_is_never_sent(backend: OpenAIBackend, emulator: Emulator) -> None:
    """No request the backend makes carries response_format (GPT-image answers it with a 400)."""
    await run(backend, call())
    await run(backend, call(params={"output_format": "webp"}))
    bodies = [r.json for r in emulator.requests_for(ROUTE)]
    assert len(bodies) == 2
    assert all("response_format" not in b for b in bodies)


async def test_edit_only_extra_is_not_sent_to_generations(backend: OpenAIBackend, emulator: Emulator) -> None:
    """input_fidelity (edits only) is left out of a generation and listed under `not_sent`."""
    _, result = await run(backend, call(extras={"input_fidelity": "high", "user": "u-1"}))
    body = emulator.requests_for(ROUTE)[0].json
    assert "input_fidelity" not in body
    assert body["user"] == "u-1"
    assert set(result.sent["not_sent"]) == {"input_fidelity"}


async def test_references_and_mask_go_up_as_multipart(
    backend: OpenAIBackend, emulator: Emulator, tmp_path: Path
) -> None:
    """Two references + a mask → one multipart edit: `image[]` files, `mask` PNG, text fields."""
    refs = (
        image(tmp_path, "a.jpg", jpeg_bytes((64, 48), RED), "reference 1"),
        image(tmp_path, "b.jpg", jpeg_bytes((64, 48), BLUE), "reference 2"),
    )
    c = call(
        n=2,
        params={"size": "1024x1024", "quality": "low"},
        extras={"safety_identifier": "hashed-user"},
        references=refs,
        mask=mask(tmp_path, (64, 48)),
    )
    images, result = await run(backend, c)
    assert len(images) == 2
    assert all(probe(i.data).width == 1024 for i in images)
    [req] = emulator.requests_for("openai.edits")
    assert req.headers["content-type"].startswith("multipart/form-data")
    assert req.form == {
        "model": "gpt-image-2",
        "prompt": "a lighthouse",
        "n": "2",
        "size": "1024x1024",
        "quality": "low",
        "safety_identifier": "hashed-user",
    }
    assert [(name, filename, ctype) for name, filename, ctype, _ in req.files] == [
        ("image[]", "reference-1.jpg", "image/jpeg"),
        ("image[]", "reference-2.jpg", "image/jpeg"),
        ("mask", "mask.png", "image/png"),
    ]
    assert [size for *_, size in req.files[:2]] == [len(r.data) for r in refs]
    assert result.sent["image"].startswith("<2 images, ")
    assert result.sent["mask"].startswith("<1 mask, ")
    assert "response_format" not in req.form
    assert result.usage["input_tokens_details"]["image_tokens"] > 0


async def test_single_reference_is_sent_as_image(
    backend: OpenAIBackend, emulator: Emulator, tmp_path: Path
) -> None:
    """One reference goes up as the plain `image` field; moderation (generations only) is not sent."""
    ref = image(tmp_path, "g.jpg", jpeg_bytes((48, 64), GREEN), "reference 1")
    await run(backend, call(references=(ref,), extras={"moderation": "low"}))
    [req] = emulator.requests_for("openai.edits")
    assert [f[0] for f in req.files] == ["image"]
    assert "moderation" not in req.form


# -- the error seam ----------------------------------------------------------------------------

QUOTA = {
    "error": {
        "message": "You exceeded your current quota.",
        "type": "insufficient_quota",
        "param": None,
        "code": "insufficient_quota",
    }
}
BAD_ARG = {
    "error": {
        "message": "Invalid value: 'x'.",
        "type": "invalid_request_error",
        "param": "size",
        "code": "invalid_value",
    }
}


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        pytest.param(Fault(status=500), ServerError, id="500"),
        pytest.param(Fault(status=503), ServerError, id="503"),
        pytest.param(Fault(status=403), AuthenticationFailed, id="403"),
        pytest.param(Fault(status=404), ModelUnavailable, id="404"),
        pytest.param(Fault(status=429, body=QUOTA), QuotaExhausted, id="429-insufficient_quota"),
        pytest.param(Fault(status=400, body=QUOTA), QuotaExhausted, id="400-insufficient_quota"),
        pytest.param(Fault(status=400, body=BAD_ARG), ArgumentRejected, id="400-invalid_value"),
        pytest.param(Fault(status=422), ArgumentRejected, id="422"),
        pytest.param(Fault(drop=True), ConnectionFailed, id="dropped"),
        pytest.param(Fault(drop=True, truncate=True), ConnectionFailed, id="dropped-mid-body"),
        pytest.param(Fault(malformed=True), MalformedResponse, id="malformed-json"),
        pytest.param(Fault(body="<html>gateway</html>"), MalformedResponse, id="not-json"),
        pytest.param(Fault(blocked=True), ContentBlocked, id="moderation_blocked"),
        pytest.param(Fault(empty=True), EmptyResult, id="empty-200"),
        pytest.param(Fault(truncate=True), MalformedResponse, id="truncated-image"),
    ],
)
async def test_fault_maps_to_typed_outcome(
    backend: OpenAIBackend, emulator: Emulator, fault: Fault, expected: type[ProviderError]
) -> None:
    """Each scripted fault ends as its typed outcome, after exactly one request (the SDK never retries)."""
    emulator.script(ROUTE, fault)
    with pytest.raises(expected) as info:
        await run(backend, call())
    assert type(info.value) is expected
    assert (info.value.provider, info.value.model) == ("openai", "gpt-image-2")
    assert len(emulator.requests_for(ROUTE)) == 1
    if not isinstance(info.value, ConnectionFailed):
        assert info.value.request_id is not None  # every answer carries x-request-id


@pytest.mark.parametrize(
    ("headers", "wait"),
    [({"retry-after": "3"}, 3.0), ({"retry-after": "3", "retry-after-ms": "1500"}, 1.5)],
)
async def test_rate_limit_carries_retry_after(
    backend: OpenAIBackend, emulator: Emulator, headers: dict[str, str], wait: float
) -> None:
    """429 → RateLimited with retry_after from retry-after-ms when given, else retry-after."""
    emulator.script(ROUTE, Fault(status=429, headers=headers))
    with pytest.raises(RateLimited) as info:
        await run(backend, call())
    assert info.value.retry_after == wait
    assert info.value.status == 429
    assert isinstance(info.value.__cause__, openai.RateLimitError)  # raise … from the SDK's error


async def test_read_timeout_may_be_billed(emulator: Emulator, http: httpx.AsyncClient) -> None:
    """No answer within the timeout → ReadTimedOut(maybe_billed=True), one request, no SDK retry."""
    b = make_backend(emulator, http, "sk-test-0000", timeout=0.3)
    emulator.script(ROUTE, Fault(latency=1.0))
    try:
        with pytest.raises(ReadTimedOut) as info:
            await run(b, call())
    finally:
        await b.aclose()
    assert info.value.maybe_billed is True
    assert len(emulator.requests_for(ROUTE)) == 1


async def test_bad_key_names_the_variable_never_the_key(emulator: Emulator, http: httpx.AsyncClient) -> None:
    """A refused key → AuthenticationFailed naming OPENAI_API_KEY; the key shows nowhere."""
    key = "sk-" + "wrong-key-" * 2  # fake, built so secret scanners do not flag it
    b = make_backend(emulator, http, key)
    try:
        with pytest.raises(AuthenticationFailed) as info:
            await run(b, call())
    finally:
        await b.aclose()
    assert "OPENAI_API_KEY" in str(info.value)
    for shown in (str(info.value), repr(info.value), repr(b)):
        assert key not in shown
        assert key[-8:] not in shown
    assert info.value.status == 401


async def test_missing_key_fails_before_sending(emulator: Emulator, http: httpx.AsyncClient) -> None:
    """No key at all → AuthenticationFailed naming the variable, and nothing is sent."""
    b = make_backend(emulator, http, None)
    with pytest.raises(AuthenticationFailed, match="OPENAI_API_KEY"):
        await run(b, call())
    assert emulator.requests == []


async def test_retired_model_is_unavailable(backend: OpenAIBackend, emulator: Emulator) -> None:
    """dall-e-3 → 404 model_not_found → ModelUnavailable, treated as retired for this run."""
    with pytest.raises(ModelUnavailable, match="treated as retired") as info:
        await run(backend, call("dall-e-3"))
    assert info.value.status == 404
    assert emulator.requests_for(ROUTE)[0].json["model"] == "dall-e-3"


# -- through the CLI, in the sandbox -------------------------------------------------------------

ACTIVE = [m.id for m in OPENAI.models.values() if m.unavailable_reason(date.today()) is None]


def _cli(tmp_path: Path, *args: str) -> dict[str, Any]:
    receipt = sandbox_generate(tmp_path, "openai", *args)
    return receipt


@pytest.mark.parametrize("model", ACTIVE)
def test_cli_generates_with_each_model(tmp_path: Path, model: str) -> None:
    """`generate --provider openai:MODEL --env sandbox` saves an image and its receipt (exit 0),
    at $0 with the would-be cost (from the usage the emulator reports) beside it."""
    receipt = _cli(tmp_path, "--provider", f"openai:{model}")
    assert receipt["model"] == model
    assert receipt["cost_usd"] == 0
    assert receipt["would_cost_usd"] > 0


def test_cli_generates_with_the_provider_and_a_reference(tmp_path: Path) -> None:
    """`--provider openai` alone, then with `--reference a.jpg`, both save an image with a receipt."""
    _cli(tmp_path / "text", "--provider", "openai")
    ref = write(tmp_path, "ref.jpg", jpeg_bytes((96, 64), RED))
    receipt = _cli(tmp_path / "ref", "--provider", "openai", "--reference", str(ref))
    assert receipt["attempts"][-1]["sent"]["image"].startswith("<1 image, ")
    assert len(receipt["references"]) == 1
