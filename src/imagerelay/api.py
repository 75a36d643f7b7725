"""The library's front door for scripts: `generate()` and `agenerate()`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from .receipt import Receipt
from .relay import Relay
from .request import ImageRequest

__all__ = ["agenerate", "generate"]


async def agenerate(
    prompt: str | ImageRequest,
    *,
    env: str | None = None,
    out_dir: Path | str | None = None,
    max_cost: float | None = None,
    **fields: Any,
) -> Receipt:
    """Generate images for one request and save them; returns the receipt.

    `fields` are those of `ImageRequest` (references, n, size, aspect_ratio, seed, provider …).
    For many requests, open one `Relay` and call `relay.generate` on it instead.
    """
    async with Relay(env=env, out_dir=out_dir) as relay:
        return await relay.generate(prompt, max_cost=max_cost, **fields)


def generate(
    prompt: str | ImageRequest,
    *,
    env: str | None = None,
    out_dir: Path | str | None = None,
    max_cost: float | None = None,
    **fields: Any,
) -> Receipt:
    """Synchronous `agenerate` for scripts (not for use inside a running event loop)."""
    return asyncio.run(agenerate(prompt, env=env, out_dir=out_dir, max_cost=max_cost, **fields))
