"""The library's front door: imagerelay.generate() for scripts, agenerate() for async code."""

from __future__ import annotations

from pathlib import Path

import imagerelay
from imagerelay.imaging import probe


def test_generate_is_a_plain_function_for_scripts(tmp_path: Path) -> None:
    """imagerelay.generate() runs its own loop and returns a receipt whose images are on disk."""
    receipt = imagerelay.generate("a red fox", env="sandbox", out_dir=tmp_path, n=2, aspect_ratio="16:9")
    assert isinstance(receipt, imagerelay.Receipt)
    assert len(receipt.images) == 2
    for image in receipt.images:
        assert Path(image.path).parent == tmp_path
        assert probe(Path(image.path).read_bytes()).width == image.width
    assert receipt.images[0].width > receipt.images[0].height


async def test_agenerate_runs_inside_an_event_loop(tmp_path: Path) -> None:
    """await imagerelay.agenerate() works from async code and honours a pinned provider."""
    receipt = await imagerelay.agenerate(
        "a red fox", env="sandbox", out_dir=tmp_path, provider="replicate:black-forest-labs/flux-schnell"
    )
    assert receipt.provider == "replicate"
    assert Path(receipt.images[0].path).is_file()
