"""One client of `bench/concurrency.py`, run in a process of its own: N images, C at a time.

    python bench/_clients.py VARIANT --base-url URL --key KEY --out DIR [--provider xai|openai]

VARIANT is `raw` (AsyncOpenAI + decode + write), `litellm` (`litellm.aimage_generation` + decode +
write; run it with LiteLLM's own interpreter) or `imagerelay` (`Relay.generate`: verify, bytes
first with fsync, metadata, receipt, ledger row). Prints one JSON object: wall seconds and the
process's CPU seconds (user + system, every thread) for the timed images only, after a warm-up
that opens every connection. Imports nothing from imagerelay unless VARIANT is `imagerelay`, so
that LiteLLM's interpreter (which has no imagerelay) can run it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import json
import resource
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

PROMPT = "a lighthouse on a cliff at dusk"
MODELS = {"xai": "grok-imagine-image", "openai": "gpt-image-2"}

One = Callable[[int], Awaitable[None]]


def _decode(b64: str) -> bytes:
    return base64.b64decode(b64.split(",", 1)[1] if b64.startswith("data:") else b64)


def _extra(provider: str) -> dict[str, Any]:
    # xAI answers with a URL unless asked for base64; GPT-image always answers base64 (and refuses
    # the parameter).
    return {"response_format": "b64_json"} if provider == "xai" else {}


async def raw(args: argparse.Namespace) -> tuple[One, Callable[[], Awaitable[None]]]:
    import openai

    client = openai.AsyncOpenAI(api_key=args.key, base_url=args.base_url, max_retries=0)
    model, ext = MODELS[args.provider], "jpg" if args.provider == "xai" else "png"

    async def one(i: int) -> None:
        resp = await client.images.generate(model=model, prompt=PROMPT, n=1, **_extra(args.provider))
        assert resp.data
        assert resp.data[0].b64_json
        (args.out / f"{i}.{ext}").write_bytes(_decode(resp.data[0].b64_json))

    return one, client.close


async def litellm(args: argparse.Namespace) -> tuple[One, Callable[[], Awaitable[None]]]:
    import litellm as ll

    ll.telemetry = False
    model, ext = MODELS[args.provider], "jpg" if args.provider == "xai" else "png"

    async def one(i: int) -> None:
        resp = await ll.aimage_generation(
            model=f"openai/{model}",
            prompt=PROMPT,
            n=1,
            api_base=args.base_url,
            api_key=args.key,
            num_retries=0,
            # LiteLLM refuses `response_format` for a model it does not know to take it: pass it
            # through as the SDK does, in the body.
            extra_body=_extra(args.provider),
        )
        b64 = resp.data[0].b64_json
        assert b64
        (args.out / f"{i}.{ext}").write_bytes(_decode(b64))

    async def close() -> None:
        pass

    return one, close


async def imagerelay(args: argparse.Namespace) -> tuple[One, Callable[[], Awaitable[None]]]:
    from imagerelay.relay import Relay
    from imagerelay.settings import load_settings

    provider = args.provider
    base = args.base_url.rsplit("/", 2)[0]  # …/xai/v1 → the emulator's root
    settings = load_settings(
        "development",
        providers={
            p: {"base_url": f"{base}/{p}/v1", "max_requests_per_minute": None, "timeout": 30.0}
            for p in MODELS
        },
        budget={"max_cost_per_request": None},
    )
    relay = Relay(settings, keys={provider: args.key}, out_dir=args.out)
    await relay.open()
    ref = f"{provider}:{MODELS[provider]}"

    async def one(i: int) -> None:
        await relay.generate(PROMPT, provider=ref)

    return one, relay.aclose


async def run(one: One, n: int, concurrency: int, start: int = 0) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def gated(i: int) -> None:
        async with gate:
            await one(i)

    await asyncio.gather(*(gated(start + i) for i in range(n)))


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("variant", choices=("raw", "litellm", "imagerelay"))
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--provider", choices=tuple(MODELS), default="xai")
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=50)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    make = {"raw": raw, "litellm": litellm, "imagerelay": imagerelay}[args.variant]
    one, close = await make(args)
    # Warm up with every connection the timed run will use, then time the run alone.
    await run(one, args.concurrency, args.concurrency, start=10_000)
    gc.collect()
    cpu0, t0 = _cpu(), time.perf_counter()
    await run(one, args.n, args.concurrency)
    wall, cpu = time.perf_counter() - t0, _cpu() - cpu0
    await close()
    images = [p for p in args.out.iterdir() if p.suffix in (".jpg", ".png")]
    print(json.dumps({"variant": args.variant, "wall_s": wall, "cpu_s": cpu, "files": len(images)}))


if __name__ == "__main__":
    asyncio.run(main())
