"""The library's front door: `generate()` for scripts, `agenerate()` for async code (Jupyter too)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from .errors import UserError
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
    """Generate images for one request, save them and record them in the output directory's
    ledger; returns the receipt.

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
    """`agenerate` for scripts: runs its own event loop. Inside a running one (Jupyter, async
    code) it raises `UserError`: there, `await imagerelay.agenerate(...)` instead."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop running: the normal case for a script
        pass
    else:  # checked before the coroutine exists, so none is left un-awaited
        raise UserError(
            "imagerelay.generate() cannot run inside a running event loop (Jupyter, async code): "
            "use `await imagerelay.agenerate(...)` there"
        )
    return asyncio.run(agenerate(prompt, env=env, out_dir=out_dir, max_cost=max_cost, **fields))
