"""The worst case of a GPT-image size (what a cap is held to) never falls as the image grows or
the quality rises, and is never below what the formula the bill follows would charge."""

from __future__ import annotations

import itertools

import pytest

from imagerelay.catalog import load_catalog
from imagerelay.pricing import QUALITY_ORDER, estimate_cost, output_tokens

TOKEN_MODELS = sorted(
    m.ref
    for p in load_catalog().providers.values()
    for m in p.models.values()
    if m.price.basis == "tokens" and m.price.token_formula == "axis"
)


def explicit_sizes() -> list[tuple[int, int]]:
    """Every size a grid of 64-px steps offers within GPT-image 2's size rule, and the named ones."""
    sizes = {(1024, 1024), (1536, 1024), (1024, 1536), (1792, 1024), (1360, 768), (1920, 1088)}
    for w, h in itertools.product(range(512, 3841, 64), repeat=2):
        long, short = max(w, h), min(w, h)
        if long / short <= 3.0 and short <= 2160 and w * h >= 655_360:
            sizes.add((w, h))
    return sorted(sizes, key=lambda s: (s[0] * s[1], s))


@pytest.mark.parametrize("ref", TOKEN_MODELS)
def test_the_worst_case_grows_with_area_and_quality_and_covers_the_bill(ref: str) -> None:
    """Over ~1,600 explicit sizes and every quality: a larger area never has a lower worst case, a
    higher quality never a lower one, and the worst case is never below the formula's own figure."""
    price = load_catalog().model(ref).price
    qualities = [q for q in QUALITY_ORDER if q in price.qualities()]
    sizes = explicit_sizes()
    rate = price.output_image_per_mtok / 1e6
    worst: dict[tuple[str, tuple[int, int]], float] = {}
    for q, s in itertools.product(qualities, sizes):
        est = estimate_cost(price, quality=q, resolution=None, size=s)
        worst[q, s] = est.worst_per_image
        assert est.worst_per_image >= output_tokens(price, q, s) * rate - 1e-12, (q, s)
        assert est.worst_per_image >= est.per_image, (q, s)
    for q in qualities:
        by_area: dict[int, float] = {}
        for s in sizes:  # sorted by area: the most any size of a smaller area costs stays below
            area = s[0] * s[1]
            by_area[area] = max(by_area.get(area, 0.0), worst[q, s])
        ceiling = 0.0
        for area in sorted(by_area):
            smallest_here = min(worst[q, s] for s in sizes if s[0] * s[1] == area)
            assert smallest_here >= ceiling - 1e-12, (q, area)
            ceiling = max(ceiling, by_area[area])
    for lower, higher in itertools.pairwise(qualities):
        for s in sizes:
            assert worst[higher, s] >= worst[lower, s], (lower, higher, s)
