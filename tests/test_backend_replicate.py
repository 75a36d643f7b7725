"""The Replicate backend with the real `replicate` SDK over real HTTP against the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from imagerelay.backends.base import Call, CallResult, Delivered
from imagerelay.backends.replicate import ReplicateBackend
from imagerelay.catalog import ModelSpec, ProviderSpec, ReferenceLimits, load_catalog
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
    ProviderError,
    QuotaExhausted,
    RateLimited,
    ReadTimedOut,
    ServerError,
)
from imagerelay.hooks import CallEvent, Noted, PredictionCreated, Sent
from imagerelay.imaging import probe
from imagerelay.references import ImageLimits, PreparedImage, load_reference, prepare
from imagerelay.settings import ProviderSettings
from tests.clikit import sandbox_generate
from tests.images import BLUE, RED, jpeg_bytes, write

CATALOG = load_catalog()
REPLICATE = CATALOG.provider("replicate")
SCHNELL = "black-forest-labs/flux-schnell"
PRO = "black-forest-labs/flux-1.1-pro"
KONTEXT = "black-forest-labs/flux-kontext-pro"
CREATE = "replicate.create"
#: Quick polls and a short deadline.
FAST = {"timeout": 1.0, "poll_interval": 0.05, "prediction_deadline": 2.0}


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
async def backend(
    emulator: Emulator, http: httpx.AsyncClient, test_keys: dict[str, str]
) -> AsyncIterator[ReplicateBackend]:
    b = make_backend(emulator, http, test_keys["replicate"])
    yield b
    await b.aclose()


def make_backend(
    emulator: Emulator,
    http: httpx.AsyncClient,
    key: str | None,
    provider: ProviderSpec = REPLICATE,
    **kw: Any,
) -> ReplicateBackend:
    settings = ProviderSettings(base_url=emulator.base_url("replicate"), **{**FAST, **kw})
    return ReplicateBackend(provider, settings, SecretStr(key) if key else None, http)


def call(model: str | ModelSpec = SCHNELL, n: int = 1, provider: ProviderSpec = REPLICATE, **kw: Any) -> Call:
    spec = model if isinstance(model, ModelSpec) else provider.models[model]
    return Call(model=spec, provider=provider, prompt="a lighthouse", n=n, **kw)


async def run(
    b: ReplicateBackend, c: Call, log: list[Any] | None = None
) -> tuple[list[Delivered], CallResult]:
    """Make `c`; `log` (if given) records events and deliveries in the order they happened."""
    got: list[Delivered] = []
    log = [] if log is None else log

    async def deliver(image: Delivered) -> None:
        got.append(image)
        log.append(("image", len(image.data)))

    result = await b.generate(c, deliver, lambda event: log.append(_logged(event)))
    return got, result


def _logged(event: CallEvent) -> tuple[str, Any]:
    """An event as the log records it: ("sent", params), ("note", text), ("prediction", id) or
    ("cancelled", id)."""
    if isinstance(event, Sent):
        return ("sent", event.params)
    if isinstance(event, Noted):
        return ("note", event.text)
    return ("prediction" if isinstance(event, PredictionCreated) else "cancelled", event.id)


def reference(tmp_path: Path, size: tuple[int, int] = (96, 64)) -> PreparedImage:
    ref = load_reference(write(tmp_path, "ref.jpg", jpeg_bytes(size, BLUE)))
    return prepare(ref, ImageLimits(accept=frozenset({"image/jpeg", "image/png"})), label="reference 1")


# -- success -----------------------------------------------------------------------------------


async def test_text_call_maps_inputs_and_delivers_each_output(
    backend: ReplicateBackend, emulator: Emulator
) -> None:
    """A list-output model: canonical params under the model's names, n → num_outputs; the create is
    never held open (no `Prefer: wait`), so its id is known within one round trip."""
    events: list[Any] = []
    c = call(
        n=2, params={"aspect_ratio": "16:9", "seed": 42, "output_format": "jpg"}, extras={"go_fast": True}
    )
    images, result = await run(backend, c, events)
    [req] = emulator.requests_for(CREATE)
    assert req.path == "/replicate/v1/models/black-forest-labs/flux-schnell/predictions"
    assert req.json == {
        "input": {
            "prompt": "a lighthouse",
            "num_outputs": 2,
            "aspect_ratio": "16:9",
            "seed": 42,
            "output_format": "jpg",
            "go_fast": True,
        }
    }
    assert "prefer" not in req.headers
    assert len(images) == 2
    for img in images:
        info = probe(img.data)
        assert (info.format, info.width, info.height) == ("jpeg", 1344, 768)
    assert result.prediction_id is not None
    assert events[0] == ("sent", result.sent)  # what is sent is known before it is sent
    assert events[1] == ("prediction", result.prediction_id)  # recorded before any image
    assert [e[0] for e in events[2:]] == ["image", "image"]
    assert result.reported_cost_usd is None  # Replicate reports no cost: the relay uses its estimate
    assert result.sent == req.json["input"]


async def test_single_url_model_sends_no_num_outputs(backend: ReplicateBackend, emulator: Emulator) -> None:
    """flux-1.1-pro takes no `n` and returns one URL string: one image is delivered."""
    images, result = await run(backend, call(PRO, params={"aspect_ratio": "1:1"}))
    assert emulator.requests_for(CREATE)[0].json == {
        "input": {"prompt": "a lighthouse", "aspect_ratio": "1:1"}
    }
    assert len(images) == 1
    assert result.images == 1
    assert probe(images[0].data).format == "webp"


async def test_small_reference_goes_inline_as_data_uri(
    backend: ReplicateBackend, emulator: Emulator, tmp_path: Path
) -> None:
    """A reference under inline_max_bytes goes in the model's reference field as a data URI."""
    ref = reference(tmp_path)
    images, result = await run(backend, call(KONTEXT, references=(ref,)))
    sent = emulator.requests_for(CREATE)[0].json["input"]
    assert sent["input_image"] == ref.data_uri()
    assert emulator.requests_for("replicate.files") == []
    assert result.sent["input_image"].startswith("<data URI, ")
    info = probe(images[0].data)
    assert info.width > info.height  # kontext follows the landscape reference: it arrived


async def test_flux_2_takes_several_references_as_one_list(
    backend: ReplicateBackend, emulator: Emulator, tmp_path: Path
) -> None:
    """FLUX.2 gets every reference in `input_images` (a list of data URIs), the megapixel tier as
    `resolution`, and answers one URL: one image of that tier is delivered."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    refs = (reference(tmp_path / "a", (96, 64)), reference(tmp_path / "b", (64, 96)))
    c = call(
        "black-forest-labs/flux-2-pro", references=refs, params={"aspect_ratio": "16:9", "resolution": "2 MP"}
    )
    images, result = await run(backend, c)
    sent = emulator.requests_for(CREATE)[0].json["input"]
    assert sent["input_images"] == [r.data_uri() for r in refs]
    assert (sent["aspect_ratio"], sent["resolution"]) == ("16:9", "2 MP")
    assert [s.startswith("<data URI, ") for s in result.sent["input_images"]] == [True, True]
    [image] = images
    info = probe(image.data)
    assert (info.width, info.height) == (1920, 1072)  # 2 MP at 16:9, sides rounded down to 16
    assert info.width * info.height <= 2 * 1024 * 1024


async def test_large_reference_is_uploaded_first(
    emulator: Emulator, http: httpx.AsyncClient, test_keys: dict[str, str], tmp_path: Path
) -> None:
    """A reference at or over inline_max_bytes goes up through /v1/files; its urls.get is sent."""
    ref = reference(tmp_path)
    small_limit = REPLICATE.model_copy(
        update={"reference_limits": ReferenceLimits(inline_max_bytes=len(ref.data))}
    )
    b = make_backend(emulator, http, test_keys["replicate"], provider=small_limit)
    try:
        images, result = await run(b, call(KONTEXT, provider=small_limit, references=(ref,)))
    finally:
        await b.aclose()
    [upload] = emulator.requests_for("replicate.files")
    assert upload.files == [("content", "reference-1.jpg", "image/jpeg", len(ref.data))]
    url = emulator.requests_for(CREATE)[0].json["input"]["input_image"]
    assert url.startswith(emulator.base_url("replicate") + "/files/")
    assert emulator.fetch_local(url) == ref.data
    assert len(images) == 1
    assert url in result.sent["input_image"]


async def test_slow_prediction_is_polled_to_success(backend: ReplicateBackend, emulator: Emulator) -> None:
    """Unfinished after Prefer: wait → polled by id until it succeeds; exactly one create."""
    emulator.script(CREATE, Fault(prediction="slow", seconds=1.3))
    images, result = await run(backend, call(n=2))
    routes = [r.route for r in emulator.requests if r.route != "files"]
    assert routes[0] == CREATE
    assert routes.count(CREATE) == 1
    assert routes.count("replicate.get") >= 2
    assert len(images) == 2
    assert result.prediction_id == emulator.requests_for("replicate.get")[0].path.rsplit("/", 1)[1]


async def test_failed_polls_just_poll_again(backend: ReplicateBackend, emulator: Emulator) -> None:
    """A poll that is dropped, 503s or is throttled is followed by another poll, never a second create."""
    emulator.script(CREATE, Fault(prediction="slow", seconds=1.3))
    emulator.script(
        "replicate.get", Fault(drop=True), Fault(status=503), Fault(status=429, headers={"retry-after": "0"})
    )
    images, _ = await run(backend, call())
    assert len(emulator.requests_for(CREATE)) == 1
    assert len(emulator.requests_for("replicate.get")) >= 4
    assert len(images) == 1


async def test_resume_polls_the_id_without_creating(
    backend: ReplicateBackend, emulator: Emulator, test_keys: dict[str, str]
) -> None:
    """A call with resume_id re-attaches to that prediction: no create, its output delivered."""
    async with httpx.AsyncClient() as raw:
        made = await raw.post(
            emulator.base_url("replicate") + f"/models/{SCHNELL}/predictions",
            json={"input": {"prompt": "a lighthouse", "num_outputs": 2}},
            headers={"authorization": f"Bearer {test_keys['replicate']}"},
        )
    pid = made.json()["id"]
    events: list[Any] = []
    images, result = await run(backend, call(n=2, resume_id=pid), events)
    assert len(emulator.requests_for(CREATE)) == 1  # only the one made above
    assert emulator.requests_for("replicate.get")[0].path.endswith(f"/predictions/{pid}")
    assert len(images) == 2
    assert result.prediction_id == pid
    assert [e for e in events if e[0] != "note"][:2] == [
        ("sent", {"resumed_prediction": pid}),
        ("prediction", pid),
    ]


# -- the end of a prediction ---------------------------------------------------------------------


async def test_stuck_prediction_is_cancelled_at_the_deadline(
    emulator: Emulator, http: httpx.AsyncClient, test_keys: dict[str, str]
) -> None:
    """Still running at prediction_deadline → cancelled, ModelUnavailable carrying the prediction id."""
    b = make_backend(emulator, http, test_keys["replicate"], prediction_deadline=1.3)
    emulator.script(CREATE, Fault(prediction="stuck"))
    try:
        with pytest.raises(ModelUnavailable, match=r"did not finish in 1\.3s; cancelled") as info:
            await run(b, call())
    finally:
        await b.aclose()
    [cancel] = emulator.requests_for("replicate.cancel")
    assert info.value.request_id is not None
    assert cancel.path.endswith(f"/predictions/{info.value.request_id}/cancel")
    assert len(emulator.requests_for(CREATE)) == 1


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        pytest.param(Fault(blocked=True), ContentBlocked, id="failed-nsfw"),
        pytest.param(
            Fault(prediction="failed", error="CUDA out of memory"), ArgumentRejected, id="failed-other"
        ),
        pytest.param(Fault(prediction="canceled"), ServerError, id="canceled"),
        pytest.param(Fault(prediction="aborted"), ServerError, id="aborted-at-create"),
        pytest.param(Fault(prediction="aborted", seconds=1.2), ServerError, id="aborted-while-polled"),
        pytest.param(Fault(empty=True), EmptyResult, id="empty-output"),
        pytest.param(Fault(truncate=True), DownloadFailed, id="truncated-image"),
    ],
)
async def test_terminal_status_maps_to_typed_outcome(
    backend: ReplicateBackend, emulator: Emulator, fault: Fault, expected: type[ProviderError]
) -> None:
    """How a prediction ends decides the outcome; the error carries the prediction id."""
    emulator.script(CREATE, fault)
    with pytest.raises(expected) as info:
        await run(backend, call())
    assert type(info.value) is expected
    assert info.value.request_id is not None
    assert len(emulator.requests_for(CREATE)) == 1


async def test_expired_output_url_is_download_failed(backend: ReplicateBackend, emulator: Emulator) -> None:
    """An output URL that no longer answers → DownloadFailed (the image was made but is lost)."""
    emulator.script("files", Fault(expired=True, times=2))
    with pytest.raises(DownloadFailed, match="expired"):
        await run(backend, call())


async def test_images_before_a_failed_download_are_delivered(
    backend: ReplicateBackend, emulator: Emulator
) -> None:
    """Bytes first: the first output is delivered before the second one's download fails."""
    emulator.script("files", Fault(expired=False, times=1), Fault(expired=True, times=2))
    log: list[Any] = []
    with pytest.raises(DownloadFailed):
        await run(backend, call(n=2), log)
    assert [e[0] for e in log] == ["sent", "prediction", "image"]


# -- the error seam on create ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        pytest.param(Fault(status=500), ServerError, id="500"),
        pytest.param(Fault(status=503), ServerError, id="503"),
        pytest.param(Fault(status=402), QuotaExhausted, id="402"),
        pytest.param(Fault(status=403), AuthenticationFailed, id="403"),
        pytest.param(Fault(status=422), ArgumentRejected, id="422"),
        pytest.param(Fault(drop=True), ConnectionFailed, id="dropped"),
        pytest.param(Fault(malformed=True), MalformedResponse, id="malformed-json"),
    ],
)
async def test_create_fault_maps_to_typed_outcome(
    backend: ReplicateBackend, emulator: Emulator, fault: Fault, expected: type[ProviderError]
) -> None:
    """Each scripted create fault ends as its typed outcome after exactly one create (no SDK retry)."""
    emulator.script(CREATE, fault)
    with pytest.raises(expected) as info:
        await run(backend, call())
    assert type(info.value) is expected
    assert info.value.__cause__ is not None
    assert len(emulator.requests_for(CREATE)) == 1


async def test_throttled_create_carries_retry_after(backend: ReplicateBackend, emulator: Emulator) -> None:
    """429 → RateLimited with retry_after from the problem+json body's `retry_after`."""
    emulator.script(CREATE, Fault(status=429, headers={"retry-after": "7"}))
    with pytest.raises(RateLimited) as info:
        await run(backend, call())
    assert info.value.retry_after == 7.0
    assert info.value.status == 429


async def test_create_read_timeout_may_be_billed(backend: ReplicateBackend, emulator: Emulator) -> None:
    """A create that does not answer in time → ReadTimedOut(maybe_billed=True): it may exist."""
    emulator.script(CREATE, Fault(latency=2.0))
    with pytest.raises(ReadTimedOut) as info:
        await run(backend, call())
    assert info.value.maybe_billed is True


async def test_bad_token_names_the_variable_never_the_token(
    emulator: Emulator, http: httpx.AsyncClient
) -> None:
    """A refused token → AuthenticationFailed naming REPLICATE_API_TOKEN; the token shows nowhere."""
    token = "r8_wrong_token_1234567890"
    b = make_backend(emulator, http, token)
    try:
        with pytest.raises(AuthenticationFailed) as info:
            await run(b, call())
    finally:
        await b.aclose()
    assert "REPLICATE_API_TOKEN" in str(info.value)
    for shown in (str(info.value), repr(info.value), repr(b)):
        assert token not in shown
    assert info.value.status == 401


async def test_missing_token_fails_before_sending(emulator: Emulator, http: httpx.AsyncClient) -> None:
    """No token → AuthenticationFailed naming the variable; the SDK never falls back to the environment."""
    b = make_backend(emulator, http, None)
    with pytest.raises(AuthenticationFailed, match="REPLICATE_API_TOKEN"):
        await run(b, call())
    assert emulator.requests == []


async def test_unknown_model_is_unavailable(backend: ReplicateBackend, emulator: Emulator) -> None:
    """A model Replicate does not know → 404 → ModelUnavailable (fall back to the next model)."""
    gone = REPLICATE.models[SCHNELL].model_copy(update={"id": "black-forest-labs/flux-retired"})
    with pytest.raises(ModelUnavailable) as info:
        await run(backend, call(gone))
    assert info.value.status == 404
    assert emulator.requests_for(CREATE)[0].path.endswith("/flux-retired/predictions")


# -- through the CLI, in the sandbox -------------------------------------------------------------

ACTIVE = [m.id for m in REPLICATE.models.values() if m.unavailable_reason(date.today()) is None]


def _cli(tmp_path: Path, *args: str) -> dict[str, Any]:
    receipt = sandbox_generate(tmp_path, "replicate", *args)
    [attempt] = receipt["attempts"]
    assert attempt["prediction_id"]
    return receipt


@pytest.mark.parametrize("model", ACTIVE)
def test_cli_generates_with_each_model(tmp_path: Path, model: str) -> None:
    """`generate --provider replicate:MODEL --env sandbox` saves an image and its receipt (exit 0),
    at $0 with the model's price as the would-be cost."""
    receipt = _cli(tmp_path, "--provider", f"replicate:{model}")
    assert receipt["model"] == model
    price = REPLICATE.models[model].price
    # Nothing asked: one image at the model's default shape — one megapixel on FLUX.2.
    one = price.output_first_mp if price.output_first_mp is not None else price.output_per_mp
    assert receipt["cost_usd"] == 0
    assert receipt["would_cost_usd"] == pytest.approx(price.per_image if price.basis == "image" else one)


def test_cli_generates_with_the_provider_and_a_reference(tmp_path: Path) -> None:
    """`--provider replicate` alone, then with `--reference a.jpg`, both save an image with a receipt."""
    _cli(tmp_path / "text", "--provider", "replicate")
    ref = write(tmp_path, "ref.jpg", jpeg_bytes((96, 64), RED))
    receipt = _cli(tmp_path / "ref", "--provider", "replicate", "--reference", str(ref))
    sent = receipt["attempts"][0]["sent"]
    field = REPLICATE.models[receipt["model"]].wire("reference")
    assert sent[field].startswith("<data URI, ")
