"""P4: the cost of failover when the first model is down.

Routing for every relay: text = [xai:grok-imagine-image, openai:gpt-image-2.6-flare]. Variants:

* healthy — xAI answers; the image comes from xai.
* openai-only — routing is just the OpenAI model: the same model the failover relays end up on,
  so `failover − openai-only` is the cost of the dead model itself.
* down-503 — xAI is a second emulator scripted with `Fault(status=503, times=None)`.
* down-closed — xAI's base URL is a closed port on 127.0.0.1 (connection refused).

Steady state: each relay is reused; its first request (retries, then cooldown) happens in the
warm-up, so the measured requests are "after the first": the plan should skip the cooling model.
Rounds of blocks, the order of variants alternating between rounds; the extra time is taken per
round (failover median − openai-only median). The emulator's request log proves that no request
reaches the dead model after the first.

First request: a fresh Relay per trial (so no cooldown yet), trials interleaved across variants.
The script restarts itself with glibc's MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ raised (see
`_common.STEADY_MALLOC`): each relay talks to the emulator over its own connection, served by its
own thread, and with the defaults those threads draw at speeds a few ms apart.
Retry settings: attempts=3, backoff_initial=0.01 s, backoff_max=0.05 s, jitter=0.25 (two sleeps,
≈0.01 and ≈0.02 s); the defaults (0.5 s initial) would add ≈1.5–1.9 s of sleeping instead.

    python bench/failover.py            # full run
    python bench/failover.py --quick    # short run
    python bench/failover.py --nodelay  # the same with TCP_NODELAY on the emulator's sockets
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    KEYS,
    STEADY_MALLOC,
    Stats,
    emulator_settings,
    print_machine,
    reexec_with_steady_malloc,
    table,
    verdict,
)

PROMPT = "a lighthouse on a cliff at dusk"
FIRST, FALLBACK = "xai:grok-imagine-image", "openai:gpt-image-2.6-flare"
TARGET_MS = 10.0
RETRY = {"attempts": 3, "backoff_initial": 0.01, "backoff_max": 0.05, "jitter": 0.25, "cooldown": 3600.0}
VARIANTS = ("healthy", "openai-only", "down-503", "down-closed")


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Setup:
    def __init__(self, healthy: Any, down: Any, root: Path) -> None:
        self.healthy, self.down, self.root = healthy, down, root
        self.dead_url = f"http://127.0.0.1:{closed_port()}/xai/v1"
        self.count = 0

    def relay(self, variant: str) -> Any:
        from imagerelay.relay import Relay

        routing = {"text": [FALLBACK] if variant == "openai-only" else [FIRST, FALLBACK]}
        providers: dict[str, dict[str, Any]] = {}
        if variant == "down-503":
            providers["xai"] = {"base_url": self.down.base_url("xai")}
        elif variant == "down-closed":
            providers["xai"] = {"base_url": self.dead_url}
        settings = emulator_settings(self.healthy, routing=routing, retry=RETRY, providers=providers)
        self.count += 1
        out = self.root / f"{variant}-{self.count}"
        return Relay(settings, keys=KEYS, out_dir=out)


async def first_requests(setup: Setup, trials: int) -> dict[str, list[tuple[float, Any]]]:
    got: dict[str, list[tuple[float, Any]]] = {v: [] for v in VARIANTS}
    for t in range(trials):
        order = VARIANTS if t % 2 == 0 else tuple(reversed(VARIANTS))
        for variant in order:
            relay = setup.relay(variant)
            await relay.open()  # the HTTP client, not part of a request
            try:
                t0 = time.perf_counter()
                receipt = await relay.generate(PROMPT)
                got[variant].append((time.perf_counter() - t0, receipt))
            finally:
                await relay.aclose()
    return got


async def steady(
    setup: Setup, rounds: int, block: int
) -> tuple[dict[str, list[list[float]]], dict[str, int]]:
    relays = {v: setup.relay(v) for v in VARIANTS}
    served: dict[str, int] = {}
    times: dict[str, list[list[float]]] = {v: [] for v in VARIANTS}
    try:
        for relay in relays.values():
            await relay.open()
            await relay.generate(PROMPT)  # the first request: retries, then the cooldown starts
            await relay.generate(PROMPT)  # warm (the fallback's SDK client exists now)
        dead_before = len(setup.down.requests_for("xai.generations"))
        for r in range(rounds):
            order = VARIANTS if r % 2 == 0 else tuple(reversed(VARIANTS))
            for variant in order:
                relay = relays[variant]
                blk = []
                for _ in range(block):
                    t0 = time.perf_counter()
                    receipt = await relay.generate(PROMPT)
                    blk.append(time.perf_counter() - t0)
                    served[
                        f"{variant}: {receipt.provider}:{receipt.model}, attempts {len(receipt.attempts)}"
                    ] = 1
                times[variant].append(blk)
            for d in setup.root.iterdir():
                for p in d.iterdir():
                    p.unlink()
        served["requests that reached the 503 xAI after the first request"] = (
            len(setup.down.requests_for("xai.generations")) - dead_before
        )
    finally:
        for relay in relays.values():
            await relay.aclose()
    return times, served


def report_first(got: dict[str, list[tuple[float, Any]]]) -> None:
    base = Stats([t for t, _ in got["openai-only"]])
    rows = []
    for variant, results in got.items():
        s = Stats([t for t, _ in results])
        receipt = results[-1][1]
        waits = Stats([sum(a.wait_s for a in r.attempts) for _, r in results])
        outcomes = ", ".join(f"{a.provider} {a.outcome}" for a in receipt.attempts)
        rows.append(
            [
                variant,
                len(results),
                *s.ms(1),
                f"{(s.median - base.median) * 1e3:.1f}",
                f"{waits.median * 1e3:.1f}",
                outcomes,
            ]
        )
    print("\nFirst request on a fresh Relay (per trial; open() excluded):")
    print(
        table(
            [
                "variant",
                "trials",
                "median ms",
                "IQR ms",
                "min–max ms",
                "extra vs openai-only ms",
                "backoff slept ms",
                "attempts",
            ],
            rows,
        )
    )


def report_steady(times: dict[str, list[list[float]]], served: dict[str, int]) -> None:
    def med(blocks: list[list[float]]) -> list[float]:
        return [statistics.median(b) for b in blocks]

    ref = med(times["openai-only"])
    healthy = med(times["healthy"])
    rows = []
    for variant, blocks in times.items():
        s = Stats([t for b in blocks for t in b])
        extra = Stats([m - r for m, r in zip(med(blocks), ref, strict=True)])
        vs_healthy = Stats([m - h for m, h in zip(med(blocks), healthy, strict=True)])
        target = ""
        if variant.startswith("down"):
            target = f"≤{TARGET_MS:.0f} ms: {verdict(extra.median * 1e3, TARGET_MS)}"
        rows.append(
            [
                variant,
                *s.ms(2),
                f"{extra.median * 1e3:+.2f} ({extra.ms(2)[2]})",
                f"{vs_healthy.median * 1e3:+.2f}",
                target,
            ]
        )
    print(f"\nRequests after the first, one reused Relay per variant ({len(ref)} rounds):")
    print(
        table(
            [
                "variant",
                "median ms",
                "IQR ms",
                "min–max ms",
                "extra vs openai-only ms (min–max over rounds)",
                "vs healthy ms",
                "target",
            ],
            rows,
        )
    )
    for line, value in served.items():
        print(f"  {line}" + (f": {value}" if line.startswith("requests") else ""))


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="a short run")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--block", type=int, default=None)
    ap.add_argument("--trials", type=int, default=None, help="first-request trials per variant")
    ap.add_argument(
        "--default-malloc", action="store_true", help="do not restart with the steady malloc settings"
    )
    ap.add_argument(
        "--nodelay",
        action="store_true",
        help="experiment: set TCP_NODELAY on the emulator's sockets (its handler's "
        "disable_nagle_algorithm), to see what the emulator's Nagle/delayed-ACK stall costs",
    )
    args = ap.parse_args()
    if not args.default_malloc:
        reexec_with_steady_malloc()
    rounds = args.rounds or (4 if args.quick else 20)
    block = args.block or (5 if args.quick else 10)
    trials = args.trials or (4 if args.quick else 15)

    from imagerelay.emulator import Emulator, Fault

    if args.nodelay:
        from imagerelay.emulator import server

        server._RequestHandler.disable_nagle_algorithm = True
    print_machine()
    print(
        f"P4 failover: {rounds} rounds × {block} requests per variant; {trials} first-request trials; "
        f"retry {RETRY}"
    )
    malloc = " ".join(f"{k}={os.environ[k]}" for k in STEADY_MALLOC if k in os.environ)
    nodelay = "on" if args.nodelay else "as shipped"
    print(f"malloc: {malloc or 'glibc defaults'}; emulator TCP_NODELAY: {nodelay}")
    root = Path(tempfile.mkdtemp(prefix="imagerelay-failover-"))
    try:
        with Emulator(keys=KEYS) as healthy, Emulator(keys=KEYS) as down:
            down.script("xai.generations", Fault(status=503, times=None))
            setup = Setup(healthy, down, root)
            got = await first_requests(setup, trials)
            report_first(got)
            times, served = await steady(setup, rounds, block)
            report_steady(times, served)
            for emu in (healthy, down):
                if emu.errors:
                    print("emulator errors:", *emu.errors, sep="\n")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
