"""Estimates, pinned against figures computed by hand from the 2026-12 catalog audit
(`providers/*.toml` cite the sources): per image, per megapixel, per token; expected and worst."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from imagerelay.catalog import Catalog, load_catalog
from imagerelay.planner import Candidate, plan_request
from imagerelay.pricing import CostEstimate, Price, estimate_cost, input_image_tokens, output_tokens
from imagerelay.request import ImageRequest
from imagerelay.settings import load_settings
from tests.keys import outside_setting

TODAY = date(2026, 12, 1)
#: 40 characters: 10 prompt tokens ($0.00005 at $5 per million) on the token-billed models.
PROMPT = "a lighthouse on a cliff at dusk, in oils"
TEXT_USD = 10 * 5 / 1e6
MP = 1024 * 1024


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


def candidate(
    catalog: Catalog, model: str, refs: list[tuple[int, int]] | None = None, **req: Any
) -> Candidate:
    """The one candidate of a request pinned to `model`, with references of the given sizes."""
    refs = refs or []
    request = ImageRequest(
        prompt=PROMPT, provider=model, references=tuple(f"r{i}.png" for i in range(len(refs))), **req
    )
    plan = plan_request(
        request,
        load_settings("development", budget={"max_cost_per_request": None}),
        catalog,
        keys=("xai", "openai", "replicate", "gemini"),
        today=TODAY,
        reference_sizes=refs,
    )
    assert len(plan.candidates) == 1, plan.excluded
    return plan.candidates[0]


# (model, request, reference sizes, expected USD, how it was computed by hand)
GRID: list[tuple[str, dict[str, Any], list[tuple[int, int]], float, str]] = [
    # -- xAI: per image, by quality x resolution on 2.0, +$0.01 per input image --------------------
    ("xai:grok-imagine-image", {}, [], 0.02, "$0.02 per image"),
    ("xai:grok-imagine-image", {"n": 2}, [(800, 600), (800, 600)], 0.06, "2 x $0.02 + 2 inputs x $0.01"),
    ("xai:grok-imagine-image", {"size": "1792x1024"}, [], 0.02, "2k costs as 1k on 1.0"),
    ("xai:grok-imagine-image-2.0", {"resolution": "2k", "quality": "medium"}, [], 0.08, "2k medium"),
    ("xai:grok-imagine-image-2.0", {"size": "1792x1024", "quality": "medium"}, [], 0.08, "→ 2k medium"),
    ("xai:grok-imagine-image-2.0", {}, [], 0.04, "auto = low for a generation, at 1k"),
    ("xai:grok-imagine-image-2.0", {}, [(1024, 1024)], 0.07, "auto = medium for an edit: $0.06 + $0.01"),
    ("xai:grok-imagine-image-2.0", {"quality": "low", "resolution": "2k", "n": 3}, [], 0.18, "3 x $0.06"),
    # -- Gemini: per image by size tier, inputs per call on Pro --------------------------------------
    ("gemini:gemini-nano-banana-2.1", {"size": "1792x1024"}, [], 0.0504, "1792x1024 → 16:9 @2k"),
    ("gemini:gemini-3-pro-image", {}, [(800, 600)] * 2, 0.134 + 2 * 0.00112, "1k, 560 tokens per input"),
    # -- OpenAI: $30 per 1M output tokens, $8 per 1M image in, $5 per 1M text in -----------------
    # output tokens = ceil(f * round(f*short/long) * (2e6 + w*h) / 4e6), f = 16 / 48 / 96 / 144 / 192
    (
        "openai:gpt-image-2.6-flare",
        {"size": "1024x1024", "quality": "medium"},
        [],
        1756 * 30 / 1e6 + TEXT_USD,
        "48*48*3,048,576/4e6 = 1755.98 → 1756 tokens",
    ),
    ("openai:gpt-image-2", {"size": "1024x1024", "quality": "high"}, [], 7024 * 30 / 1e6 + TEXT_USD, "96*96"),
    ("openai:gpt-image-2", {"size": "1024x1024", "quality": "low"}, [], 196 * 30 / 1e6 + TEXT_USD, "16*16"),
    (
        "openai:gpt-image-2",
        {"size": "1536x1024", "quality": "high"},
        [],
        5488 * 30 / 1e6 + TEXT_USD,
        "96*64*3,572,864/4e6 = 5487.9 → 5488 (a wider image bills fewer tokens)",
    ),
    (
        "openai:gpt-image-2.6-sunburst",
        {"quality": "medium", "n": 2},
        [],
        2 * 1756 * 30 / 1e6 + TEXT_USD,
        "size auto, no reference: 1024x1024; the prompt is billed once per call",
    ),
    (
        "openai:gpt-image-2.5-sunburst",
        {"size": "1024x1024", "quality": "xhigh"},
        [],
        15804 * 30 / 1e6 + TEXT_USD,
        "144*144*3,048,576/4e6 = 15803.8 → 15804 (xhigh's factor is a safe guess)",
    ),
    (
        "openai:gpt-image-2",
        {},
        [(1600, 1200)],
        1372 * 30 / 1e6 + 765 * 8 / 1e6 + TEXT_USD,
        "quality medium sent; size auto with a landscape reference → 1536x1024 (48*32 → 1372 tokens); "
        "input 1600x1200 → 1024x768 → 2x2 tiles → 85 + 4*170 = 765 tokens",
    ),
    # -- Replicate: per image; FLUX.2 per megapixel (1 MP = 1024x1024, each image rounded up) ------
    ("replicate:black-forest-labs/flux-schnell", {"n": 6}, [], 0.018, "6 x $0.003 in calls of 4 + 2"),
    ("replicate:black-forest-labs/flux-kontext-pro", {}, [(1024, 1024)], 0.04, "$0.04 per image"),
    (
        "replicate:black-forest-labs/flux-2-pro",
        {"size": "1440x1440"},
        [(1024, 1024), (1024, 1024)],
        0.03 + 0.015 + 2 * 0.015,
        "2 MP: 1440x1440 = 1.98 MP → 2 MP ($0.03 first + $0.015); two 1 MP inputs at $0.015",
    ),
    ("replicate:black-forest-labs/flux-2-pro", {}, [], 0.03, "default 1 MP at 1:1: the first MP"),
    (
        "replicate:black-forest-labs/flux-2-pro",
        {"aspect_ratio": "16:9", "resolution": "2k"},
        [],
        0.03 + 2 * 0.015,
        "2k → 4 MP, capped at 2048 a side: 2048x1152 = 2.25 MP → 3 MP",
    ),
    (
        "replicate:black-forest-labs/flux-2-max",
        {},
        [(3000, 2000)],
        0.07 + 4 * 0.03,
        "1 MP out at $0.07; a 5.7 MP input is billed as the 4 MP it is resized to, at $0.03",
    ),
    (
        "replicate:black-forest-labs/flux-2-flex",
        {},
        [(500, 500), (500, 500)],
        0.06 + 2 * 0.06,
        "$0.06 per MP; each 0.24 MP input counts as 1 MP",
    ),
]


@pytest.mark.parametrize(
    ("model", "request_fields", "refs", "expected", "how"),
    GRID,
    ids=[f"{g[0]}-{i}" for i, g in enumerate(GRID)],
)
def test_estimate_matches_the_hand_computed_figure(
    catalog: Catalog,
    model: str,
    request_fields: dict[str, Any],
    refs: list[tuple[int, int]],
    expected: float,
    how: str,
) -> None:
    """The planner's estimate of each request is the figure computed by hand from the audit."""
    assert candidate(catalog, model, refs, **request_fields).estimate_usd == pytest.approx(expected, abs=1e-9)


def test_flux_2_pro_at_2_mp_is_asked_for_2_mp(catalog: Catalog) -> None:
    """The 2 MP grid entry is really the 2 MP tier on the wire, 1:1."""
    cand = candidate(catalog, "replicate:black-forest-labs/flux-2-pro", [(1024, 1024)] * 2, size="1440x1440")
    assert cand.params == {"aspect_ratio": "1:1", "resolution": "2 MP"}


def test_worst_case_covers_what_auto_may_choose(catalog: Catalog) -> None:
    """With size auto the estimate is the size auto most likely picks and the worst case the
    dearest size it may pick: a landscape reference is estimated at 1536x1024 by the formula, and
    held to 1024x1024's tokens scaled up to 1536x1024's area (the formula is unconfirmed)."""
    cand = candidate(catalog, "openai:gpt-image-2", [(1600, 1200)])
    assert cand.cost.per_image == pytest.approx(1372 * 30 / 1e6)
    assert cand.cost.worst_per_image == pytest.approx(2634 * 30 / 1e6)
    assert cand.worst_usd > cand.estimate_usd


def test_a_quality_nobody_chose_is_worst_at_the_highest() -> None:
    """A per-image price by quality with no quality sent and no documented auto: the worst case is
    the dearest quality; the prompt's worst case is one token per UTF-8 byte."""
    price = Price(basis="image", per_image=0.1, per_image_by={"low": 0.01, "medium": 0.05})
    cost = estimate_cost(price, quality=None, resolution=None, size=(1024, 1024))
    assert (cost.per_image, cost.worst_per_image) == (0.1, 0.1)
    tokens = Price(basis="tokens", output_image_per_mtok=30, input_text_per_mtok=5, token_formula="axis",
                   quality_factors={"low": 16, "medium": 48, "high": 96})  # fmt: skip
    cost = estimate_cost(tokens, quality=None, resolution=None, size=(1024, 1024), prompt="é" * 8)
    assert cost.per_image == pytest.approx(1756 * 30 / 1e6)
    assert cost.worst_per_image == pytest.approx(7024 * 30 / 1e6)
    assert cost.per_call == pytest.approx(2 * 5 / 1e6)
    assert cost.worst_call(0) == pytest.approx(16 * 5 / 1e6)


def test_token_formulas() -> None:
    """gpt-image-2's output tokens at 1024x1024 are the calculator's 196 / 1756 / 7024; the 1.x
    formula scales its 1024x1024 counts by area; an input image takes 85 + 170 per tile."""
    axis = Price(basis="tokens", token_formula="axis", quality_factors={"low": 16, "medium": 48, "high": 96})
    assert [output_tokens(axis, q, (1024, 1024)) for q in ("low", "medium", "high")] == [196, 1756, 7024]
    area = Price(basis="tokens", output_tokens_1024={"medium": 1056})
    assert output_tokens(area, "medium", (1536, 1024)) == 1584
    assert input_image_tokens(axis, (512, 512)) == 85 + 170
    assert input_image_tokens(axis, (4000, 1000)) == 85 + 170 * 4  # fitted to 2048x512: 4x1 tiles
    assert input_image_tokens(axis, (2048, 2048)) == 85 + 170 * 4  # short side to 768: 768x768
    assert input_image_tokens(axis, None) == 85 + 170 * 8


def test_cost_of_calls() -> None:
    """A call costs per_image x n + per_call; several calls pay per_call each."""
    cost = CostEstimate(per_image=0.02, per_call=0.01, worst_per_image=0.03, worst_per_call=0.01)
    assert cost.call(4) == pytest.approx(0.09)
    assert cost.total([4, 2]) == pytest.approx(0.14)
    assert cost.worst_total([4, 2]) == pytest.approx(0.2)
