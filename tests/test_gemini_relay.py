"""Gemini through the whole tool: planning, the relay's one retry loop, receipts, the CLI, batches,
the ledger and the gallery — against the emulator over real HTTP."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from imagerelay.catalog import load_catalog
from imagerelay.emulator import Emulator, Fault
from imagerelay.errors import GenerationFailed
from imagerelay.gallery import write_gallery
from imagerelay.imaging import probe
from imagerelay.planner import plan_request
from imagerelay.request import ImageRequest
from imagerelay.settings import load_settings
from tests.clikit import run_cli, sandbox_generate
from tests.images import BLUE, RED, jpeg_bytes, write
from tests.relaykit import Sleeps, make_relay

CATALOG = load_catalog()
ROUTE = "gemini.generate"
NB21 = "gemini:gemini-nano-banana-2.1"
PRO = "gemini:gemini-3-pro-image"
LITE = "gemini:gemini-3.1-flash-lite-image"
GROK = "xai:grok-imagine-image"
KONTEXT = "replicate:black-forest-labs/flux-kontext-pro"


def refs(tmp_path: Path, count: int) -> tuple[str, ...]:
    return tuple(
        str(write(tmp_path, f"ref{i}.jpg", jpeg_bytes((64, 48), RED if i % 2 else BLUE)))
        for i in range(count)
    )


# -- planning -------------------------------------------------------------------------------------


def test_five_references_go_to_a_model_that_takes_five() -> None:
    """Five references: Kontext (1) and Grok (3) are left out saying how many they take; Gemini plans."""
    settings = load_settings("development", routing={"reference": [KONTEXT, GROK, NB21]})
    request = ImageRequest(prompt="the same mug, five angles", references=("a.jpg",) * 5)
    plan = plan_request(request, settings, CATALOG, keys={"xai", "replicate", "gemini"})
    assert [c.ref for c in plan.candidates] == [NB21]
    why = {e.ref: e.reason for e in plan.excluded}
    assert why == {
        KONTEXT: "takes at most 1 reference image(s), 5 given",
        GROK: "takes at most 3 reference image(s), 5 given",
    }


def test_every_shipped_environment_plans_gemini_for_many_references() -> None:
    """In every shipped environment, a request with 6 references and every key set is served by a
    Gemini model first (the others in its lists take at most 1 or 3, or come later)."""
    request = ImageRequest(prompt="the same character", references=("a.jpg",) * 6)
    keys = set(CATALOG.providers)
    for env in ("default", "development", "production", "sandbox"):
        plan = plan_request(request, load_settings(env), CATALOG, keys=keys, today=date(2026, 12, 1))
        assert plan.candidates, env
        assert plan.candidates[0].provider.name == "gemini", env


def test_sizes_and_ratios_are_translated_with_notes() -> None:
    """1792x1024 → 16:9 @2k on Nano Banana 2.1 (1k makes about one megapixel, fewer pixels than
    asked); 4096x4096 → 1:1 @4k; a 4k ask on Lite is dropped, named."""
    settings = load_settings("development")

    def only(ref: str, **fields: Any) -> Any:
        request = ImageRequest(prompt="a fox", provider=ref, **fields)
        [cand] = plan_request(request, settings, CATALOG, keys={"gemini"}, max_cost=10).candidates
        return cand

    wide = only(NB21, size="1792x1024")
    assert wide.params == {"aspect_ratio": "16:9", "resolution": "2k"}
    assert "1792x1024 → 16:9 @2k: gemini-nano-banana-2.1 takes aspect ratios, not sizes" in wide.notes
    big = only(NB21, size="4096x4096")
    assert big.params == {"aspect_ratio": "1:1", "resolution": "4k"}
    assert big.estimate_usd == pytest.approx(0.0756)
    lite = only(LITE, resolution="4k", aspect_ratio="4:1")
    assert lite.params == {"aspect_ratio": "4:1"}
    assert "resolution 4k dropped: gemini-3.1-flash-lite-image offers 1k" in lite.notes
    png = only(NB21, output_format="png")
    assert (
        "format png cannot be asked for: gemini-nano-banana-2.1 returns png or jpeg, as it chooses"
        in png.notes
    )
    pro = only(PRO, n=2, references=("a.jpg", "b.jpg"))
    assert pro.calls == [1, 1]
    assert pro.estimate_usd == pytest.approx(2 * 0.134 + 2 * 2 * 0.00112)  # inputs are billed per call


def test_retired_and_shut_down_models_are_never_planned() -> None:
    """gemini-3.1-flash-image (retired 2026-10-29) and 2.5 Flash Image (shut down 2026-10-02) say why."""
    settings = load_settings("development")
    for ref, reason in (
        ("gemini:gemini-3.1-flash-image", "retired on 2026-10-29"),
        ("gemini:gemini-2.5-flash-image", "shut down on 2026-10-02"),
    ):
        with pytest.raises(Exception, match=reason):
            plan_request(
                ImageRequest(prompt="x", provider=ref),
                settings,
                CATALOG,
                keys={"gemini"},
                today=date(2026, 12, 1),
            )


# -- the relay ------------------------------------------------------------------------------------


async def test_n3_is_three_calls_with_usage_in_the_receipt(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """n=3 on a one-image-per-call model: three generateContent calls, three images on disk, each
    attempt's usage metadata and responseId in the receipt, the split noted."""
    async with make_relay(emulator, tmp_path, test_keys, routing={"text": [NB21]}) as relay:
        receipt = await relay.generate("three foxes", n=3, aspect_ratio="3:2")
    assert len(emulator.requests_for(ROUTE)) == 3
    assert len(receipt.images) == 3
    for image in receipt.images:
        info = probe(Path(image.path).read_bytes())
        assert (info.width, info.height, image.provider) == (1264, 848, "gemini")
    assert [a.outcome for a in receipt.attempts] == ["success"] * 3
    for attempt in receipt.attempts:
        assert attempt.usage["candidatesTokenCount"] == 1120
        assert attempt.request_id
    assert any("n=3 split into 3 calls (1+1+1)" in n for n in receipt.notes)
    assert receipt.cost_usd == pytest.approx(3 * 0.0336)
    assert receipt.reported_cost_usd is None  # Gemini reports tokens, not dollars


async def test_a_read_timeout_is_never_sent_again_to_that_model(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """A generateContent that timed out may be billed: one request only, then the next model; the
    receipt says so and counts what it may have cost."""
    emulator.script(ROUTE, Fault(latency=1.5, times=None))
    routing = {"text": [NB21, GROK]}
    providers = {"gemini": {"timeout": 0.3}}
    async with make_relay(emulator, tmp_path, test_keys, routing=routing, providers=providers) as relay:
        receipt = await relay.generate("a fox")
    assert len(emulator.requests_for(ROUTE)) == 1
    assert receipt.provider == "xai"
    first = receipt.attempts[0]
    assert (first.provider, first.error_type, first.maybe_billed) == ("gemini", "ReadTimedOut", True)
    assert receipt.possibly_billed_usd == pytest.approx(0.0336)
    assert any("not re-sent because the call may have been billed" in n for n in receipt.notes)


async def test_a_429_waits_the_retry_delay_gemini_asked_for(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """429 with RetryInfo 7.5s: the relay waits 7.5 s (not its own backoff), then the same model answers."""
    emulator.script(ROUTE, Fault(status=429, seconds=7.5))
    sleeps = Sleeps()
    async with make_relay(emulator, tmp_path, test_keys, sleep=sleeps, routing={"text": [NB21]}) as relay:
        receipt = await relay.generate("a fox")
    assert len(emulator.requests_for(ROUTE)) == 2
    assert sleeps.waits == pytest.approx([7.5], abs=0.05)
    assert receipt.attempts[1].wait_s == pytest.approx(7.5, abs=0.05)
    assert receipt.provider == "gemini"


async def test_a_retry_delay_over_the_cap_moves_on(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """A RetryInfo of 600 s (a daily quota) is over the 60 s cap: the next model is asked at once."""
    emulator.script(ROUTE, Fault(status=429, seconds=600))
    sleeps = Sleeps()
    routing = {"text": [NB21, GROK]}
    async with make_relay(emulator, tmp_path, test_keys, sleep=sleeps, routing=routing) as relay:
        receipt = await relay.generate("a fox")
    assert receipt.provider == "xai"
    assert sleeps.waits == []
    assert any("asked to wait 600s, over the 60s cap" in n for n in receipt.notes)


async def test_a_bad_gemini_key_falls_back_and_cools_every_gemini_model(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """A refused key (400 API_KEY_INVALID) falls back at once, and later requests skip every Gemini
    model (the key is shared by all of them) instead of sending it again."""
    keys = {**test_keys, "gemini": "AIza" + "-refused"}
    async with make_relay(emulator, tmp_path, keys, routing={"text": [NB21, GROK]}) as relay:
        receipt = await relay.generate("a fox")
        later = relay.plan("a cat", provider="auto")
        cooling = relay.cooling()
    assert len(emulator.requests_for(ROUTE)) == 1
    assert receipt.provider == "xai"
    assert receipt.attempts[0].error_type == "AuthenticationFailed"
    assert any("GEMINI_API_KEY" in n for n in receipt.notes)
    assert {NB21, LITE, PRO} <= set(cooling)
    assert [c.ref for c in later.candidates] == [GROK]


async def test_a_blocked_prompt_stops_and_keeps_the_receipt(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """promptFeedback.blockReason stops the request (on_content_blocked = "stop"): no fallback call."""
    emulator.script(ROUTE, Fault(blocked=True))
    async with make_relay(emulator, tmp_path, test_keys, routing={"text": [NB21, GROK]}) as relay:
        with pytest.raises(GenerationFailed) as info:
            await relay.generate("a fox")
    assert emulator.requests_for("xai.generations") == []
    assert info.value.receipt is not None
    assert [a.outcome for a in info.value.receipt.attempts] == ["content_blocked"]  # type: ignore[attr-defined]


async def test_references_reach_gemini_converted_and_in_order(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """A GIF (which Gemini does not take) and a WebP: the GIF goes up converted, both in the order given."""
    from tests.images import gif_bytes, webp_bytes

    paths = (
        str(write(tmp_path, "a.gif", gif_bytes((40, 30), RED))),
        str(write(tmp_path, "b.webp", webp_bytes((40, 30), BLUE))),
    )
    async with make_relay(emulator, tmp_path, test_keys, routing={"reference": [NB21]}) as relay:
        receipt = await relay.generate("both", references=paths)
    parts = emulator.requests_for(ROUTE)[0].json["contents"][0]["parts"]
    assert [p["inlineData"]["mime_type"] for p in parts[:-1]] == ["image/jpeg", "image/webp"]
    assert receipt.attempts[0].sent["inlineData"].startswith("<2 images, ")
    assert [r.source for r in receipt.references] == list(paths)


# -- the command line, batches, the ledger and the gallery ----------------------------------------------


def test_providers_lists_every_gemini_model_with_its_key_state(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`imagerelay providers --json` lists the five Gemini models, their status, price and key variable."""
    monkeypatch.delenv("GEMINI_API_KEY")
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza" + "-from-google")
    code, out, _ = run_cli(capsys, monkeypatch, "providers", "--json")
    assert code == 0
    rows = {r["model"]: r for r in json.loads(out) if r["model"].startswith("gemini:")}
    assert list(rows) == [
        NB21,
        PRO,
        LITE,
        "gemini:gemini-3.1-flash-image",
        "gemini:gemini-2.5-flash-image",
    ]
    assert rows[NB21]["status"] == "active"
    assert rows[NB21]["max_references"] == 14
    assert rows["gemini:gemini-3.1-flash-image"]["status"] == "retired on 2026-10-29"
    assert rows["gemini:gemini-2.5-flash-image"]["status"] == "shut down on 2026-10-02"
    assert rows[PRO]["estimate_usd_1024"] == pytest.approx(0.134)
    assert all(r["key_env"] == "GEMINI_API_KEY" and r["key_set"] for r in rows.values())  # via GOOGLE_API_KEY


def test_plan_with_five_references_names_gemini(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """`imagerelay plan` with 5 references: Gemini is a candidate, Grok and Kontext are left out by count."""
    args = [a for path in refs(tmp_path, 5) for a in ("-r", path)]
    code, out, err = run_cli(capsys, monkeypatch, "plan", "five views", *args, "--json")
    assert code == 0, err
    plan = json.loads(out)
    assert plan["candidates"][0]["model"] == NB21
    left_out = {e["model"]: e["reason"] for e in plan["excluded"]}
    assert left_out[GROK] == "takes at most 3 reference image(s), 5 given"
    assert left_out[KONTEXT] == "takes at most 1 reference image(s), 5 given"
    assert cli_emulator.requests_for(ROUTE) == []  # planning sends nothing


def test_a_csv_batch_passes_gemini_columns_and_shows_in_history_and_gallery(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A CSV manifest with a `gemini.thinking_level` column: the extra reaches Gemini, the ledger's history
    and the gallery show the Gemini model, and a second run pays for nothing."""
    manifest = tmp_path / "week.csv"
    manifest.write_text(
        "name,prompt,provider,gemini.thinking_level,aspect_ratio\n"
        f"mon,a lighthouse,{NB21},high,16:9\n"
        f"tue,a harbour,{NB21},minimal,4:5\n"
    )
    code, _, err = run_cli(capsys, monkeypatch, "batch", str(manifest), "--out", "out")
    assert code == 0, err
    sent = cli_emulator.requests_for(ROUTE)
    assert len(sent) == 2
    levels = sorted(r.json["generationConfig"]["thinkingConfig"]["thinking_level"] for r in sent)
    assert levels == ["HIGH", "MINIMAL"]
    code, out, err = run_cli(capsys, monkeypatch, "history", "--out", "out", "--json")
    assert code == 0, err
    rows = json.loads(out)["generations"]
    assert {f"{r['provider']}:{r['model']}" for r in rows} == {NB21}
    page = write_gallery(tmp_path / "out").path.read_text()
    assert page.count(NB21) >= 2
    code, _, err = run_cli(capsys, monkeypatch, "batch", str(manifest), "--out", "out")
    assert code == 0, err
    assert len(cli_emulator.requests_for(ROUTE)) == 2  # done items are not sent again


ACTIVE = [
    m.id for m in CATALOG.provider("gemini").models.values() if m.unavailable_reason(date.today()) is None
]


@pytest.mark.parametrize("model", ACTIVE)
def test_sandbox_generates_with_each_active_model(tmp_path: Path, model: str) -> None:
    """`generate --provider gemini:MODEL --env sandbox` saves an image and a receipt that names it."""
    receipt = sandbox_generate(tmp_path, "gemini", "--provider", f"gemini:{model}")
    assert receipt["model"] == model
    assert receipt["attempts"][-1]["usage"]["candidatesTokenCount"] > 0


def test_sandbox_reference_request_with_many_references_uses_gemini(tmp_path: Path) -> None:
    """In the sandbox, 4 references (more than Grok takes) go to Gemini, drawn from the references."""
    args = [a for path in refs(tmp_path, 4) for a in ("--reference", path)]
    receipt = sandbox_generate(tmp_path, "gemini", *args)
    assert receipt["attempts"][-1]["sent"]["inlineData"].startswith("<4 images, ")
    assert "xai:grok-imagine-image" in receipt["left_out"]
