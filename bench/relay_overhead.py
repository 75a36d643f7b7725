"""P1: per-image overhead of the relay versus a direct call plus a plain file write.

Against the in-process emulator (no latency), per image:

* xai baseline — one reused `httpx.AsyncClient` POSTs the body the xAI backend sends
  (`response_format=b64_json`) to `/v1/images/generations`, decodes the data URI, writes the bytes
  with `Path.write_bytes`.
* xai relay — `await relay.generate(prompt)` on one reused `Relay` (plan, call, verify, bytes
  first with fsync, metadata embedded, receipt JSON beside the image).
* openai baseline / relay — the same with `AsyncOpenAI.images.generate` (max_retries=0) and
  `relay.generate(prompt, provider="openai")`.

Method: rounds of blocks; in each round every variant runs `--block` images back to back, the order
of variants alternating between rounds (A B, then B A). The per-image ratio relay/baseline is taken
within each round (so machine noise largely cancels) and the table shows its median and range over
rounds. A second table times the relay's individual steps on the same image bytes, to say where the
extra time goes. `--profile` adds a cProfile of the relay variant.

    python bench/relay_overhead.py            # full run
    python bench/relay_overhead.py --quick    # short run
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import hashlib
import io
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import KEYS, ROOT, Stats, emulator_settings, print_machine, table, verdict

PROMPT = "a lighthouse on a cliff at dusk"
TARGET = 1.15

Step = Callable[[int], Awaitable[None]]


class Bench:
    """The variants, sharing one emulator; each writes into its own directory.

    Each baseline sends over the very client (and so the same keep-alive connection) its relay
    uses: the emulator serves each connection from its own thread, and on this machine the thread
    of the first connection it accepts draws images ~3 ms slower than the others (a glibc malloc
    arena effect: with MALLOC_ARENA_MAX=1 every thread is that slow). A spare connection made
    first takes that thread out of the measurement; the shared connection makes sure both sides of
    a ratio are drawn by the same thread whatever happens.
    """

    def __init__(self, emu: Any, root: Path, openai_too: bool) -> None:
        import httpx

        from imagerelay.relay import Relay

        self.emu = emu
        self.root = root
        self.dirs = {name: root / name for name in ("xai-base", "xai-relay", "openai-base", "openai-relay")}
        for d in self.dirs.values():
            d.mkdir()
        self.spare = httpx.AsyncClient()
        settings = emulator_settings(emu)
        self.relay = Relay(settings, keys=KEYS, out_dir=self.dirs["xai-relay"])
        self.orelay = Relay(settings, keys=KEYS, out_dir=self.dirs["openai-relay"])
        self.openai_too = openai_too
        self.xai_url = emu.base_url("xai") + "/images/generations"
        self.xai_body: dict[str, Any] = {}
        self.openai_kwargs: dict[str, Any] = {}
        self.http: Any = None
        self.oclient: Any = None

    async def setup(self) -> None:
        """Warm every variant up and copy the exact request bodies the relay sends (from its receipt)."""
        resp = await self.spare.post(
            self.xai_url,
            json={"model": "grok-imagine-image", "prompt": "spare", "n": 1},
            headers={"Authorization": f"Bearer {KEYS['xai']}"},
        )
        resp.raise_for_status()
        await self.relay.open()
        receipt = await self.relay.generate(PROMPT)
        sent = receipt.attempts[-1].sent
        assert sent["response_format"] == "b64_json", sent
        self.xai_body = dict(sent)
        self.http = self.relay._http  # a plain httpx.AsyncClient (pool limits, follow_redirects)
        await self.xai_base(0)
        if self.openai_too:
            import openai

            await self.orelay.open()
            receipt = await self.orelay.generate(PROMPT, provider="openai")
            self.openai_kwargs = dict(receipt.attempts[-1].sent)
            # The AsyncOpenAI the backend made (api_key, base_url, max_retries=0, timeout).
            self.oclient = self.orelay._backends["openai"]._client
            assert isinstance(self.oclient, openai.AsyncOpenAI)
            await self.openai_base(0)

    async def close(self) -> None:
        await self.relay.aclose()
        await self.orelay.aclose()
        await self.spare.aclose()

    def variants(self) -> list[tuple[str, str, Step]]:
        """(group, name, step) — the baseline first in each group."""
        out: list[tuple[str, str, Step]] = [
            ("xai", "baseline", self.xai_base),
            ("xai", "relay", self.xai_relay),
        ]
        if self.openai_too:
            out += [("openai", "baseline", self.openai_base), ("openai", "relay", self.openai_relay)]
        return out

    async def xai_base(self, i: int) -> None:
        resp = await self.http.post(
            self.xai_url, json=self.xai_body, headers={"Authorization": f"Bearer {KEYS['xai']}"}
        )
        resp.raise_for_status()
        b64 = resp.json()["data"][0]["b64_json"]
        data = base64.b64decode(b64.split(",", 1)[1] if b64.startswith("data:") else b64)
        (self.dirs["xai-base"] / f"{i}.jpg").write_bytes(data)

    async def xai_relay(self, i: int) -> None:
        await self.relay.generate(PROMPT)

    async def openai_base(self, i: int) -> None:
        resp = await self.oclient.images.generate(**self.openai_kwargs)
        data = base64.b64decode(resp.data[0].b64_json)
        (self.dirs["openai-base"] / f"{i}.png").write_bytes(data)

    async def openai_relay(self, i: int) -> None:
        await self.orelay.generate(PROMPT, provider="openai")

    def clean(self) -> None:
        for d in self.dirs.values():
            for p in d.iterdir():
                if p.is_file():
                    p.unlink()


async def run_rounds(bench: Bench, rounds: int, block: int) -> dict[tuple[str, str], list[list[float]]]:
    """times[(group, name)][round] = per-image seconds of that round's block."""
    variants = bench.variants()
    times: dict[tuple[str, str], list[list[float]]] = {(g, n): [] for g, n, _ in variants}
    clock = time.perf_counter
    for r in range(rounds):
        order = variants if r % 2 == 0 else list(reversed(variants))
        for group, name, step in order:
            block_times = []
            for i in range(block):
                t0 = clock()
                await step(r * block + i)
                block_times.append(clock() - t0)
            times[(group, name)].append(block_times)
        bench.clean()
    return times


def report(times: dict[tuple[str, str], list[list[float]]]) -> None:
    groups = sorted({g for g, _ in times}, key=lambda g: ["xai", "openai"].index(g))
    rows = []
    for g in groups:
        base, rel = times[(g, "baseline")], times[(g, "relay")]
        b_all = Stats([t for blk in base for t in blk])
        r_all = Stats([t for blk in rel for t in blk])
        ratios = Stats(
            [statistics.median(rb) / statistics.median(bb) for bb, rb in zip(base, rel, strict=True)]
        )
        extra = Stats(
            [statistics.median(rb) - statistics.median(bb) for bb, rb in zip(base, rel, strict=True)]
        )
        rows.append([g, "baseline", *b_all.ms(2), "", "", ""])
        rows.append(
            [
                g,
                "relay",
                *r_all.ms(2),
                f"{ratios.median:.3f} ({ratios.plain()[1]}; {ratios.plain()[2]})",
                f"{extra.median * 1e3:.2f} ({extra.ms(2)[2]})",
                verdict(ratios.median, TARGET),
            ]
        )
    print(f"\nPer image, ms ({len(next(iter(times.values())))} rounds):")
    print(
        table(
            [
                "api",
                "variant",
                "median ms",
                "IQR ms",
                "min–max ms",
                "ratio relay/base (IQR; min–max)",
                "extra ms (min–max)",
                f"≤{TARGET}×",
            ],
            rows,
        )
    )


def step_costs(bench: Bench, reps: int) -> None:
    """Time each of the relay's per-image steps on real bytes from the emulator, interleaved."""
    from imagerelay.imaging import embed_metadata, probe
    from imagerelay.store import Store, atomic_write

    receipt = None
    samples: dict[str, bytes] = {}
    for path in (
        sorted(bench.dirs["xai-relay"].glob("*.jpg"))[:1]
        + sorted(bench.dirs["openai-relay"].glob("*.png"))[:1]
    ):
        samples[path.suffix[1:]] = path.read_bytes()
    if not samples:
        return
    from imagerelay.receipt import Receipt

    rjson = next(bench.dirs["xai-relay"].glob("*.json"), None)
    if rjson is not None:
        receipt = Receipt.model_validate_json(rjson.read_bytes())
    scratch = bench.root / "steps"
    scratch.mkdir(exist_ok=True)
    store = Store(scratch)
    fields = {"provider": "xai", "model": "grok-imagine-image", "prompt": PROMPT, "receipt": "x.json"}
    infos = {k: probe(v) for k, v in samples.items()}
    steps: dict[str, Callable[[], object]] = {}
    for kind, data in samples.items():
        b64 = base64.b64encode(data).decode()
        steps[f"{kind}: base64 decode"] = lambda b64=b64: base64.b64decode(b64, validate=True)
        steps[f"{kind}: probe (full decode)"] = lambda data=data: probe(data)
        steps[f"{kind}: sha256"] = lambda data=data: hashlib.sha256(data).hexdigest()
        steps[f"{kind}: plain write_bytes"] = lambda data=data, kind=kind: (
            scratch / f"p.{kind}"
        ).write_bytes(data)
        steps[f"{kind}: atomic_write (fsync ×2)"] = lambda data=data, kind=kind: atomic_write(
            scratch / f"a.{kind}", data
        )
        steps[f"{kind}: embed_metadata (bytes)"] = lambda data=data, kind=kind: embed_metadata(
            data, infos[kind], description=PROMPT, fields=fields
        )
    steps["Store.ensure (mkdir + probe file)"] = store.ensure
    if receipt is not None:
        steps["receipt JSON dump"] = lambda: receipt.model_dump_json(indent=2).encode()
    steps["Relay.plan"] = lambda: bench.relay.plan(PROMPT)
    times: dict[str, list[float]] = {k: [] for k in steps}
    clock = time.perf_counter
    for r in range(reps):
        names = list(steps) if r % 2 == 0 else list(reversed(steps))
        for name in names:
            t0 = clock()
            steps[name]()
            times[name].append(clock() - t0)
    rows = [[name, *Stats(v).ms(3)] for name, v in times.items()]
    print(f"\nSteps of one relay image, timed alone ({reps} interleaved reps):")
    print(table(["step", "median ms", "IQR ms", "min–max ms"], rows))
    print(
        "Counts per image are in the in-situ tables above (probe: the backend's check of the bytes, "
        "then store.save_delivered; atomic_write: the image, the image with metadata, the receipt)."
    )


class _Timed:
    """Adds up the time spent in one function (outermost calls only) through a wrapper."""

    def __init__(self) -> None:
        self.total = 0.0
        self.calls = 0
        self.depth = 0

    def wrap(self, fn: Callable[..., Any], is_async: bool) -> Callable[..., Any]:
        # Plain functions (not callable objects), so that wrapped methods still bind `self`.
        clock = time.perf_counter

        if is_async:

            async def awrapper(*a: Any, **kw: Any) -> Any:
                t0 = clock()
                try:
                    return await fn(*a, **kw)
                finally:
                    self.total += clock() - t0
                    self.calls += 1

            return awrapper

        def wrapper(*a: Any, **kw: Any) -> Any:
            self.depth += 1
            t0 = clock()
            try:
                return fn(*a, **kw)
            finally:
                self.depth -= 1
                if self.depth == 0:
                    self.total += clock() - t0
                    self.calls += 1

        return wrapper


async def in_situ(bench: Bench, group: str, n: int) -> None:
    """Where one relay image's time goes, measured inside real `generate` calls.

    The functions are wrapped for the duration only (module attributes are looked up at call time,
    so the relay, store and backends call the wrappers); wrapping adds ~1 µs per call.
    """
    import os

    from imagerelay import imaging, relay, run, store
    from imagerelay.backends.xai import XAIBackend

    targets: list[tuple[Any, str, bool]] = [
        (imaging, "probe", False),
        (store, "atomic_write", False),
        (os, "fsync", False),
        (store.Store, "ensure", False),
        (store.Store, "write_receipts", False),
        (relay.Relay, "plan", False),
        (run, "save_delivered", False),
        (relay.Relay, "_load_references", True),
    ]
    if group == "xai":
        targets.append((XAIBackend, "_post", True))
    else:
        from imagerelay.backends.openai import OpenAIBackend

        targets.append((OpenAIBackend, "_sdk", False))
    originals = [(obj, name, getattr(obj, name)) for obj, name, _ in targets]
    timers: dict[str, _Timed] = {}
    for obj, name, is_async in targets:
        timer = _Timed()
        label = f"{getattr(obj, '__name__', obj)}.{name}".replace("imagerelay.", "")
        timers[label] = timer
        setattr(obj, name, timer.wrap(getattr(obj, name), is_async))
    whole: list[float] = []
    per_call: dict[str, list[float]] = {label: [] for label in timers}
    try:
        for _ in range(n):
            before = {label: t.total for label, t in timers.items()}
            t0 = time.perf_counter()
            if group == "xai":
                await bench.relay.generate(PROMPT)
            else:
                await bench.orelay.generate(PROMPT, provider="openai")
            whole.append(time.perf_counter() - t0)
            for label, t in timers.items():
                per_call[label].append(t.total - before[label])
        if group == "xai":  # the baseline's own steps, for comparison
            base = []
            for i in range(n):
                t0 = time.perf_counter()
                await bench.xai_base(i)
                base.append(time.perf_counter() - t0)
    finally:
        for obj, name, fn in originals:
            setattr(obj, name, fn)
    rows = [["relay.generate (whole)", "1", *Stats(whole).ms(2)[:2], f"{statistics.fmean(whole) * 1e3:.2f}"]]
    for label, t in timers.items():
        if t.calls:
            s = Stats(per_call[label])
            rows.append(
                [label, f"{t.calls / n:g}", *s.ms(2)[:2], f"{statistics.fmean(per_call[label]) * 1e3:.2f}"]
            )
    if group == "xai":
        rows.append(
            [
                "(baseline, whole, same loop)",
                "",
                *Stats(base).ms(2)[:2],
                f"{statistics.fmean(base) * 1e3:.2f}",
            ]
        )
    print(
        f"\n{group}: inside {n} relay.generate calls, ms per image (nested: save_delivered and "
        "write_receipts contain probe/atomic_write, atomic_write contains fsync; both run in a "
        "worker thread):"
    )
    print(table(["function", "calls/image", "median", "IQR", "mean"], rows))


async def profile(bench: Bench, n: int) -> None:
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        await bench.relay.generate(PROMPT)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("cumulative").print_stats(35)
    print(f"\ncProfile of {n} relay.generate calls (cumulative; the emulator is not profiled):")
    print(out.getvalue())


async def run_one(mode: str, args: argparse.Namespace, rounds: int, block: int, openai_too: bool) -> None:
    from _common import ProcessEmulator

    from imagerelay.emulator import Emulator

    print(
        f"\n## emulator: {mode} ({'same process, a server thread' if mode == 'thread' else 'child process'})"
    )
    root = Path(tempfile.mkdtemp(prefix="imagerelay-bench-"))
    emulator: Any = Emulator(keys=KEYS) if mode == "thread" else ProcessEmulator(keys=KEYS)
    try:
        with emulator as emu:
            bench = Bench(emu, root, openai_too)
            try:
                await bench.setup()
                times = await run_rounds(bench, rounds, block)
                report(times)
                n = 20 if args.quick else 100
                await in_situ(bench, "xai", n)
                if openai_too:
                    await in_situ(bench, "openai", n // 2)
                if mode == "thread":
                    step_costs(bench, 30 if args.quick else 100)
                if args.profile:
                    await profile(bench, n)
            finally:
                await bench.close()
            if emu.errors:
                print("emulator errors:", *emu.errors, sep="\n")
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="a short run (4 rounds of 5)")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--block", type=int, default=None)
    ap.add_argument("--no-openai", action="store_true", help="xAI only")
    ap.add_argument(
        "--emulator",
        choices=("thread", "process", "both"),
        default="both",
        help="run the emulator in this process (as the tests do) or in a child process",
    )
    ap.add_argument("--profile", action="store_true", help="also cProfile the relay")
    args = ap.parse_args()
    rounds = args.rounds or (4 if args.quick else 20)
    block = args.block or (5 if args.quick else 10)
    openai_too = not args.no_openai and (ROOT / "src/imagerelay/backends/openai.py").exists()
    print_machine()
    print(f"P1 relay overhead: {rounds} rounds × {block} images per variant, order alternating per round")
    for mode in ("thread", "process") if args.emulator == "both" else (args.emulator,):
        await run_one(mode, args, rounds, block, openai_too)


if __name__ == "__main__":
    asyncio.run(main())
