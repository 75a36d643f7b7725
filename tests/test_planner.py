"""The planner: which models, in which order, translated how, at what estimate, and who was left out
and why. Planning sends nothing, so every test here is pure."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from imagerelay.catalog import Catalog, load_catalog
from imagerelay.errors import InvalidRequest, MissingKey
from imagerelay.planner import Candidate, Plan, plan_request
from imagerelay.request import ImageRequest, parse_size
from imagerelay.settings import Settings, load_settings
from tests.keys import BUILTIN, outside_setting

ALL_KEYS = BUILTIN
TODAY = date(2026, 11, 24)  # before the 2026-12-01 shutdown of the deprecated OpenAI models
GROK = "xai:grok-imagine-image"
SCHNELL = "replicate:black-forest-labs/flux-schnell"
GPT2 = "openai:gpt-image-2"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No IMAGERELAY_* variable from the outside, and a working directory without config/."""
    for var in list(os.environ):
        if outside_setting(var):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _settings(env: str = "development", **routing: Any) -> Settings:
    return load_settings(env, routing=routing) if routing else load_settings(env)


def _plan(
    catalog: Catalog,
    settings: Settings | None = None,
    *,
    keys: tuple[str, ...] = ALL_KEYS,
    cooling: dict[str, str] | None = None,
    today: date = TODAY,
    max_cost: float | None = None,
    **request: Any,
) -> Plan:
    request.setdefault("prompt", "a red fox in snow")
    return plan_request(
        ImageRequest(**request),
        settings or _settings(),
        catalog,
        keys=keys,
        cooling=cooling,
        today=today,
        max_cost=max_cost,
    )


def _refs(plan: Plan) -> list[str]:
    return [c.ref for c in plan.candidates]


def _only(plan: Plan) -> Candidate:
    assert len(plan.candidates) == 1, _refs(plan)
    return plan.candidates[0]


def _reasons(plan: Plan) -> dict[str, str]:
    return {e.ref: e.reason for e in plan.excluded}


# -- order ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ["default", "development", "sandbox"])
def test_text_request_follows_routing_text_grok_first(catalog: Catalog, env: str) -> None:
    """A text request tries exactly the [routing] text models, in order, Grok Imagine first."""
    settings = _settings(env)
    plan = _plan(catalog, settings)
    assert _refs(plan) == settings.routing.text
    assert _refs(plan)[0] == GROK
    assert plan.excluded == []


def test_production_puts_grok_2_first(catalog: Catalog) -> None:
    """Production's text order starts with Grok Imagine 2.0, which replaced the retired quality model."""
    assert _refs(_plan(catalog, _settings("production")))[0] == "xai:grok-imagine-image-2.0"


def test_retired_model_is_never_planned_and_says_why(catalog: Catalog) -> None:
    """grok-imagine-image-quality (retired 2026-11-02) is never a candidate, even when every model
    may be planned; the plan names the retirement and what to use, and pinning it is refused so."""
    plan = _plan(catalog, _settings(allow_unlisted=True), today=date(2026, 12, 1))
    assert "xai:grok-imagine-image-quality" not in _refs(plan)
    assert _reasons(plan)["xai:grok-imagine-image-quality"] == (
        "retired on 2026-11-02 (use grok-imagine-image-2.0)"
    )
    with pytest.raises(InvalidRequest, match=r"retired on 2026-11-02 \(use grok-imagine-image-2.0\)"):
        _plan(catalog, provider="xai:grok-imagine-image-quality")


def test_reference_request_follows_routing_reference(catalog: Catalog) -> None:
    """A reference request tries the [routing] reference models in order, all reference-capable."""
    settings = _settings()
    plan = _plan(catalog, settings, references=("fox.jpg",))
    assert _refs(plan) == settings.routing.reference
    assert all(c.model.supports("reference") for c in plan.candidates)


def test_reference_request_never_plans_a_text_only_model(catalog: Catalog) -> None:
    """With every model allowed, flux-schnell and grok-2-image are left out of a reference request."""
    settings = _settings(allow_unlisted=True, text=[SCHNELL, GROK])
    plan = _plan(catalog, settings, references=("fox.jpg",))
    assert SCHNELL not in _refs(plan)
    assert "xai:grok-2-image" not in _refs(plan)
    assert all(c.model.supports("reference") for c in plan.candidates)
    assert _reasons(plan)[SCHNELL] == "cannot take reference images (text only)"
    assert _reasons(plan)["xai:grok-2-image"].startswith("retired")
    assert len(plan.candidates) >= 10  # every active reference model, listed ones first
    assert _refs(plan)[: len(settings.routing.reference)] == settings.routing.reference


def test_too_many_references_excludes_with_reason(catalog: Catalog) -> None:
    """Four references leave out Grok (3 max) and Kontext (1 max), saying so; Gemini and GPT-image
    take them."""
    plan = _plan(catalog, references=("a.jpg", "b.jpg", "c.jpg", "d.jpg"))
    assert _reasons(plan)[GROK] == "takes at most 3 reference image(s), 4 given"
    assert (
        _reasons(plan)["replicate:black-forest-labs/flux-kontext-pro"]
        == "takes at most 1 reference image(s), 4 given"
    )
    assert _refs(plan) == ["gemini:gemini-nano-banana-2.1", "openai:gpt-image-2.6-flare"]


def test_mask_plans_only_mask_capable_models(catalog: Catalog) -> None:
    """A masked edit goes only to models that take a mask; the others are excluded saying why."""
    plan = _plan(catalog, _settings(allow_unlisted=True), references=("a.jpg",), mask="m.png")
    assert plan.candidates
    assert all(c.model.supports("mask") for c in plan.candidates)
    assert {c.model.provider for c in plan.candidates} == {"openai"}
    assert _reasons(plan)[GROK] == "cannot take a mask"


def test_missing_key_excludes_with_the_variable_to_set(catalog: Catalog) -> None:
    """Without an xAI key, Grok is left out with 'no key: set XAI_API_KEY' and the rest stay."""
    plan = _plan(catalog, keys=("openai", "replicate"))
    assert GROK not in _refs(plan)
    assert _reasons(plan)[GROK] == "no key: set XAI_API_KEY"
    assert _refs(plan) == [SCHNELL, "openai:gpt-image-2.6-flare"]


def test_cooling_model_is_excluded_with_its_reason(catalog: Catalog) -> None:
    """A model cooling down is left out with the reason the relay gave."""
    why = "cooling down for 240s after: ServerError: HTTP 503"
    plan = _plan(catalog, cooling={GROK: why})
    assert _reasons(plan) == {GROK: why}
    assert _refs(plan)[0] == SCHNELL


def test_allow_unlisted_false_plans_only_listed(catalog: Catalog) -> None:
    """With allow_unlisted false only the listed models are planned."""
    settings = _settings(text=[SCHNELL], allow_unlisted=False)
    assert _refs(_plan(catalog, settings)) == [SCHNELL]


def test_allow_unlisted_true_appends_the_rest_in_catalog_order(catalog: Catalog) -> None:
    """With allow_unlisted true the listed models come first, then every other plannable one."""
    settings = _settings(text=[SCHNELL], allow_unlisted=True)
    refs = _refs(_plan(catalog, settings))
    plannable = [m.ref for m in catalog.models if m.unavailable_reason(TODAY) is None]
    assert refs == [SCHNELL] + [r for r in plannable if r != SCHNELL]


def test_provider_restricts_to_its_models_listed_first(catalog: Catalog) -> None:
    """--provider xai plans only xAI models, the listed one first, and still several of them."""
    plan = _plan(catalog, provider="xai")
    assert {c.model.provider for c in plan.candidates} == {"xai"}
    assert _refs(plan) == [GROK, "xai:grok-imagine-image-2.0"]
    assert _reasons(plan) == {
        "xai:grok-imagine-image-quality": "retired on 2026-11-02 (use grok-imagine-image-2.0)",
        "xai:grok-2-image": "retired",
    }


def test_provider_colon_model_pins_one(catalog: Catalog) -> None:
    """--provider xai:grok-imagine-image plans exactly that model."""
    assert _only(_plan(catalog, provider=GROK)).ref == GROK


def test_pinned_model_outside_routing_is_planned(catalog: Catalog) -> None:
    """A pinned model need not be listed in [routing]."""
    assert _only(_plan(catalog, provider="replicate:black-forest-labs/flux-dev")).model.id.endswith("dev")


def test_unknown_provider_lists_valid_ones(catalog: Catalog) -> None:
    """An unknown provider is an InvalidRequest listing auto and every provider."""
    with pytest.raises(InvalidRequest, match="use one of auto, xai, openai, replicate"):
        _plan(catalog, provider="stability")


def test_unknown_model_lists_valid_ones(catalog: Catalog) -> None:
    """An unknown model far from any is an InvalidRequest listing the provider's models, not the
    retired ones; one near a live model names that one alone (never a retired one)."""
    with pytest.raises(InvalidRequest) as info:
        _plan(catalog, provider="xai:flux")
    message = str(info.value)
    assert "'flux'" in message
    assert "grok-imagine-image-2.0" in message
    assert "grok-imagine-image-quality" not in message
    assert "grok-2-image" not in message
    with pytest.raises(InvalidRequest) as info:
        _plan(catalog, provider="xai:grok-3-image")
    assert str(info.value) == "unknown model 'grok-3-image' for xai: did you mean xai:grok-imagine-image?"


def test_pinned_retired_model_names_the_retirement(catalog: Catalog) -> None:
    """Pinning a retired model is an InvalidRequest that says when it was retired."""
    with pytest.raises(InvalidRequest, match=r"openai:dall-e-3 .*retired on 2026-05-12"):
        _plan(catalog, provider="openai:dall-e-3")


def test_pinned_text_only_model_with_reference_is_refused(catalog: Catalog) -> None:
    """Pinning flux-schnell for a reference request is an InvalidRequest, not an empty plan."""
    with pytest.raises(InvalidRequest, match="cannot take reference images"):
        _plan(catalog, provider=SCHNELL, references=("a.jpg",))


def test_pinned_model_without_key_is_missing_key(catalog: Catalog) -> None:
    """Pinning a model whose provider has no key is a MissingKey naming the variable."""
    with pytest.raises(MissingKey, match="XAI_API_KEY"):
        _plan(catalog, keys=("openai",), provider=GROK)


@pytest.mark.parametrize(("today", "plannable"), [(date(2026, 11, 30), True), (date(2026, 12, 1), False)])
def test_deprecated_model_until_shutdown(catalog: Catalog, today: date, plannable: bool) -> None:
    """gpt-image-1.5 is planned with a note on 2026-11-30 and refused from 2026-12-01."""
    if plannable:
        cand = _only(_plan(catalog, today=today, provider="openai:gpt-image-1.5"))
        assert "gpt-image-1.5 is deprecated and shuts down on 2026-12-01" in cand.notes
    else:
        with pytest.raises(InvalidRequest, match="shut down on 2026-12-01"):
            _plan(catalog, today=today, provider="openai:gpt-image-1.5")


def test_deprecated_models_leave_the_unlisted_plan_on_shutdown(catalog: Catalog) -> None:
    """From 2026-12-01 the deprecated models are excluded as shut down, not planned."""
    plan = _plan(catalog, _settings(allow_unlisted=True), today=date(2026, 12, 1))
    for ref in ("openai:gpt-image-1.5", "openai:gpt-image-1-mini", "openai:chatgpt-image-latest"):
        assert ref not in _refs(plan)
        assert _reasons(plan)[ref].startswith("shut down on 2026-12-01 (use gpt-image-2.6-")


def test_routing_naming_an_unknown_model_is_a_config_error(catalog: Catalog) -> None:
    """A [routing] entry that is not in the catalog is a ConfigError naming the entry."""
    from imagerelay.errors import ConfigError

    with pytest.raises(ConfigError, match="'xai:grok-9'"):
        _plan(catalog, _settings(text=["xai:grok-9"]))


# -- translation ---------------------------------------------------------------------------------


def test_size_to_xai_becomes_ratio_and_the_tier_with_enough_pixels(catalog: Catalog) -> None:
    """size 1792x1024 (1.8 MP) reaches Grok as 16:9 at 2k: 1k is about one megapixel (1360x768),
    fewer pixels than asked; a note says so, and no size is sent."""
    cand = _only(_plan(catalog, provider=GROK, size="1792x1024"))
    assert cand.params == {"aspect_ratio": "16:9", "resolution": "2k"}
    assert "1792x1024 → 16:9 @2k: grok-imagine-image takes aspect ratios, not sizes" in cand.notes
    assert not any("made:" in n for n in cand.notes)


def test_size_within_one_megapixel_stays_at_1k(catalog: Catalog) -> None:
    """A size 1k already covers (1280x720, under 1360x768) asks Grok for 1k, never more."""
    cand = _only(_plan(catalog, provider=GROK, size="1280x720"))
    assert cand.params == {"aspect_ratio": "16:9", "resolution": "1k"}


def test_default_route_delivers_the_pixels_asked_or_says_why(catalog: Catalog) -> None:
    """On the default route every candidate for --size 1792x1024 makes at least 1792x1024 pixels,
    or its notes say how many it makes and why it cannot make more."""
    from imagerelay.sizing import output_size

    for env in ("default", "development"):
        plan = _plan(catalog, _settings(env), size="1792x1024", today=date(2026, 12, 1))
        assert plan.candidates
        for cand in plan.candidates:
            (w, h), _ = output_size(cand.model, cand.params)
            if w * h < 1792 * 1024:
                assert any(n.startswith(f"1792x1024 asked, about {w}x{h} made: ") for n in cand.notes), (
                    cand.ref,
                    cand.notes,
                )
        assert plan.candidates[0].ref == GROK
        assert plan.candidates[0].params["resolution"] == "2k"


def test_size_larger_than_every_tier_says_so(catalog: Catalog) -> None:
    """Asking flux-schnell (about one megapixel) for 1792x1024 notes what it makes instead, and why."""
    cand = _only(_plan(catalog, provider=SCHNELL, size="1792x1024"))
    assert cand.params == {"aspect_ratio": "16:9"}
    assert (
        "1792x1024 asked, about 1360x768 made: the most black-forest-labs/flux-schnell makes at 16:9"
        in cand.notes
    )


def test_large_size_to_xai_picks_2k(catalog: Catalog) -> None:
    """A size whose area is over one megapixel asks Grok for the 2k tier."""
    cand = _only(_plan(catalog, provider=GROK, size="2048x1152"))
    assert cand.params == {"aspect_ratio": "16:9", "resolution": "2k"}


def test_megapixel_tiers_for_flux_2(catalog: Catalog) -> None:
    """FLUX.2 tiers are megapixels: 1792x1024 asks for 2 MP, a request for 2k becomes 4 MP."""
    flux2 = "replicate:black-forest-labs/flux-2-pro"
    cand = _only(_plan(catalog, provider=flux2, size="1792x1024"))
    assert cand.params == {"aspect_ratio": "16:9", "resolution": "2 MP"}
    cand = _only(_plan(catalog, provider=flux2, resolution="2k"))
    assert cand.params == {"resolution": "4 MP"}
    assert "resolution 2k → 4 MP: the nearest tier black-forest-labs/flux-2-pro offers" in cand.notes


def test_explicit_resolution_wins_over_size_and_note_says_so(catalog: Catalog) -> None:
    """size 1024x1024 with resolution 2k is sent as 2k, and the note says 2k, not 1k."""
    cand = _only(_plan(catalog, provider=GROK, size="1024x1024", resolution="2k"))
    assert cand.params == {"aspect_ratio": "1:1", "resolution": "2k"}
    assert any("@2k" in n for n in cand.notes)
    assert not any("@1k" in n for n in cand.notes)


@pytest.mark.parametrize(
    "shape",
    [{"size": "1792x1024"}, {"size": "640x480"}, {"aspect_ratio": "21:9"}, {"size": "auto"}, {}],
    ids=["1792x1024", "640x480", "21:9", "auto", "none"],
)
def test_xai_never_gets_size_or_style(catalog: Catalog, shape: dict[str, str]) -> None:
    """Whatever shape is asked for, no xAI candidate carries size or style in params; as extras
    (which no xAI model takes) they are refused before anything is planned."""
    plan = _plan(catalog, provider="xai", **shape)
    assert plan.candidates
    for cand in plan.candidates:
        assert not {"size", "style"} & (set(cand.params) | set(cand.extras))
    with pytest.raises(InvalidRequest, match=r"unknown field xai\.style"):
        _plan(catalog, provider="xai", extras={"xai": {"style": "vivid"}}, **shape)


def test_gpt_image_never_gets_response_format(catalog: Catalog) -> None:
    """An openai.response_format extra (no GPT-image model takes it) is refused; background is sent."""
    bad = {"openai": {"response_format": "url", "background": "opaque"}}
    with pytest.raises(InvalidRequest, match=r"unknown field openai\.response_format"):
        _plan(catalog, provider="openai", extras=bad)
    plan = _plan(catalog, provider="openai", extras={"openai": {"background": "opaque"}})
    assert plan.candidates
    for cand in plan.candidates:
        assert "response_format" not in cand.params
        assert cand.extras == {"background": "opaque"}


@pytest.mark.parametrize("size", ["1792x1024", "1024x768", "816x816", "3840x2160", "1024x3072", "1920x640"])
def test_free_size_kept_when_valid(catalog: Catalog, size: str) -> None:
    """A size gpt-image-2 can take (multiples of 16, ratio ≤ 3, ≤ 3840x2160, at least 655,360
    pixels) is sent unchanged, with no note."""
    cand = _only(_plan(catalog, provider=GPT2, size=size))
    assert cand.params["size"] == size
    assert cand.notes == []


def _follows_gpt2_rule(size: str) -> bool:
    w, h = parse_size(size)
    return (
        w % 16 == 0
        and h % 16 == 0
        and 1 / 3 - 1e-4 <= w / h <= 3
        and max(w, h) <= 3840
        and min(w, h) <= 2160
        and w * h >= 655_360
    )


@pytest.mark.parametrize(("size", "expected"), [("64x64", "816x816"), ("240x176", "944x704")])
def test_free_size_below_the_pixel_minimum_is_grown(catalog: Catalog, size: str, expected: str) -> None:
    """A size under gpt-image-2's 655,360-pixel minimum is grown to the smallest it takes, same shape."""
    cand = _only(_plan(catalog, provider=GPT2, size=size))
    assert cand.params["size"] == expected
    assert _follows_gpt2_rule(expected)
    assert f"{size} → {expected}: the nearest size gpt-image-2 takes" in cand.notes


@pytest.mark.parametrize(
    ("size", "expected"),
    [("1010x1010", "1008x1008"), ("1030x770", "1024x768"), ("4000x1000", "3456x1152")],
)
def test_free_size_snapped_with_note(catalog: Catalog, size: str, expected: str) -> None:
    """A size gpt-image-2 cannot take is snapped to the nearest one it can, with a note."""
    cand = _only(_plan(catalog, provider=GPT2, size=size))
    assert cand.params["size"] == expected
    assert _follows_gpt2_rule(expected)
    assert f"{size} → {expected}: the nearest size gpt-image-2 takes" in cand.notes


def test_free_size_always_follows_the_rule(catalog: Catalog) -> None:
    """Across a sweep of sizes, what is sent to gpt-image-2 follows its rule, and valid sizes are kept."""
    sides = [64, 100, 240, 333, 512, 1000, 1024, 1536, 2160, 2500, 3840, 5000, 8192]
    for w in sides:
        for h in sides:
            size = f"{w}x{h}"
            sent = _only(_plan(catalog, provider=GPT2, size=size)).params["size"]
            assert _follows_gpt2_rule(sent), (size, sent)
            if _follows_gpt2_rule(size):
                assert sent == size


@pytest.mark.parametrize(
    ("size", "expected"),
    [("1792x1024", "1536x1024"), ("1024x1792", "1024x1536"), ("1000x1000", "1024x1024")],
)
def test_fixed_size_model_gets_nearest_of_its_sizes(catalog: Catalog, size: str, expected: str) -> None:
    """gpt-image-1.5 takes three sizes: a request gets the nearest, with a note."""
    cand = _only(_plan(catalog, provider="openai:gpt-image-1.5", size=size))
    assert cand.params["size"] == expected
    assert f"{size} → {expected}: the nearest size gpt-image-1.5 takes" in cand.notes


def test_aspect_ratio_to_openai_becomes_a_size(catalog: Catalog) -> None:
    """aspect_ratio 16:9 reaches OpenAI as a size of about that shape, never as aspect_ratio."""
    free = _only(_plan(catalog, provider=GPT2, aspect_ratio="16:9"))
    w, h = parse_size(free.params["size"])
    assert w / h == pytest.approx(16 / 9, rel=0.01)
    assert _follows_gpt2_rule(free.params["size"])
    assert "aspect_ratio" not in free.params
    fixed = _only(_plan(catalog, provider="openai:gpt-image-1.5", aspect_ratio="16:9"))
    assert fixed.params["size"] == "1536x1024"


def test_size_to_replicate_becomes_its_nearest_ratio(catalog: Catalog) -> None:
    """flux-1.1-pro gets the nearest aspect ratio it lists for a size, with a note."""
    cand = _only(_plan(catalog, provider="replicate:black-forest-labs/flux-1.1-pro", size="1792x1024"))
    assert cand.params == {"aspect_ratio": "16:9"}
    assert any(n.startswith("1792x1024 → 16:9") for n in cand.notes)


def test_n_split_into_calls(catalog: Catalog) -> None:
    """n=6 on flux-schnell (4 per call) is two calls, 4+2, with a note."""
    cand = _only(_plan(catalog, provider=SCHNELL, n=6))
    assert cand.calls == [4, 2]
    assert any("n=6 split into 2 calls (4+2)" in n for n in cand.notes)
    assert cand.estimate_usd == pytest.approx(6 * 0.003)


def test_n_on_a_one_image_model_is_one_call_each(catalog: Catalog) -> None:
    """A model without n makes one image per call: n=3 is three calls."""
    cand = _only(_plan(catalog, provider="replicate:black-forest-labs/flux-1.1-pro", n=3))
    assert cand.calls == [1, 1, 1]


def test_n_within_limit_is_one_call(catalog: Catalog) -> None:
    """n=10 on Grok (10 per call) is one call and no split note."""
    cand = _only(_plan(catalog, provider=GROK, n=10))
    assert cand.calls == [10]
    assert not any("split" in n for n in cand.notes)


def test_seed_dropped_for_xai_and_openai_kept_for_replicate(catalog: Catalog) -> None:
    """A seed is sent to Replicate; for xAI and OpenAI it is dropped with a note."""
    plan = _plan(catalog, _settings(text=[GROK, GPT2, SCHNELL]), seed=42)
    by_ref = {c.ref: c for c in plan.candidates}
    assert by_ref[SCHNELL].params["seed"] == 42
    for ref in (GROK, GPT2):
        assert "seed" not in by_ref[ref].params
        assert any(n.startswith("seed dropped") for n in by_ref[ref].notes)


def test_output_format_names_per_provider(catalog: Catalog) -> None:
    """jpeg is `jpg` for Replicate, `jpeg` for OpenAI, and needs nothing for xAI (JPEG only)."""
    plan = _plan(catalog, _settings(text=[GROK, GPT2, SCHNELL]), output_format="jpeg")
    by_ref = {c.ref: c for c in plan.candidates}
    assert by_ref[SCHNELL].params["output_format"] == "jpg"
    assert by_ref[GPT2].params["output_format"] == "jpeg"
    assert "output_format" not in by_ref[GROK].params
    assert by_ref[GROK].notes == []


def test_unavailable_output_format_is_noted(catalog: Catalog) -> None:
    """png asked of Grok, which only returns JPEG, is noted rather than sent."""
    cand = _only(_plan(catalog, provider=GROK, output_format="png"))
    assert "output_format" not in cand.params
    assert any(n.startswith("format png not available") for n in cand.notes)


def test_quality_mapped_to_nearest_offered(catalog: Catalog) -> None:
    """quality high on grok-imagine-image-2.0 (low, medium) becomes medium, with a note."""
    cand = _only(_plan(catalog, provider="xai:grok-imagine-image-2.0", quality="high"))
    assert cand.params["quality"] == "medium"
    assert any(n.startswith("quality high → medium") for n in cand.notes)


def test_extras_only_declared_fields_of_the_right_provider(catalog: Catalog) -> None:
    """A declared extra is passed; one another model of the provider takes, or one for another
    provider, is dropped with a note."""
    plan = _plan(
        catalog,
        _settings(text=[GROK, SCHNELL]),
        extras={"replicate": {"go_fast": False, "prompt_strength": 0.5}},
    )
    grok, schnell = plan.candidates
    assert schnell.extras == {"go_fast": False}
    assert any("extra replicate.prompt_strength dropped" in n for n in schnell.notes)
    assert grok.extras == {}
    assert any("replicate.go_fast" in n and "not sent" in n for n in grok.notes)


def test_an_extra_no_model_of_its_provider_takes_is_refused(catalog: Catalog) -> None:
    """replicate.bogus is taken by no Replicate model: an InvalidRequest, not a dropped-field note."""
    with pytest.raises(InvalidRequest, match=r"unknown field replicate\.bogus"):
        _plan(catalog, extras={"replicate": {"bogus": 1}})


def test_extras_for_an_unknown_provider_are_refused(catalog: Catalog) -> None:
    """Extras naming a provider that does not exist (a typo) are an InvalidRequest."""
    with pytest.raises(InvalidRequest, match="'replicte'"):
        _plan(catalog, extras={"replicte": {"go_fast": False}})


# -- cost ----------------------------------------------------------------------------------------


def test_max_cost_excludes_expensive_candidates(catalog: Catalog) -> None:
    """max_cost leaves out models estimated above it, marked over_budget, with the figures."""
    plan = _plan(catalog, n=4, max_cost=0.05)
    grok = next(e for e in plan.excluded if e.ref == GROK)
    assert grok.over_budget
    assert grok.reason == "estimated $0.0800, over the $0.0500 limit"
    assert GROK not in _refs(plan)
    assert all(c.estimate_usd <= 0.05 for c in plan.candidates)
    assert plan.candidates


def test_budget_from_settings_applies_without_max_cost(catalog: Catalog) -> None:
    """The environment's max_cost_per_request (development: $0.50) limits the plan by default."""
    plan = _plan(catalog, provider="xai:grok-imagine-image-2.0", n=10, quality="medium")  # 10 x $0.06
    assert plan.candidates == []
    assert plan.excluded[0].over_budget


def test_other_exclusions_are_not_over_budget(catalog: Catalog) -> None:
    """Only budget exclusions carry over_budget."""
    plan = _plan(catalog, keys=("openai",), references=("a.jpg",) * 4)
    assert plan.excluded
    assert not any(e.over_budget for e in plan.excluded)


def test_xai_estimate_per_image_and_per_input_image(catalog: Catalog) -> None:
    """Grok: $0.02 per image, plus $0.01 per input image per call (2 images, 2 references = $0.06)."""
    assert _only(_plan(catalog, provider=GROK)).estimate_usd == pytest.approx(0.02)
    cand = _only(_plan(catalog, provider=GROK, n=2, references=("a.jpg", "b.jpg")))
    assert cand.estimate_usd == pytest.approx(0.02 * 2 + 0.01 * 2)


def test_input_images_charged_per_call(catalog: Catalog, tmp_path: Path) -> None:
    """When n is split into calls, the input-image charge is paid once per call."""
    d = tmp_path / "extra"
    d.mkdir()
    (d / "xai.toml").write_text('[models."grok-imagine-image"]\nmax_n = 4\n')
    small = load_catalog(extra_dirs=[d])
    cand = _only(_plan(small, provider=GROK, n=6, references=("a.jpg",)))
    assert cand.calls == [4, 2]
    assert cand.estimate_usd == pytest.approx(6 * 0.02 + 2 * 0.01)


def test_openai_estimate_grows_with_area_and_quality(catalog: Catalog) -> None:
    """GPT-image estimates are token-based: more pixels at one shape, and higher qualities, cost more."""

    def est(size: str, quality: str) -> float:
        return _only(_plan(catalog, provider=GPT2, size=size, quality=quality, max_cost=5.0)).estimate_usd

    for quality in ("low", "medium", "high"):
        assert est("1024x1024", quality) < est("2048x2048", quality)
        assert est("1536x1024", quality) < est("3072x2048", quality)
    for size in ("1024x1024", "1536x1024"):
        assert est(size, "low") < est(size, "medium") < est(size, "high")


def test_openai_gets_medium_when_no_quality_is_asked(catalog: Catalog) -> None:
    """With no quality asked, GPT-image is sent `medium` (auto bills what it picks, up to high); its
    worst case is medium at the largest size auto may pick (1536x1024), at the safe bound."""
    cand = _only(_plan(catalog, provider=GPT2))
    assert cand.params == {"quality": "medium"}
    assert cand.worst_usd == pytest.approx(2634 * 30 / 1e6, rel=0.05)


def test_unknown_reference_size_is_priced_at_its_costliest(catalog: Catalog) -> None:
    """A reference whose size is not known (a URL before download) is estimated at the most a
    reference can cost; a known small one costs less."""
    flux2 = "replicate:black-forest-labs/flux-2-pro"
    unknown = _only(_plan(catalog, provider=flux2, references=("https://example.com/a.jpg",)))
    assert unknown.cost.per_call == pytest.approx(4 * 0.015)
    plan = plan_request(
        ImageRequest(prompt="a fox", provider=flux2, references=("a.jpg",)),
        _settings(),
        catalog,
        keys=ALL_KEYS,
        today=TODAY,
        reference_sizes=[(1024, 768)],
    )
    assert _only(plan).cost.per_call == pytest.approx(0.015)


def test_plan_estimate_is_the_first_candidates(catalog: Catalog) -> None:
    """The plan's estimate is what its first candidate would cost."""
    plan = _plan(catalog, n=2)
    assert plan.estimate_usd == pytest.approx(plan.candidates[0].estimate_usd) == pytest.approx(0.04)
    data = plan.to_dict()
    assert {"candidates", "excluded", "estimate_usd"} <= data.keys()
    assert data["candidates"][0]["model"] == GROK


# -- describe ------------------------------------------------------------------------------------


def test_describe_strategy_adds_text_candidates(catalog: Catalog) -> None:
    """With reference_fallback = describe, text models follow as `described` candidates with a note."""
    settings = _settings(reference_fallback="describe")
    plan = _plan(catalog, settings, references=("a.jpg", "b.jpg", "c.jpg", "d.jpg"))
    assert _refs(plan) == ["gemini:gemini-nano-banana-2.1", "openai:gpt-image-2.6-flare"]
    described = [c.ref for c in plan.describe]
    assert described == [GROK, SCHNELL]  # [routing] text, minus models already planned
    for cand in plan.describe:
        assert cand.described
        assert cand.notes[0] == "reference described in words by a vision model, not matched"
    assert not any(c.described for c in plan.candidates)


def test_no_describe_by_default(catalog: Catalog) -> None:
    """Without the describe strategy a reference request plans no text fallback."""
    assert _plan(catalog, references=("a.jpg",) * 4).describe == []


def test_no_describe_for_a_pinned_model(catalog: Catalog) -> None:
    """A pinned model is never replaced by a described text fallback."""
    settings = _settings(reference_fallback="describe")
    plan = _plan(catalog, settings, provider=GPT2, references=("a.jpg",))
    assert plan.describe == []


@pytest.mark.parametrize("max_cost", [-1.0, float("nan")], ids=["negative", "nan"])
def test_invalid_cost_limit_is_refused(catalog: Catalog, max_cost: float) -> None:
    """A negative or NaN cost limit is an InvalidRequest, not a plan with every model over budget."""
    with pytest.raises(InvalidRequest, match="cost limit must be 0 or more"):
        _plan(catalog, max_cost=max_cost)


def test_zero_cost_limit_excludes_everything_as_over_budget(catalog: Catalog) -> None:
    """max_cost 0 is a valid limit: every paid model is left out as over budget."""
    plan = _plan(catalog, max_cost=0.0)
    assert plan.candidates == []
    assert all(e.over_budget for e in plan.excluded)


def test_model_listed_twice_is_planned_once(catalog: Catalog) -> None:
    """A [routing] list naming a model twice plans it once, at its first place."""
    settings = _settings(text=[GROK, SCHNELL, GROK])
    assert _refs(_plan(catalog, settings)) == [GROK, SCHNELL]


def test_describe_candidate_left_out_keeps_its_reason(catalog: Catalog) -> None:
    """A text model considered only for the describe fallback, and left out, says why."""
    settings = _settings(reference_fallback="describe")
    plan = _plan(catalog, settings, keys=("xai", "openai"), references=("a.jpg",) * 4)
    assert [c.ref for c in plan.describe] == [GROK]
    assert _reasons(plan)[SCHNELL] == "no key: set REPLICATE_API_TOKEN"
    assert [e.ref for e in plan.excluded].count(GROK) == 1


def test_deprecated_models_left_out_when_not_allowed(catalog: Catalog) -> None:
    """With allow_deprecated false, deprecated models are excluded naming their shutdown date."""
    settings = _settings(allow_unlisted=True, allow_deprecated=False)
    plan = _plan(catalog, settings)
    assert "openai:gpt-image-1.5" not in _refs(plan)
    assert _reasons(plan)["openai:gpt-image-1.5"] == "deprecated (shuts down 2026-12-01)"


def test_disabled_provider_is_left_out(catalog: Catalog) -> None:
    """A provider disabled in the configuration is left out with that reason, key or not."""
    settings = load_settings("development", providers={"xai": {"enabled": False}})
    plan = _plan(catalog, settings)
    assert GROK not in _refs(plan)
    assert _reasons(plan)[GROK] == "provider xai is disabled in the configuration"
