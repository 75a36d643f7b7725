"""Batch memory: peak memory of a 500-item batch against a 50-item one. Target: ≤ 1.2×.

A batch must not hold its items' images, receipts or tasks: memory should not grow with the
manifest beyond the items themselves.

Method: each measurement is a fresh child process that runs one batch of N items (one image each)
exactly as `imagerelay batch` does — one Relay, `run_batch`, the ledger, `--concurrency 8` —
against an emulator in another process (no latency, no rate limit), and reports

* peak RSS (`resource.getrusage(RUSAGE_SELF).ru_maxrss`): everything the process ever held,
  interpreter and libraries included — what a user sees;
* peak Python heap (`tracemalloc`, in a separate child so its overhead does not inflate the RSS),
  traced from just before the batch starts: what the batch itself allocates.

Sizes are interleaved (50, 500, 500, 50, …) over several rounds; the ratio 500/50 is taken within
each round, and the median ratio is reported with its range.

    python bench/batch_memory.py                # 3 rounds
    python bench/batch_memory.py --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch_throughput import emulator_process, machine, write_manifest

SIZES = (50, 500)
TARGET = 1.2


async def _batch(root: str, workdir: Path, items: int) -> int:
    from imagerelay.batch import run_batch
    from imagerelay.ledger import Ledger
    from imagerelay.manifest import load_manifest
    from imagerelay.relay import Relay
    from imagerelay.settings import load_settings

    settings = load_settings(
        "development",
        providers={"xai": {"base_url": f"{root}/xai/v1", "max_requests_per_minute": None}},
        routing={"text": ["xai:grok-imagine-image"]},
        budget={"max_cost_per_request": None, "max_cost_per_batch": None},
    )
    manifest = load_manifest(write_manifest(workdir / "m.jsonl", items))
    out = workdir / "out"
    with Ledger.open(out) as ledger:
        relay = Relay(settings, keys={"xai": "xai-bench"}, out_dir=out, on_receipt=[ledger.record_receipt])
        async with relay:
            summary = await run_batch(manifest, relay, ledger, concurrency=8)
    return summary.done


def child(root: str, items: int, measure: str) -> None:
    """Run one batch and print {"done", "rss_mib" | "heap_mib"} as JSON."""
    import resource
    import tracemalloc

    # Everything a batch imports is imported first, so both sizes start from the same heap.
    import imagerelay.batch
    import imagerelay.imaging
    import imagerelay.ledger
    import imagerelay.manifest
    import imagerelay.relay  # noqa: F401

    with tempfile.TemporaryDirectory(prefix="imagerelay-mem-") as tmp:
        if measure == "heap":
            tracemalloc.start()
        done = asyncio.run(_batch(root, Path(tmp), items))
        result: dict[str, Any] = {"done": done}
        if measure == "heap":
            result["heap_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        else:
            result["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps(result))


def measure(root: str, items: int, what: str) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", root, str(items), what],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["done"] != items:
        raise SystemExit(f"only {result['done']} of {items} items were done")
    return float(result["rss_mib" if what == "rss" else "heap_mib"])


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"# {machine()}")
    ratios: dict[str, list[float]] = {"rss": [], "heap": []}
    values: dict[tuple[str, int], list[float]] = {}
    with emulator_process(0.0) as root:
        for round_ in range(1, args.rounds + 1):
            order = SIZES if round_ % 2 else tuple(reversed(SIZES))
            got: dict[tuple[str, int], float] = {}
            for what in ("rss", "heap"):
                for size in order:
                    got[(what, size)] = measure(root, size, what)
                    values.setdefault((what, size), []).append(got[(what, size)])
                ratios[what].append(got[(what, SIZES[1])] / got[(what, SIZES[0])])
            print(
                f"round {round_}: RSS {got[('rss', 50)]:.1f} → {got[('rss', 500)]:.1f} MiB "
                f"({ratios['rss'][-1]:.3f}×); heap {got[('heap', 50)]:.2f} → {got[('heap', 500)]:.2f} MiB "
                f"({ratios['heap'][-1]:.3f}×)",
                flush=True,
            )
    for what, label in (("rss", "peak RSS"), ("heap", "peak Python heap")):
        r = ratios[what]
        small, large = (statistics.median(values[(what, s)]) for s in SIZES)
        ratio = statistics.median(r)
        print(
            f"{label}: 50 items {small:.2f} MiB, 500 items {large:.2f} MiB; ratio median {ratio:.3f}× "
            f"(range {min(r):.3f}–{max(r):.3f}); target ≤ {TARGET}×: "
            + ("met" if ratio <= TARGET else "MISSED")
        )


if __name__ == "__main__":
    main()
