"""P5: 200 images, 50 at a time, the emulator answering in 0.2 s — against a raw SDK call and LiteLLM.

Variants, each in a fresh process of its own (`bench/_clients.py`), all against one emulator in
another process (its drawing must not compete with the client for the GIL), the same model and
the same wire API:

* raw — `AsyncOpenAI.images.generate` + base64 decode + `Path.write_bytes` (no verification, no
  fsync, no receipt): the least any client can do.
* litellm — `litellm.aimage_generation` + decode + write, in LiteLLM's own venv
  (`--litellm-venv`, never a project dependency).
* imagerelay — `Relay.generate`: plan, call, verify the image decodes, bytes first with fsync,
  metadata embedded, receipt beside it (fsynced), ledger row.
* NAME (with `--tree NAME=SRC`, repeatable) — imagerelay from another source tree, e.g. an older
  commit unpacked with `git archive`, to compare versions in one run.

Each client warms up with one request per connection (50), then times 200 images: wall time, and
the process's CPU time (user + system, every thread) per image. Rounds rotate the order of the
variants; ratios are taken within a round, so the machine's load, which drifts, largely cancels.

    python bench/concurrency.py                 # xAI's API (JPEG), 7 rounds
    python bench/concurrency.py --provider openai --rounds 5
    python bench/concurrency.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import KEYS, ProcessEmulator, Stats, print_machine, reexec_with_steady_malloc, table

CLIENT = Path(__file__).resolve().parent / "_clients.py"
LITELLM_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the price list at start
    "LITELLM_TELEMETRY": "False",
    "LITELLM_LOG": "ERROR",
}


def run_client(
    variant: str, args: argparse.Namespace, emu: ProcessEmulator, root: Path, rnd: int
) -> dict[str, Any]:
    out = root / f"{variant}-{rnd}"
    python = sys.executable
    env = {**os.environ, **LITELLM_ENV}
    name = variant
    if variant == "litellm":
        python = str(args.litellm_venv / "bin" / "python")
    elif variant in args.trees:
        name = "imagerelay"
        env["PYTHONPATH"] = str(args.trees[variant])
    cmd = [
        python,
        str(CLIENT),
        name,
        "--base-url",
        emu.base_url(args.provider),
        "--key",
        KEYS[args.provider],
        "--out",
        str(out),
        "--provider",
        args.provider,
        "-n",
        str(args.n),
        "--concurrency",
        str(args.concurrency),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    expected = args.n + args.concurrency
    if result["files"] != expected:
        raise RuntimeError(f"{variant} wrote {result['files']} images, not {expected}")
    if name == "imagerelay":
        receipts = len(list(out.glob("*.json")))
        if receipts != expected:
            raise RuntimeError(f"{variant} wrote {receipts} receipts, not {expected}")
    shutil.rmtree(out, ignore_errors=True)
    return result


def report(results: dict[str, list[dict[str, Any]]], n: int, args_trees: dict[str, Path]) -> None:
    rows = []
    for variant, runs in results.items():
        wall = Stats([r["wall_s"] for r in runs])
        cpu = Stats([r["cpu_s"] / n for r in runs])
        rows.append(
            [
                variant,
                f"{wall.median:.2f}",
                f"{wall.min:.2f}–{wall.max:.2f}",
                f"{cpu.median * 1e3:.2f}",
                f"{cpu.min * 1e3:.2f}–{cpu.max * 1e3:.2f}",
            ]
        )
    print(f"\n{n} images per run, {len(next(iter(results.values())))} runs per variant:")
    print(table(["variant", "wall s (median)", "wall range", "CPU ms/image (median)", "CPU range"], rows))
    ratios = []
    for a, b in (
        ("imagerelay", "litellm"),
        ("imagerelay", "raw"),
        ("litellm", "raw"),
        *(("imagerelay", label) for label in args_trees),
    ):
        if a not in results or b not in results:
            continue
        pairs = list(zip(results[a], results[b], strict=True))
        wall = Stats([x["wall_s"] / y["wall_s"] for x, y in pairs])
        cpu = Stats([x["cpu_s"] / y["cpu_s"] for x, y in pairs])
        ratios.append(
            [
                f"{a} / {b}",
                f"{wall.median:.3f}",
                f"{wall.min:.3f}–{wall.max:.3f}",
                f"{cpu.median:.3f}",
                f"{cpu.min:.3f}–{cpu.max:.3f}",
            ]
        )
    print("\nRatios within a round:")
    print(table(["ratio", "wall (median)", "wall range", "CPU (median)", "CPU range"], ratios))
    if "imagerelay" in results and "litellm" in results:
        walls = [
            x["wall_s"] <= y["wall_s"] for x, y in zip(results["imagerelay"], results["litellm"], strict=True)
        ]
        cpus = [
            x["cpu_s"] <= y["cpu_s"] for x, y in zip(results["imagerelay"], results["litellm"], strict=True)
        ]
        print(
            f"\nimagerelay at or under LiteLLM: wall in {sum(walls)} of {len(walls)} rounds, "
            f"CPU in {sum(cpus)} of {len(cpus)} rounds"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--provider", choices=("xai", "openai"), default="xai")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--latency", type=float, default=0.2)
    ap.add_argument("--litellm-venv", type=Path, default=Path("/work/litellm-venv"))
    ap.add_argument(
        "--tree",
        action="append",
        default=[],
        metavar="NAME=SRC",
        help="also run imagerelay from another source tree's src/ (e.g. an older commit), as NAME",
    )
    ap.add_argument("--quick", action="store_true", help="3 rounds")
    args = ap.parse_args()
    reexec_with_steady_malloc()
    rounds = 3 if args.quick else args.rounds
    variants = ["raw", "imagerelay"]
    if (args.litellm_venv / "bin" / "python").exists():
        variants.insert(1, "litellm")
    else:
        print(f"LiteLLM not found in {args.litellm_venv}: left out")
    args.trees = {}
    for spec in args.tree:
        label, _, src = spec.partition("=")
        args.trees[label] = Path(src)
        variants.append(label)
    print_machine()
    print(
        f"P5: {args.n} images, {args.concurrency} at a time, emulator latency {args.latency} s, "
        f"provider {args.provider}, {rounds} rounds, variants {', '.join(variants)} (order rotating)"
    )
    root = Path(tempfile.mkdtemp(prefix="imagerelay-p5-"))
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    try:
        with ProcessEmulator(keys=KEYS, latency=args.latency) as emu:
            for rnd in range(rounds):
                order = variants[rnd % len(variants) :] + variants[: rnd % len(variants)]
                for variant in order:
                    res = run_client(variant, args, emu, root, rnd)
                    results[variant].append(res)
                    print(
                        f"  round {rnd + 1} {variant:<10} wall {res['wall_s']:.2f} s, "
                        f"CPU {res['cpu_s'] / args.n * 1e3:.2f} ms/image",
                        flush=True,
                    )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report(results, args.n, args.trees)


if __name__ == "__main__":
    main()
