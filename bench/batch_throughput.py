"""Batch throughput: 200 items through the emulator at 0.5 s latency and a 10 request/s limit.

The ideal is the rate limit itself: 10 items/s (one request per item), i.e. the last request
starts 19.9 s after the first and ends 0.5 s later. Target: at least 0.9 × the ideal rate, and
zero failures.

Method: the emulator runs in its own process (its image drawing must not compete with the batch
for the GIL: a real provider is another machine), with 0.5 s added to every answer. The batch runs
in this process exactly as `imagerelay batch` does — one Relay, `run_batch`, the ledger, receipts,
embedded metadata, fsyncs — with `[providers.xai] max_requests_per_minute = 600` and
`--concurrency 16` (enough in flight to cover 0.5 s at 10/s). Items/s is measured from the first
item started to the last one finished; each run gets a fresh output directory. The runs are
repeated and the median is reported, with the range.

    python bench/batch_throughput.py              # 5 runs of 200 items
    python bench/batch_throughput.py --runs 1 --items 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RATE_PER_S = 10.0
LATENCY_S = 0.5
TARGET = 0.9

_SERVE = """
import sys
from imagerelay.emulator import Emulator
emu = Emulator(keys=None, latency=float(sys.argv[1])).start(0)
print(emu.port, flush=True)
sys.stdin.read()  # serve until the parent closes our stdin
emu.stop()
"""


@contextlib.contextmanager
def emulator_process(latency: float) -> Iterator[str]:
    """An emulator in a child process; yields its root URL."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE, str(latency)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores · {cpu} · Python {platform.python_version()} · {platform.system()}"


def write_manifest(path: Path, items: int) -> Path:
    path.write_text("".join(json.dumps({"prompt": f"catalogue item {i:04}"}) + "\n" for i in range(items)))
    return path


async def one_run(root: str, workdir: Path, items: int, concurrency: int) -> dict[str, Any]:
    from imagerelay.batch import ItemOutcome, run_batch
    from imagerelay.ledger import Ledger
    from imagerelay.manifest import load_manifest
    from imagerelay.relay import Relay
    from imagerelay.settings import load_settings

    settings = load_settings(
        "development",
        providers={"xai": {"base_url": f"{root}/xai/v1", "max_requests_per_minute": RATE_PER_S * 60}},
        routing={"text": ["xai:grok-imagine-image"]},
        budget={"max_cost_per_request": None, "max_cost_per_batch": None},
    )
    manifest = load_manifest(write_manifest(workdir / "catalogue.jsonl", items))
    out = workdir / "out"
    times: list[float] = []

    class Clock:
        """A reporter that only notes when each item ends."""

        def start(self, total: int, already_done: int, spent_usd: float) -> None:
            times.append(time.perf_counter())

        def item_finished(self, outcome: ItemOutcome, spent_usd: float) -> None:
            times.append(time.perf_counter())

        def close(self) -> None:
            pass

    with Ledger.open(out) as ledger:
        relay = Relay(settings, keys={"xai": "xai-bench"}, out_dir=out, on_receipt=[ledger.record_receipt])
        async with relay:
            summary = await run_batch(manifest, relay, ledger, concurrency=concurrency, reporter=Clock())
    elapsed = times[-1] - times[0]
    return {
        "elapsed": elapsed,
        "rate": summary.done / elapsed,
        "done": summary.done,
        "failed": summary.failed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    # The ideal: requests start 1/rate apart, the last one answers LATENCY_S after it starts.
    ideal_elapsed = (args.items - 1) / RATE_PER_S + LATENCY_S
    ideal_rate = RATE_PER_S
    print(f"# {machine()}")
    print(
        f"# {args.items} items, latency {LATENCY_S} s, limit {RATE_PER_S:g} req/s, "
        f"concurrency {args.concurrency}; ideal {ideal_rate:g} items/s ({ideal_elapsed:.1f} s)"
    )
    rates: list[float] = []
    failures = 0
    with emulator_process(LATENCY_S) as root:
        for run in range(1, args.runs + 1):
            with tempfile.TemporaryDirectory(prefix="imagerelay-bench-") as tmp:
                result = asyncio.run(one_run(root, Path(tmp), args.items, args.concurrency))
            rates.append(result["rate"])
            failures += result["failed"]
            print(
                f"run {run}: {result['done']} done, {result['failed']} failed in {result['elapsed']:.2f} s "
                f"→ {result['rate']:.2f} items/s ({result['rate'] / ideal_rate:.3f} × ideal)",
                flush=True,
            )
    median = statistics.median(rates)
    ratio = median / ideal_rate
    print(
        f"median {median:.2f} items/s = {ratio:.3f} × ideal (range {min(rates):.2f}–{max(rates):.2f}); "
        f"failures {failures}; target ≥ {TARGET} × ideal and 0 failures: "
        + ("met" if ratio >= TARGET and failures == 0 else "MISSED")
    )


if __name__ == "__main__":
    main()
