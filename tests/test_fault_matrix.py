"""Every provider × every fault, over real HTTP against the emulator: what the relay does next.

Each cell pins the faulty provider's first model ahead of a healthy fallback of another provider
and asserts four things: (a) the outcome (typed error of the first attempt, whether the same model
was tried again — counted on the emulator's route — whether the relay fell back, or stopped with
`GenerationFailed`); (b) every image that was delivered is on disk and decodes; (c) a generation
POST that read-timed-out is never sent again to that model; (d) the receipt lists each attempt with
provider, model, outcome, status and error. Exit codes follow from the result (0 an image was saved,
1 none was) and a representative subset runs through the real CLI entry point at the end.

Cells that cannot happen for a provider are N/A and pinned as such (see `NOT_APPLICABLE`): xAI,
OpenAI and Gemini answer with the image bytes in the POST's own body (the relay asks xAI for
`b64_json`; GPT-image and Gemini never send URLs), so no output URL can expire, and none has
predictions that could fail, be cancelled, aborted or get stuck; and the ways only Gemini's API
answers 200 without an image (a candidate that withholds it, no candidate at all) are Gemini's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from imagerelay.backends.xai import XAIBackend
from imagerelay.emulator import Emulator, Fault
from imagerelay.errors import GenerationFailed
from imagerelay.imaging import probe
from imagerelay.receipt import Receipt
from tests.clikit import run_cli
from tests.keys import GENERATE_ROUTE, KEY_VARS, PRIMARY
from tests.relaykit import Sleeps, make_relay

PROVIDERS = tuple(PRIMARY)
#: A healthy model of another provider, second in the routing of each cell.
FALLBACK = {
    "xai": "replicate:black-forest-labs/flux-schnell",
    "openai": "xai:grok-imagine-image",
    "replicate": "xai:grok-imagine-image",
    "gemini": "xai:grok-imagine-image",
}
WRONG_KEYS = {
    "xai": "xai-wrong-0123456789",
    "openai": "sk-wrong-0123456789",
    "replicate": "r8_wrong0123456789",
    "gemini": "AIza" + "-wrong-0123456789",
}

#: Quick polls for every provider, with a read timeout and prediction deadline generous enough
#: that a healthy answer slowed down by a busy machine is never taken for a fault.
FAST_PROVIDERS: dict[str, dict[str, Any]] = {
    "xai": {"timeout": 30.0},
    "openai": {"timeout": 30.0},
    "replicate": {"timeout": 30.0, "poll_interval": 0.05, "prediction_deadline": 60.0},
    "gemini": {"timeout": 30.0},
}
#: What a timing cell shortens, on its faulty provider alone.
SHORTENED: dict[str, dict[str, float]] = {
    "read-timeout": {"timeout": 0.4},
    "prediction-stuck": {"prediction_deadline": 1.3},
}


def providers_for(provider: str, fault: str) -> dict[str, dict[str, Any]]:
    """FAST_PROVIDERS, with the faulty provider's timeout or deadline shortened for its cell."""
    providers = {p: dict(values) for p, values in FAST_PROVIDERS.items()}
    providers[provider].update(SHORTENED.get(fault, {}))
    return providers


#: Longer than the shortened read timeout.
TIMEOUT_LATENCY = {"xai": 1.0, "openai": 1.0, "replicate": 1.0, "gemini": 1.0}
#: A 429 asking for 2 s: in a Retry-After header, or (Gemini) a RetryInfo in the error's details.
RATE_LIMITED = {
    p: Fault(status=429, seconds=2) if p == "gemini" else Fault(status=429, headers={"retry-after": "2"})
    for p in PROVIDERS
}

UNSUPPORTED_ARGUMENT = {
    "xai": Fault(
        status=400,
        body={"code": "Client specified an invalid argument", "error": "Argument not supported: size"},
    ),
    "openai": Fault(
        status=400,
        body={
            "error": {
                "message": "Unknown parameter: 'response_format'.",
                "type": "invalid_request_error",
                "param": "response_format",
                "code": "unknown_parameter",
            }
        },
    ),
    # Replicate answers invalid input with 422 problem+json.
    "replicate": Fault(status=422, error="- input.style: Additional property style is not allowed"),
    "gemini": Fault(
        status=400,
        body={
            "error": {
                "code": 400,
                "message": "Invalid value at 'generation_config.image_config.aspect_ratio' (7:3)",
                "status": "INVALID_ARGUMENT",
            }
        },
    ),
}


@dataclass(frozen=True)
class Cell:
    """One provider × fault: the script, and what must come of it."""

    provider: str
    fault: str
    script: tuple[tuple[str, Fault], ...]
    error_type: str  # of the first attempt
    outcome: str  # of the first attempt (an errors.Outcome value)
    status: int | None  # HTTP status the first attempt records
    action: str  # "retry" (then success on the same model), "fallback" or "stop"
    requests: int  # generation POSTs the faulty model received in all
    keys: dict[str, str] = field(default_factory=dict)  # key overrides (bad key)
    note: str | None = None  # a receipt note that must be present (substring)

    @property
    def exit_code(self) -> int:
        return 1 if self.action == "stop" else 0

    @property
    def id(self) -> str:
        return f"{self.provider}-{self.fault}"


def _cells() -> list[Cell]:
    cells: list[Cell] = []
    for p in PROVIDERS:
        route = GENERATE_ROUTE[p]
        unauthorised = 400 if p in ("xai", "gemini") else 401  # xAI and Gemini answer a bad key with 400
        blocked_status = {"xai": 200, "openai": 400, "replicate": None, "gemini": 200}[p]
        cells += [
            Cell(p, "429-retry-after", ((route, RATE_LIMITED[p]),),
                 "RateLimited", "transient", 429, "retry", 2),
            Cell(p, "500-every-time", ((route, Fault(status=500, times=None)),),
                 "ServerError", "transient", 500, "fallback", 3),
            Cell(p, "503-once", ((route, Fault(status=503)),), "ServerError", "transient", 503, "retry", 2),
            Cell(p, "read-timeout", ((route, Fault(latency=TIMEOUT_LATENCY[p], times=None)),),
                 "ReadTimedOut", "transient", None, "fallback", 1, note="may have been billed"),
            # Sent, then no answer: it may have run and been billed, so never sent there again.
            Cell(p, "dropped-connection", ((route, Fault(drop=True)),),
                 "ConnectionFailed", "transient", None, "fallback", 1, note="may have been billed"),
            # A 200 whose body broke: the work was done (and billed); not re-sent to that model.
            Cell(p, "malformed-json", ((route, Fault(malformed=True)),),
                 "MalformedResponse", "transient", 200, "fallback", 1, note="may have been billed"),
            # JSON, but not an object: no field of it can be read. (Gemini's SDK reads it as an
            # answer without candidates, so it is an empty result there: see below.)
            *([] if p == "gemini" else [
                Cell(p, "json-not-an-object", ((route, Fault(body="[1, 2]")),),
                     "MalformedResponse", "transient", 200, "fallback", 1, note="may have been billed"),
            ]),
            Cell(p, "unsupported-argument", ((route, UNSUPPORTED_ARGUMENT[p]),),
                 "ArgumentRejected", "provider", 422 if p == "replicate" else 400, "fallback", 1),
            Cell(p, "bad-key", (), "AuthenticationFailed", "provider", unauthorised, "fallback", 1,
                 keys={p: WRONG_KEYS[p]}, note=KEY_VARS[p]),
            Cell(p, "content-blocked", ((route, Fault(blocked=True)),),
                 "ContentBlocked", "content_blocked", blocked_status, "stop", 1, note="content blocked"),
            Cell(p, "empty-200", ((route, Fault(empty=True, times=None)),),
                 "EmptyResult", "empty", 200 if p != "replicate" else None, "fallback", 2),
        ]  # fmt: skip
    cells += [
        # xAI and OpenAI decode the image from the POST's body: a cut image is a malformed answer.
        # Every one of these was generated (and billed) before it broke: fall back, never re-send.
        Cell("xai", "truncated-image", (("xai.generations", Fault(truncate=True)),),
             "MalformedResponse", "transient", 200, "fallback", 1, note="may have been billed"),
        Cell("openai", "truncated-image", (("openai.generations", Fault(truncate=True)),),
             "MalformedResponse", "transient", 200, "fallback", 1, note="may have been billed"),
        Cell("gemini", "truncated-image", (("gemini.generate", Fault(truncate=True)),),
             "MalformedResponse", "transient", 200, "fallback", 1, note="may have been billed"),
        # Read by the SDK as an answer with no candidate: empty, retried once, then the fallback.
        Cell("gemini", "json-not-an-object", (("gemini.generate", Fault(body="[1, 2]", times=None)),),
             "EmptyResult", "empty", 200, "fallback", 2),
        # Gemini's other ways of answering 200 without an image.
        Cell("gemini", "image-withheld", (("gemini.generate", Fault(finish="IMAGE_SAFETY")),),
             "ContentBlocked", "content_blocked", 200, "stop", 1, note="content blocked"),
        Cell("gemini", "no-candidate", (("gemini.generate", Fault(body={}, times=None)),),
             "EmptyResult", "empty", 200, "fallback", 2),
        # Replicate: the prediction's output is cut; fetched three times, the prediction read
        # again for its URL and fetched once more, still cut.
        Cell("replicate", "truncated-image", (("replicate.create", Fault(truncate=True)),),
             "DownloadFailed", "transient", None, "fallback", 1, note="may have been billed"),
        # The output URL answers 404 (expired), and again once the prediction is read for it: the
        # image is gone; a new prediction at that model would pay again.
        Cell("replicate", "expired-url", (("files", Fault(expired=True, times=2)),),
             "DownloadFailed", "transient", 404, "fallback", 1, note="may have been billed"),
        # A failed run (HTTP 200, status "failed", not a moderation refusal) condemns the model.
        Cell("replicate", "prediction-failed",
             (("replicate.create", Fault(prediction="failed", error="CUDA out of memory")),),
             "ArgumentRejected", "provider", None, "fallback", 1),
        # Cancelled by someone else or aborted by Replicate: nothing wrong with the request.
        Cell("replicate", "prediction-canceled", (("replicate.create", Fault(prediction="canceled")),),
             "ServerError", "transient", None, "retry", 2),
        Cell("replicate", "prediction-aborted", (("replicate.create", Fault(prediction="aborted")),),
             "ServerError", "transient", None, "retry", 2),
        # Never finishes: cancelled at prediction_deadline, never created a second time.
        Cell("replicate", "prediction-stuck", (("replicate.create", Fault(prediction="stuck")),),
             "ModelUnavailable", "provider", None, "fallback", 1),
    ]  # fmt: skip
    return cells


CELLS = _cells()

#: Providers whose image comes in the POST's own answer: no URL can expire, no prediction exists.
_NO_URL_NO_PREDICTION = {
    (p, f): reason
    for p, reason in (
        ("xai", "the relay asks xAI for b64_json: the image is in the POST's answer, no URL, no prediction"),
        ("openai", "GPT-image always answers with b64_json in the POST's body: no URL, no prediction"),
        ("gemini", "Gemini answers with the image as inlineData in the POST's body: no URL, no prediction"),
    )
    for f in (
        "expired-url",
        "prediction-failed",
        "prediction-canceled",
        "prediction-aborted",
        "prediction-stuck",
    )
}
#: (provider, fault) pairs that cannot occur, and why.
NOT_APPLICABLE = _NO_URL_NO_PREDICTION | {
    (p, f): "an answer without an image shaped as only Gemini's API shapes it"
    for p in ("xai", "openai", "replicate")
    for f in ("image-withheld", "no-candidate")
}


def _assert_images_on_disk(receipt: Receipt, out: Path) -> None:
    """(b) every image the receipt lists is a file inside `out` that decodes in full."""
    for image in receipt.images:
        path = Path(image.path)
        assert path.is_file(), image.path
        assert path.resolve().parent == out.resolve()
        info = probe(path.read_bytes())
        assert (info.width, info.height) == (image.width, image.height)


def _assert_attempt(receipt: Receipt, cell: Cell) -> None:
    """(d) the first attempt names the faulty model and how it ended."""
    first = receipt.attempts[0]
    provider, model = PRIMARY[cell.provider].split(":", 1)
    assert (first.provider, first.model) == (provider, model)
    assert first.error_type == cell.error_type
    assert first.outcome == cell.outcome
    assert first.status == cell.status
    assert first.error
    assert first.images == 0


@pytest.mark.parametrize("cell", CELLS, ids=[c.id for c in CELLS])
async def test_fault_cell(cell: Cell, emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]) -> None:
    """Each provider × fault ends in its pinned outcome, keeps delivered images and lists every attempt."""
    for route, fault in cell.script:
        emulator.script(route, fault)
    routing = {"text": [PRIMARY[cell.provider], FALLBACK[cell.provider]]}
    sleeps = Sleeps()
    keys = {**test_keys, **cell.keys}
    out = tmp_path / "out"
    receipt: Receipt
    async with make_relay(
        emulator,
        tmp_path,
        keys,
        sleep=sleeps,
        routing=routing,
        providers=providers_for(cell.provider, cell.fault),
    ) as relay:
        if cell.action == "stop":
            with pytest.raises(GenerationFailed) as info:
                await relay.generate("a lighthouse at dusk")
            assert isinstance(info.value.receipt, Receipt)
            receipt = info.value.receipt
            assert info.value.exit_code == cell.exit_code
            assert len(info.value.failures) == len(receipt.attempts)
        else:
            receipt = await relay.generate("a lighthouse at dusk")
        cooling = relay.cooling()

    fallback_route = GENERATE_ROUTE[FALLBACK[cell.provider].split(":", 1)[0]]
    # (a) outcome: how often the faulty model was asked, and who answered in the end.
    assert len(emulator.requests_for(GENERATE_ROUTE[cell.provider])) == cell.requests
    _assert_attempt(receipt, cell)
    outcomes = [a.outcome for a in receipt.attempts]
    if cell.action == "retry":
        assert receipt.provider == cell.provider
        assert outcomes[-1] == "success"
        assert [a.provider for a in receipt.attempts] == [cell.provider] * cell.requests
        assert emulator.requests_for(fallback_route) == []
    elif cell.action == "fallback":
        assert receipt.provider == FALLBACK[cell.provider].split(":", 1)[0]
        assert outcomes[-1] == "success"
        assert len(receipt.attempts) == cell.requests + 1
        assert len(emulator.requests_for(fallback_route)) == 1
    else:
        assert receipt.images == []
        assert emulator.requests_for(fallback_route) == []
        assert len(receipt.attempts) == cell.requests
        failed = list(out.glob("*-failed.json"))
        assert len(failed) == 1
        on_disk = json.loads(failed[0].read_text())
        assert on_disk["attempts"][0]["error_type"] == cell.error_type
        assert [p for p in out.iterdir() if p.suffix not in (".json", ".sqlite3")] == []
    # (b) no delivered image lost.
    assert len(receipt.images) == (0 if cell.action == "stop" else 1)
    _assert_images_on_disk(receipt, out)
    # (d) every attempt of the faulty model is listed with its outcome.
    for attempt in receipt.attempts:
        assert attempt.provider
        assert attempt.model
        assert attempt.outcome in ("success", "transient", "provider", "content_blocked", "empty")
        assert (attempt.error is None) == (attempt.outcome == "success")
    if cell.note:
        assert any(cell.note in n for n in receipt.notes), receipt.notes
    # Fault-specific pins.
    first = receipt.attempts[0]
    if cell.fault == "429-retry-after":
        assert sleeps.waits == pytest.approx([2.0], abs=0.05)  # recorded, not slept
        assert receipt.attempts[1].wait_s == pytest.approx(2.0, abs=0.05)
    if cell.fault == "read-timeout":
        assert first.maybe_billed
    if cell.fault == "500-every-time":
        assert PRIMARY[cell.provider] in cooling  # later requests skip it for a while
    if cell.fault == "bad-key":  # the key is shared: every model of the provider cools down
        assert all(m.ref in cooling for m in relay.catalog.provider(cell.provider).models.values())
    if cell.fault == "prediction-stuck":
        cancels = emulator.requests_for("replicate.cancel")
        assert len(cancels) == 1
        assert first.prediction_id
        assert first.prediction_id in cancels[0].path
        assert emulator.requests_for("replicate.get")  # it was polled, not created again
    if cell.fault == "truncated-image" and cell.provider == "replicate":
        assert len(emulator.requests_for("files")) == 4  # cut every time; no second prediction
    if cell.action != "stop":
        sidecar = json.loads(Path(receipt.images[0].receipt_path or "").read_text())
        assert [a["outcome"] for a in sidecar["attempts"]] == outcomes


@pytest.mark.parametrize(
    ("provider", "fault"),
    sorted(_NO_URL_NO_PREDICTION),
    ids=[f"{p}-{f}" for p, f in sorted(_NO_URL_NO_PREDICTION)],
)
async def test_not_applicable_cells(
    provider: str, fault: str, emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """xAI, OpenAI and Gemini deliver the image inside the POST's answer: no URL to expire, no
    prediction to poll."""
    # Every hosted URL is expired and every prediction would misbehave: none of it may matter here.
    emulator.script("files", Fault(expired=True, times=None))
    kind = fault.removeprefix("prediction-")
    emulator.script("replicate.create", Fault(prediction=kind if kind != "expired-url" else None, times=None))
    routing = {"text": [PRIMARY[provider], FALLBACK[provider]]}
    async with make_relay(emulator, tmp_path, test_keys, routing=routing, providers=FAST_PROVIDERS) as relay:
        receipt = await relay.generate("a lighthouse at dusk")
    assert receipt.provider == provider
    assert [a.outcome for a in receipt.attempts] == ["success"]
    assert [r.route for r in emulator.requests] == [GENERATE_ROUTE[provider]]  # no download, no poll
    body = emulator.requests_for(GENERATE_ROUTE[provider])[0].json
    if provider == "xai":
        assert XAIBackend.response_format == "b64_json"
        assert body["response_format"] == "b64_json"
    else:
        assert "response_format" not in body
    _assert_images_on_disk(receipt, tmp_path / "out")
    assert NOT_APPLICABLE[(provider, fault)]


def test_matrix_covers_every_provider_and_fault() -> None:
    """Every provider × fault is either a tested cell or a pinned N/A, never both, never neither."""
    faults = {c.fault for c in CELLS} | {f for _, f in NOT_APPLICABLE}
    tested = {(c.provider, c.fault) for c in CELLS}
    for p in PROVIDERS:
        for f in faults:
            assert ((p, f) in tested) != ((p, f) in NOT_APPLICABLE), (p, f)
    assert len(tested) == len(CELLS)


# ---------------------------------------------------------------------------------------------
# Partial deliveries: some images of a call arrived, then the call failed.

SCHNELL_ONLY = {"text": [PRIMARY["replicate"]]}


async def test_second_url_expired_keeps_first_image_and_asks_only_for_the_rest(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """n=2, the first image downloads and the second URL has expired: the first stays, and no second
    prediction is paid for at that model (nothing else is configured: one image is the result)."""
    emulator.script("files", Fault(), Fault(expired=True, times=2))
    async with make_relay(
        emulator, tmp_path, test_keys, routing=SCHNELL_ONLY, providers=FAST_PROVIDERS
    ) as relay:
        receipt = await relay.generate("two lighthouses", n=2)
    creates = emulator.requests_for("replicate.create")
    assert [c.json["input"]["num_outputs"] for c in creates] == [2]
    first = receipt.attempts[0]
    assert (first.error_type, first.outcome, first.status, first.images) == (
        "DownloadFailed",
        "transient",
        404,
        1,
    )
    assert first.maybe_billed
    assert len(receipt.images) == 1
    _assert_images_on_disk(receipt, tmp_path / "out")
    assert any("1 of 2 images could not be made" in n for n in receipt.notes)
    assert receipt.possibly_billed_usd == pytest.approx(0.003)


async def test_partial_delivery_survives_falling_back(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """n=2 with every later URL expired: Replicate's one image stays, the fallback makes the other."""
    emulator.script("files", Fault(), Fault(expired=True, times=None))
    routing = {"text": [PRIMARY["replicate"], FALLBACK["replicate"]]}
    async with make_relay(emulator, tmp_path, test_keys, routing=routing, providers=FAST_PROVIDERS) as relay:
        receipt = await relay.generate("two lighthouses", n=2)
    assert [i.provider for i in receipt.images] == ["replicate", "xai"]
    _assert_images_on_disk(receipt, tmp_path / "out")
    assert [a.outcome for a in receipt.attempts] == ["transient", "success"]
    assert emulator.requests_for("xai.generations")[0].json["n"] == 1


async def test_partial_delivery_with_nowhere_to_fall_back_is_still_a_result(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """n=2, the second image never arrives and no model is left: the first image is the result, noted."""
    emulator.script("files", Fault(), Fault(truncate=True, times=None))
    async with make_relay(
        emulator, tmp_path, test_keys, routing=SCHNELL_ONLY, providers=FAST_PROVIDERS
    ) as relay:
        receipt = await relay.generate("two lighthouses", n=2)
    assert len(receipt.images) == 1
    _assert_images_on_disk(receipt, tmp_path / "out")
    assert receipt.attempts[0].images == 1
    assert any("1 of 2 images could not be made" in n for n in receipt.notes)


# ---------------------------------------------------------------------------------------------
# Exit codes through the real entry point, for a representative subset of the cells.


@pytest.fixture
def cli_env(cli_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """`cli_emulator` with this module's quick provider settings (FAST_PROVIDERS) on top."""
    for p in PROVIDERS:
        prefix = f"IMAGERELAY_PROVIDERS__{p.upper()}__"
        for name, value in FAST_PROVIDERS[p].items():
            monkeypatch.setenv(prefix + name.upper(), str(value))
    return cli_emulator


CLI_CASES = [
    pytest.param("xai-429-retry-after", 0, id="xai-429-retry"),
    pytest.param("openai-bad-key", 0, id="openai-bad-key-fallback"),
    pytest.param("xai-read-timeout", 0, id="xai-read-timeout-fallback"),
    pytest.param("replicate-prediction-stuck", 0, id="replicate-stuck-fallback"),
    pytest.param("replicate-expired-url", 0, id="replicate-expired-retry"),
    pytest.param("openai-content-blocked", 1, id="openai-blocked-stop"),
    pytest.param("replicate-content-blocked", 1, id="replicate-blocked-stop"),
    pytest.param("xai-empty-200", 0, id="xai-empty-fallback"),
    pytest.param("gemini-bad-key", 0, id="gemini-bad-key-fallback"),
    pytest.param("gemini-read-timeout", 0, id="gemini-read-timeout-fallback"),
    pytest.param("gemini-image-withheld", 1, id="gemini-withheld-stop"),
]


@pytest.mark.parametrize(("cell_id", "code"), CLI_CASES)
def test_exit_code_through_cli(
    cell_id: str,
    code: int,
    cli_env: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The CLI exits 0 when the relay retried or fell back to an image, 1 when it stopped with none."""
    cell = next(c for c in CELLS if c.id == cell_id)
    assert cell.exit_code == code
    for route, fault in cell.script:
        if fault.status == 429:
            fault = Fault(status=429, headers={"retry-after": "0"}, seconds=0)  # the CLI really sleeps
        cli_env.script(route, fault)
    for name, value in SHORTENED.get(cell.fault, {}).items():
        monkeypatch.setenv(f"IMAGERELAY_PROVIDERS__{cell.provider.upper()}__{name.upper()}", str(value))
    for p, key in cell.keys.items():
        monkeypatch.setenv(KEY_VARS[p], key)
    monkeypatch.setenv(
        "IMAGERELAY_ROUTING__TEXT", json.dumps([PRIMARY[cell.provider], FALLBACK[cell.provider]])
    )
    out_dir = tmp_path / "out"
    got, out, err = run_cli(capsys, monkeypatch, "generate", "a lighthouse", "--out", str(out_dir), "--json")
    assert got == code, err
    assert "Traceback" not in err, err
    payload = json.loads(out)
    receipt = payload if code == 0 else payload["receipt"]
    first = receipt["attempts"][0]
    assert (first["provider"], first["error_type"], first["outcome"]) == (
        cell.provider,
        cell.error_type,
        cell.outcome,
    )
    if code == 0:
        assert receipt["images"]
        for image in receipt["images"]:
            probe(Path(image["path"]).read_bytes())
    else:
        assert payload["exit_code"] == 1
        assert payload["error_type"] == "GenerationFailed"
        assert f"{cell.outcome} HTTP" in err or f"{cell.outcome} —" in err
        assert not [p for p in out_dir.iterdir() if p.suffix not in (".json", ".sqlite3")]


def test_every_provider_down_exits_1_listing_each_attempt(
    cli_env: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With every model failing, the CLI exits 1 and stderr has one line per attempt, no traceback."""
    for route in GENERATE_ROUTE.values():
        cli_env.script(route, Fault(status=503, times=None))
    monkeypatch.setenv("IMAGERELAY_RETRY__ATTEMPTS", "2")
    monkeypatch.setenv("IMAGERELAY_ROUTING__TEXT", json.dumps(list(PRIMARY.values())))
    code, out, err = run_cli(capsys, monkeypatch, "generate", "a lighthouse", "--out", str(tmp_path / "out"))
    assert code == 1
    assert out == ""
    assert "Traceback" not in err
    for ref in PRIMARY.values():
        assert err.count(f"  {ref}: transient HTTP 503") == 2
    for route in GENERATE_ROUTE.values():
        assert len(cli_env.requests_for(route)) == 2


def test_partial_delivery_exits_3_with_the_saved_image(
    cli_env: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """n=2 where only one image could be fetched exits 3 (partial), prints its path, notes the shortfall."""
    cli_env.script("files", Fault(), Fault(expired=True, times=None))
    monkeypatch.setenv("IMAGERELAY_ROUTING__TEXT", json.dumps([PRIMARY["replicate"]]))
    code, out, err = run_cli(
        capsys, monkeypatch, "generate", "two", "-n", "2", "--out", str(tmp_path / "out")
    )
    assert code == 3, err
    paths = out.split()
    assert len(paths) == 1
    probe(Path(paths[0]).read_bytes())
    assert "1 of 2 images could not be made" in err
