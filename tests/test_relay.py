"""The relay against the emulator: routing, retries, fallback, cooldown, translation, describe."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from imagerelay.emulator import Emulator, Fault
from imagerelay.errors import BudgetExceeded, GenerationFailed, InvalidReference
from imagerelay.imaging import probe
from tests.images import RED, jpeg_bytes, write
from tests.relaykit import Sleeps, make_relay, routes


@pytest.fixture
def ref_jpg(tmp_path: Path) -> Path:
    return write(tmp_path, "ref.jpg", jpeg_bytes((96, 64), RED))


async def test_text_request_goes_to_grok_first(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """A text request is served by xai:grok-imagine-image, the first model of [routing] text."""
    async with make_relay(emulator, tmp_path, test_keys) as relay:
        receipt = await relay.generate("a red fox in snow")
    assert (receipt.provider, receipt.model) == ("xai", "grok-imagine-image")
    assert routes(emulator) == ["xai.generations"]
    image = receipt.images[0]
    assert Path(image.path).is_file()
    assert Path(image.receipt_path or "").is_file()
    assert probe(Path(image.path).read_bytes()).format == "jpeg"
    assert receipt.reported_cost_usd == pytest.approx(0.02)


async def test_reference_request_goes_to_first_reference_model(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str], ref_jpg: Path
) -> None:
    """A reference request uses the first reference-capable model, through xAI's JSON edits endpoint."""
    async with make_relay(emulator, tmp_path, test_keys) as relay:
        receipt = await relay.generate("the same, as a watercolour", references=(str(ref_jpg),))
    assert routes(emulator) == ["xai.edits"]
    sent = emulator.requests_for("xai.edits")[0].json
    assert sent["image"]["url"].startswith("data:image/jpeg;base64,")
    assert receipt.references[0].sha256
    assert receipt.references[0].source == str(ref_jpg)


async def test_reference_request_never_goes_to_text_only_model(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str], ref_jpg: Path
) -> None:
    """With every reference model listed failing, a text-only model is still never called."""
    emulator.script("xai.edits", Fault(status=503, times=None))
    emulator.script("openai.edits", Fault(status=503, times=None))
    emulator.script("replicate.create", Fault(status=503, times=None))
    emulator.script("gemini.generate", Fault(status=503, times=None))
    routing = {
        "reference": ["xai:grok-imagine-image", "openai:gpt-image-2"],
        "text": ["replicate:black-forest-labs/flux-schnell"],
        "allow_unlisted": True,
    }
    async with make_relay(emulator, tmp_path, test_keys, routing=routing, retry={"attempts": 1}) as relay:
        plan = relay.plan("x", references=(str(ref_jpg),))
        assert "replicate:black-forest-labs/flux-schnell" not in [c.ref for c in plan.candidates]
        with pytest.raises(GenerationFailed):
            await relay.generate("x", references=(str(ref_jpg),))
    bodies = [r.json for r in emulator.requests_for("replicate.create")]
    assert all("flux-schnell" not in r.path for r in emulator.requests_for("replicate.create")), bodies


async def test_429_twice_then_success_honours_retry_after(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """Two 429s with Retry-After: 1 are retried on the same model after 1 s waits, then succeed."""
    emulator.script("xai.generations", Fault(status=429, headers={"retry-after": "1"}, times=2))
    sleeps = Sleeps()
    async with make_relay(emulator, tmp_path, test_keys, sleep=sleeps) as relay:
        receipt = await relay.generate("a fox")
    assert receipt.provider == "xai"
    assert [a.outcome for a in receipt.attempts] == ["transient", "transient", "success"]
    assert sleeps.waits == pytest.approx([1.0, 1.0], abs=0.05)
    assert receipt.attempts[-1].wait_s == pytest.approx(1.0, abs=0.05)
    assert routes(emulator) == ["xai.generations"] * 3


async def test_retry_after_over_cap_moves_on(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """A Retry-After longer than the cap is not waited out: the relay falls back at once."""
    emulator.script("xai.generations", Fault(status=429, headers={"retry-after": "3600"}, times=None))
    sleeps = Sleeps()
    async with make_relay(emulator, tmp_path, test_keys, sleep=sleeps) as relay:
        receipt = await relay.generate("a fox")
    assert receipt.provider != "xai"
    assert all(w < 61 for w in sleeps.waits)
    assert any("over the 60s cap" in n for n in receipt.notes)


async def test_503_forever_falls_back_and_cools_down(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """xAI failing with 503 on every attempt falls back, and the next request skips xAI (cooldown)."""
    emulator.script("xai.generations", Fault(status=503, times=None))
    async with make_relay(emulator, tmp_path, test_keys, sleep=Sleeps()) as relay:
        first = await relay.generate("a fox")
        assert first.provider != "xai"
        assert [a.outcome for a in first.attempts[:3]] == ["transient"] * 3
        plan = relay.plan("another fox")
        cooled = {e.ref: e.reason for e in plan.excluded}
        assert "cooling down" in cooled["xai:grok-imagine-image"]
        before = len(emulator.requests_for("xai.generations"))
        second = await relay.generate("another fox")
    assert second.provider != "xai"
    assert len(emulator.requests_for("xai.generations")) == before == 3


async def test_bad_key_falls_back_with_warning_naming_variable(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A refused xAI key (HTTP 400 at xAI) falls back, warning about XAI_API_KEY, never showing the key."""
    keys = dict(test_keys, xai="xai-wrong-key-123456789")
    with caplog.at_level(logging.WARNING, logger="imagerelay"):
        async with make_relay(emulator, tmp_path, keys) as relay:
            receipt = await relay.generate("a fox")
    assert receipt.provider != "xai"
    assert receipt.attempts[0].error_type == "AuthenticationFailed"
    assert receipt.attempts[0].outcome == "provider"
    assert any("XAI_API_KEY" in r.getMessage() for r in caplog.records)
    assert any("XAI_API_KEY" in n for n in receipt.notes)
    text = receipt.model_dump_json() + caplog.text
    assert "xai-wrong-key-123456789" not in text


async def test_bad_argument_is_not_mistaken_for_bad_key(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """An xAI 400 about an argument, with a valid key, is ArgumentRejected, not AuthenticationFailed."""
    emulator.script(
        "xai.generations", Fault(status=400, body={"code": "x", "error": "Argument not supported: y"})
    )
    async with make_relay(emulator, tmp_path, test_keys) as relay:
        receipt = await relay.generate("a fox")
    assert receipt.attempts[0].error_type == "ArgumentRejected"


async def test_content_blocked_stops(emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]) -> None:
    """A moderation refusal stops the request: no fallback, no image, the failure carries the receipt."""
    emulator.script("xai.generations", Fault(blocked=True))
    async with make_relay(emulator, tmp_path, test_keys) as relay:
        with pytest.raises(GenerationFailed) as info:
            await relay.generate("something refused")
    assert routes(emulator) == ["xai.generations"]
    receipt = info.value.receipt
    assert receipt is not None
    assert receipt.attempts[0].outcome == "content_blocked"
    assert list((tmp_path / "out").glob("*-failed.json"))


async def test_content_blocked_can_fall_back(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """With on_content_blocked = "fallback", a moderation refusal moves to the next model."""
    emulator.script("xai.generations", Fault(blocked=True))
    routing = {"on_content_blocked": "fallback"}
    async with make_relay(emulator, tmp_path, test_keys, routing=routing) as relay:
        receipt = await relay.generate("borderline")
    assert receipt.provider != "xai"
    assert receipt.attempts[0].outcome == "content_blocked"


async def test_empty_200_retries_once_then_falls_back(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """An HTTP 200 without an image is never a success: retried once, then the next model."""
    emulator.script("xai.generations", Fault(empty=True, times=None))
    async with make_relay(emulator, tmp_path, test_keys) as relay:
        receipt = await relay.generate("a fox")
    assert [a.outcome for a in receipt.attempts[:2]] == ["empty", "empty"]
    assert len(emulator.requests_for("xai.generations")) == 2
    assert receipt.provider != "xai"
    assert receipt.images


async def test_read_timeout_is_never_resent_to_same_model(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """A generation POST that timed out is not sent again to that model (it may be billed)."""
    emulator.script("xai.generations", Fault(latency=1.5))
    providers = {"xai": {"timeout": 0.3}}
    async with make_relay(emulator, tmp_path, test_keys, providers=providers) as relay:
        receipt = await relay.generate("a fox")
    assert len(emulator.requests_for("xai.generations")) == 1
    assert receipt.attempts[0].error_type == "ReadTimedOut"
    assert receipt.attempts[0].maybe_billed
    assert any("may have been billed" in n for n in receipt.notes)
    assert receipt.provider != "xai"


async def test_dropped_connection_after_sending_is_not_resent(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """A connection dropped after the request went out may have been billed: fall back, never re-send."""
    emulator.script("xai.generations", Fault(drop=True))
    async with make_relay(emulator, tmp_path, test_keys) as relay:
        receipt = await relay.generate("a fox")
    assert receipt.provider != "xai"
    assert len(emulator.requests_for("xai.generations")) == 1
    assert receipt.attempts[0].error_type == "ConnectionFailed"
    assert receipt.attempts[0].maybe_billed
    assert receipt.possibly_billed_usd == pytest.approx(0.02)


async def test_connection_refused_is_retried(tmp_path: Path, test_keys: dict[str, str]) -> None:
    """A connection that could not be made sent nothing: the same model is tried again."""
    import socket

    from imagerelay.emulator import Emulator as Emu

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    with Emu(keys=test_keys) as emulator:
        providers = {"xai": {"base_url": dead}}
        async with make_relay(emulator, tmp_path, test_keys, providers=providers) as relay:
            receipt = await relay.generate("a fox")
    xai = [a for a in receipt.attempts if a.provider == "xai"]
    assert [a.error_type for a in xai] == ["ConnectionFailed"] * 3
    assert not any(a.maybe_billed for a in xai)


async def test_every_model_down_lists_each_reason(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """When every candidate fails, the error names each model and why."""
    for route in ("xai.generations", "openai.generations", "replicate.create", "gemini.generate"):
        emulator.script(route, Fault(status=500, times=None))
    async with make_relay(emulator, tmp_path, test_keys, retry={"attempts": 2}) as relay:
        with pytest.raises(GenerationFailed) as info:
            await relay.generate("a fox")
    message = str(info.value)
    for ref in relay.settings.routing.text:
        assert ref in message
    assert len(info.value.failures) == 2 * len(relay.settings.routing.text)


async def test_size_translated_to_aspect_ratio_for_xai(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """--size 1792x1024 reaches xAI as aspect_ratio 16:9 (never `size`), with a note in the receipt."""
    async with make_relay(emulator, tmp_path, test_keys) as relay:
        receipt = await relay.generate("a banner", size="1792x1024")
    body = emulator.requests_for("xai.generations")[0].json
    assert body["aspect_ratio"] == "16:9"
    assert "size" not in body
    assert "style" not in body
    assert any("1792x1024 → 16:9" in n for n in receipt.notes)
    image = receipt.images[0]
    assert image.width / image.height == pytest.approx(16 / 9, rel=0.02)


async def test_n_split_into_calls_for_small_max_n(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """-n 6 on a model that makes at most 4 per call becomes two calls and six images."""
    async with make_relay(emulator, tmp_path, test_keys) as relay:
        receipt = await relay.generate("six foxes", n=6, provider="replicate:black-forest-labs/flux-schnell")
    creates = emulator.requests_for("replicate.create")
    assert [c.json["input"]["num_outputs"] for c in creates] == [4, 2]
    assert len(receipt.images) == 6
    assert len({i.path for i in receipt.images}) == 6
    assert any("split into 2 calls" in n for n in receipt.notes)


async def test_describe_strategy_uses_vision_then_text_model(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str], ref_jpg: Path
) -> None:
    """With reference_fallback = "describe" and every reference model failing, a vision model
    describes the reference, a text model generates, and the receipt says so."""
    emulator.script("xai.edits", Fault(status=503, times=None))
    routing = {
        "reference": ["xai:grok-imagine-image"],
        "text": ["replicate:black-forest-labs/flux-schnell"],
        "reference_fallback": "describe",
    }
    async with make_relay(emulator, tmp_path, test_keys, routing=routing, retry={"attempts": 1}) as relay:
        receipt = await relay.generate("in this style", references=(str(ref_jpg),))
    assert routes(emulator)[:3] == ["xai.edits", "xai.chat", "replicate.create"]
    assert set(routes(emulator)[3:]) == {"replicate.get"}  # polled until done
    assert receipt.described_reference
    assert receipt.model == "black-forest-labs/flux-schnell"
    assert any("described" in n for n in receipt.notes)
    prompt_sent = emulator.requests_for("replicate.create")[0].json["input"]["prompt"]
    assert receipt.described_reference in prompt_sent


async def test_plan_sends_nothing(emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]) -> None:
    """Planning (the --dry-run path) sends no request at all."""
    async with make_relay(emulator, tmp_path, test_keys) as relay:
        plan = relay.plan("a fox", n=3, size="1792x1024")
    assert plan.candidates
    assert emulator.requests == []


async def test_budget_excludes_everything_spends_nothing(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """A max cost below every estimate is a BudgetExceeded before any request is sent."""
    async with make_relay(emulator, tmp_path, test_keys) as relay:
        with pytest.raises(BudgetExceeded, match="budget"):
            await relay.generate("a fox", n=4, max_cost=0.001)
    assert emulator.requests == []


async def test_private_reference_url_refused_before_spending(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str], ref_jpg: Path
) -> None:
    """A reference URL on a loopback address is refused (unless allowed) before anything is spent."""
    url = emulator.host_file("xai", ref_jpg.read_bytes(), "image/jpeg", "ref.jpg")
    async with make_relay(emulator, tmp_path, test_keys) as relay:
        with pytest.raises(InvalidReference, match=r"private|loopback"):
            await relay.generate("x", references=(url,))
    assert routes(emulator) == []
    allowed = {"allow_private_urls": True}
    async with make_relay(emulator, tmp_path, test_keys, references=allowed) as relay:
        receipt = await relay.generate("x", references=(url + "?token=secret-signature",))
    assert receipt.images
    assert "secret-signature" not in receipt.model_dump_json()


async def test_images_delivered_before_failure_are_kept(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """When the second call of a split request fails everywhere, the first call's images stay saved."""
    emulator.script("replicate.create", Fault(), Fault(status=500, times=None))
    async with make_relay(emulator, tmp_path, test_keys, retry={"attempts": 1}) as relay:
        receipt = await relay.generate("foxes", n=6, provider="replicate:black-forest-labs/flux-schnell")
    assert len(receipt.images) == 4
    assert all(Path(i.path).is_file() for i in receipt.images)
    assert any("2 of 6 images could not be made" in n for n in receipt.notes)


async def test_mask_goes_to_a_mask_capable_model(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """A reference with a same-size mask is sent to a mask-capable model's edits, mask as PNG."""
    from tests.images import rgba_png_bytes

    ref = write(tmp_path, "ref.png", rgba_png_bytes((64, 48), (*RED, 255)))
    mask = write(tmp_path, "mask.png", rgba_png_bytes((64, 48), (0, 0, 0, 0)))
    async with make_relay(emulator, tmp_path, test_keys) as relay:
        plan = relay.plan("x", references=(str(ref),), mask=str(mask))
        assert all(c.model.supports("mask") for c in plan.candidates)
        receipt = await relay.generate("fill it", references=(str(ref),), mask=str(mask))
    assert receipt.provider == "openai"
    sent = emulator.requests_for("openai.edits")[0]
    assert [f[0] for f in sent.files].count("mask") == 1


async def test_mask_of_another_size_is_refused_before_spending(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str], ref_jpg: Path
) -> None:
    """A mask whose size differs from the first reference is a clear error before any request."""
    from tests.images import rgba_png_bytes

    mask = write(tmp_path, "mask.png", rgba_png_bytes((10, 10), (0, 0, 0, 0)))
    async with make_relay(emulator, tmp_path, test_keys) as relay:
        with pytest.raises(InvalidReference, match="same size"):
            await relay.generate("fill it", references=(str(ref_jpg),), mask=str(mask))
    assert emulator.requests == []


async def test_fields_given_beside_a_request_are_validated(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """generate(request, n=0) is refused like ImageRequest(n=0), before anything is sent."""
    from imagerelay.errors import InvalidRequest
    from imagerelay.request import ImageRequest

    async with make_relay(emulator, tmp_path, test_keys) as relay:
        with pytest.raises(InvalidRequest, match="n must be between"):
            await relay.generate(ImageRequest(prompt="a fox"), n=0)
    assert emulator.requests == []


async def test_pinned_model_cooling_down_is_a_failure_not_bad_input(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """A pinned model skipped because it just failed ends as GenerationFailed (exit 1), not bad input."""
    emulator.script("xai.generations", Fault(status=503, times=None))
    pinned = "xai:grok-imagine-image"
    async with make_relay(emulator, tmp_path, test_keys, retry={"attempts": 1}) as relay:
        with pytest.raises(GenerationFailed):
            await relay.generate("a fox", provider=pinned)
        with pytest.raises(GenerationFailed, match="cooling down") as info:
            await relay.generate("a fox", provider=pinned)
    assert info.value.exit_code == 1
    assert len(emulator.requests_for("xai.generations")) == 1


async def test_receipt_on_disk_says_what_was_left_out_and_missing(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """The sidecar receipt names the models the plan left out and the images that could not be made."""
    import json

    emulator.script("replicate.create", Fault(), Fault(status=500, times=None))
    keys = {k: v for k, v in test_keys.items() if k != "openai"}
    async with make_relay(emulator, tmp_path, keys, retry={"attempts": 1}) as relay:
        receipt = await relay.generate("foxes", n=6, provider="replicate:black-forest-labs/flux-schnell")
        plan = relay.plan("foxes")
    on_disk = json.loads(Path(receipt.images[0].receipt_path or "").read_text())
    assert any("2 of 6 images could not be made" in n for n in on_disk["notes"])
    assert "no key: set OPENAI_API_KEY" in {e.reason for e in plan.excluded}
    assert on_disk["left_out"] == {}  # a pinned model leaves nothing out; an auto plan does:
    async with make_relay(emulator, tmp_path, keys) as relay:
        auto = await relay.generate("a fox")
    assert auto.left_out["openai:gpt-image-2.6-flare"] == "no key: set OPENAI_API_KEY"


async def test_cost_counts_each_call_once_across_providers(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """Images split across a provider that reports no cost and one that does are each counted once:
    the catalog estimate for the first, the reported figure for the second."""
    # Replicate makes 4 of 6 in its first call and then fails; xAI (cost reported) makes the last 2.
    emulator.script("replicate.create", Fault(), Fault(status=500, times=None))
    routing = {"text": ["replicate:black-forest-labs/flux-schnell", "xai:grok-imagine-image"]}
    async with make_relay(emulator, tmp_path, test_keys, routing=routing, retry={"attempts": 1}) as relay:
        receipt = await relay.generate("foxes", n=6)
    assert [i.provider for i in receipt.images] == ["replicate"] * 4 + ["xai"] * 2
    assert receipt.reported_cost_usd == pytest.approx(2 * 0.02)
    assert receipt.estimated_cost_usd == pytest.approx(4 * 0.003 + 2 * 0.02)
    assert receipt.cost_usd == pytest.approx(4 * 0.003 + 2 * 0.02)


async def test_partial_delivery_names_the_model_that_delivered(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """An answer with one good and one broken image keeps the good one, credited to its model."""
    import base64

    good = "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes((64, 64), RED)).decode()
    body = {"created": 1, "block_reason": None, "data": [{"b64_json": good}, {"b64_json": good[:40]}]}
    emulator.script("xai.generations", Fault(body=body), Fault(status=500, times=None))
    routing = {"text": ["xai:grok-imagine-image"]}
    async with make_relay(emulator, tmp_path, test_keys, routing=routing, retry={"attempts": 2}) as relay:
        receipt = await relay.generate("two foxes", n=2)
    assert len(receipt.images) == 1
    assert (receipt.provider, receipt.model) == ("xai", "grok-imagine-image")


async def test_unusable_image_url_is_a_typed_failure_not_a_crash(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """An output URL httpx cannot fetch (ftp:, nonsense) ends as a typed, possibly billed outcome
    and a fallback."""
    body = {"created": 1, "block_reason": None, "data": [{"url": "ftp://example.invalid/a.jpg"}]}
    emulator.script("xai.generations", Fault(body=body, times=None))
    async with make_relay(emulator, tmp_path, test_keys, retry={"attempts": 1}) as relay:
        receipt = await relay.generate("a fox")
    assert receipt.attempts[0].error_type == "DownloadFailed"
    assert receipt.attempts[0].maybe_billed
    assert receipt.provider != "xai"


async def test_failed_key_check_does_not_condemn_the_key(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """When xAI's key check itself fails (503), a 400 counts as a rejected argument, not a bad key."""
    emulator.script("xai.generations", Fault(status=400, body={"code": "x", "error": "bad"}))
    emulator.script("xai.api_key", Fault(status=503))
    async with make_relay(emulator, tmp_path, test_keys) as relay:
        receipt = await relay.generate("a fox")
        plan = relay.plan("a fox")
    assert receipt.attempts[0].error_type == "ArgumentRejected"
    assert plan.candidates[0].ref == "xai:grok-imagine-image"  # not cooled: the next request tries it
