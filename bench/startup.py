"""P2: start-up — `imagerelay --help` and one sandbox `imagerelay generate` end to end (served by
xAI as the sandbox routes it, and pinned to Gemini, whose SDK is the heaviest to import).

Every run is a fresh process. Method: rounds; in each round every command runs once, the order
alternating between rounds (A B C, then C B A), timed with `time.perf_counter` around
`subprocess.run` (so fork/exec and interpreter start are included, as a user sees them). Each
`generate` gets a fresh empty output directory (made outside the timing). When `hyperfine` is on
the PATH, a second table cross-checks with it (`-N`, 2 warm-ups). Then the import-time profile
(`-X importtime`) of the slowest command, and the phases of the generate path timed inside one
process.

    python bench/startup.py            # 20 rounds, hyperfine cross-check, import profiles
    python bench/startup.py --quick    # 10 rounds, no hyperfine
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Stats, print_machine, table, venv_bin, verdict

PROMPT = "a lighthouse on a cliff at dusk"
TARGETS = {"imagerelay --help": 0.25, "imagerelay generate --env sandbox": 1.0}


def commands(out: str) -> dict[str, list[str]]:
    py, cli = sys.executable, venv_bin("imagerelay")
    return {
        "python -c pass": [py, "-c", "pass"],
        "python -c 'import imagerelay'": [py, "-c", "import imagerelay"],
        "imagerelay --help": [cli, "--help"],
        "imagerelay generate --env sandbox": [cli, "generate", PROMPT, "--env", "sandbox", "--out", out],
        "imagerelay generate --env sandbox --provider gemini": [
            *(cli, "generate", PROMPT, "--env", "sandbox", "--provider", "gemini", "--out", out)
        ],
    }


def _env() -> dict[str, str]:
    env = dict(os.environ)
    for var in list(env):
        if var.startswith("IMAGERELAY_") or var.startswith("PYTHONPROFILEIMPORT"):
            del env[var]
    return env


def timed_rounds(rounds: int, work: Path) -> dict[str, list[float]]:
    names = list(commands(""))
    times: dict[str, list[float]] = {n: [] for n in names}
    env = _env()
    for r in range(rounds):
        order = names if r % 2 == 0 else list(reversed(names))
        for name in order:
            out = work / f"out-{r}-{len(times[name])}"
            cmd = commands(str(out))[name]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=work)
            elapsed = time.perf_counter() - t0
            if proc.returncode != 0:
                raise SystemExit(f"{name} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
            times[name].append(elapsed)
            shutil.rmtree(out, ignore_errors=True)
    return times


def report(times: dict[str, list[float]], title: str) -> None:
    floor = Stats(times["python -c pass"]).median
    rows = []
    for name, values in times.items():
        s = Stats(values)
        target = TARGETS.get(name)
        rows.append(
            [
                name,
                s.n,
                *s.ms(0),
                f"{(s.median - floor) * 1e3:.0f}",
                f"≤{target * 1e3:.0f} ms: {verdict(s.median, target)}" if target else "",
            ]
        )
    print(f"\n{title}")
    print(
        table(
            ["command", "runs", "median ms", "IQR ms", "min–max ms", "over `python -c pass` ms", "target"],
            rows,
        )
    )


def hyperfine(runs: int, work: Path) -> None:
    exe = shutil.which("hyperfine")
    if exe is None:
        print("\n(hyperfine not installed: no cross-check)")
        return
    out = work / "hf-out"
    cmds = commands(str(out))
    export = work / "hf.json"
    argv = [exe, "-N", "--warmup", "2", "--runs", str(runs), "--export-json", str(export), "--style", "none"]
    for name in (
        "imagerelay --help",
        "imagerelay generate --env sandbox",
        "imagerelay generate --env sandbox --provider gemini",
    ):
        argv += ["-n", name, " ".join(_quote(a) for a in cmds[name])]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=_env(), cwd=work)
    rows = []
    for result in json.loads(export.read_text())["results"]:
        rows.append(
            [
                result["command"],
                len(result["times"]),
                f"{result['mean'] * 1e3:.0f} ± {result['stddev'] * 1e3:.0f}",
                f"{result['median'] * 1e3:.0f}",
                f"{result['min'] * 1e3:.0f}–{result['max'] * 1e3:.0f}",
            ]
        )
    print(f"\nhyperfine cross-check (-N, 2 warm-ups, {runs} runs each, one command after the other):")
    print(table(["command", "runs", "mean ± σ ms", "median ms", "min–max ms"], rows))


def _quote(arg: str) -> str:
    return f"'{arg}'" if " " in arg else arg


_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)")


def import_profile(
    argv: list[str], runs: int, work: Path
) -> tuple[dict[str, float], dict[str, float], float]:
    """(median cumulative µs of depth-0 imports, median self µs summed per top-level package, total)."""
    cumul: dict[str, list[float]] = defaultdict(list)
    per_pkg: dict[str, list[float]] = defaultdict(list)
    totals = []
    env = _env()
    env["PYTHONPROFILEIMPORTTIME"] = "1"
    for i in range(runs):
        out = work / f"imp-{i}"
        args = [a if a != "{out}" else str(out) for a in argv]
        proc = subprocess.run(args, capture_output=True, env=env, cwd=work, check=True)
        shutil.rmtree(out, ignore_errors=True)
        pkg_self: dict[str, float] = defaultdict(float)
        total = 0.0
        for line in proc.stderr.decode().splitlines():
            m = _LINE.match(line)
            if not m:
                continue
            self_us, cum_us, indent, name = int(m[1]), int(m[2]), m[3], m[4]
            pkg_self[name.split(".")[0]] += self_us
            total += self_us
            if len(indent) <= 1:  # imported at the top level of the script or lazily in a function
                cumul[name].append(cum_us)
        for pkg, v in pkg_self.items():
            per_pkg[pkg].append(v)
        totals.append(total)
    top = {k: statistics.median(v) for k, v in cumul.items()}
    pkgs = {k: statistics.median(v) for k, v in per_pkg.items()}
    return top, pkgs, statistics.median(totals)


def show_imports(label: str, argv: list[str], runs: int, work: Path, n: int = 12) -> None:
    top, pkgs, total = import_profile(argv, runs, work)
    print(f"\nImport time of {label} (median of {runs} runs; total of all imports {total / 1e3:.0f} ms):")
    rows = [[name, f"{us / 1e3:.1f}"] for name, us in sorted(top.items(), key=lambda kv: -kv[1])[:n]]
    print(table(["top-level import (cumulative)", "ms"], rows))
    rows = [[name, f"{us / 1e3:.1f}"] for name, us in sorted(pkgs.items(), key=lambda kv: -kv[1])[:n]]
    print(table(["package (sum of its modules' own time)", "ms"], rows))
    names = ("PIL", "openai", "replicate", "google", "httpx", "pydantic", "rich")
    heavy = [p for p in names if p in pkgs]
    print(f"loaded: {', '.join(heavy) or 'none of ' + ', '.join(names)}")


_PHASES = r"""
import time
T = [("interpreter start (exec to first line)", time.monotonic())]
def mark(n): T.append((n, time.monotonic()))
import imagerelay.cli
mark("import imagerelay.cli")
import asyncio, sys
from imagerelay.ledger import Ledger
from imagerelay.relay import Relay
from imagerelay.request import ImageRequest
from imagerelay.settings import load_settings
mark("import relay, ledger (as generate does)")
settings = load_settings("sandbox", output={"dir": sys.argv[1]})
mark("load settings")
ledger = Ledger.open(settings.output.dir)
mark("open the ledger")
async def run():
    relay = Relay(settings, on_receipt=[ledger.record_receipt])
    mark("Relay() (catalog, keys)")
    await relay.open()
    mark("open: start the emulator")
    if sys.argv[3] != "auto":  # the SDK is imported by the first call: timed apart from the call
        relay.backend(sys.argv[3])._sdk()
        mark(f"create the {sys.argv[3]} SDK client (imports it)")
    await relay.generate(ImageRequest(prompt=sys.argv[2], provider=sys.argv[3]))
    mark("generate one image")
    await relay.aclose()
    mark("close: stop the emulator")
asyncio.run(run())
for n, t in T:
    print(f"{n}\t{t}")
"""


def phases(runs: int, work: Path, provider: str = "auto") -> None:
    got: dict[str, list[float]] = defaultdict(list)
    for i in range(runs):
        out = work / f"ph-{provider}-{i}"
        # time.monotonic is one system-wide clock on Linux: the child's marks and ours compare.
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-c", _PHASES, str(out), PROMPT, provider],
            capture_output=True,
            env=_env(),
            cwd=work,
            check=True,
        )
        ended = time.monotonic()
        shutil.rmtree(out, ignore_errors=True)
        prev = started
        for line in proc.stdout.decode().splitlines():
            name, at = line.split("\t")
            got[name].append(float(at) - prev)
            prev = float(at)
        got["interpreter exit (last line to process end)"].append(ended - prev)
    rows = [[name, *Stats(v).ms(1)] for name, v in got.items()]
    total = sum(Stats(v).median for v in got.values())
    rows.append(["sum of medians", f"{total * 1e3:.1f}", "", ""])
    # (the CLI adds argument parsing with typer and printing the result to these steps)
    which = "" if provider == "auto" else f" with --provider {provider}"
    print(f"\nPhases of the sandbox generate path{which} inside one process ({runs} fresh processes):")
    print(table(["phase", "median ms", "IQR ms", "min–max ms"], rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="10 rounds, no hyperfine, fewer profiles")
    ap.add_argument("--rounds", type=int, default=None)
    args = ap.parse_args()
    rounds = args.rounds or (10 if args.quick else 20)
    print_machine()
    print(f"P2 start-up: {rounds} rounds, every command once per round, order alternating; fresh processes")
    work = Path(tempfile.mkdtemp(prefix="imagerelay-startup-"))
    try:
        for cmd in commands(str(work / "warm")).values():  # warm the page cache and .pyc files
            subprocess.run(cmd, capture_output=True, env=_env(), cwd=work)
        times = timed_rounds(rounds, work)
        report(times, "Wall time per fresh process (interleaved loop):")
        if not args.quick:
            hyperfine(max(10, rounds // 2), work)
        prof_runs = 3 if args.quick else 7
        show_imports("`imagerelay --help`", [venv_bin("imagerelay"), "--help"], prof_runs, work)
        show_imports(
            "`imagerelay generate --env sandbox`",
            [venv_bin("imagerelay"), "generate", PROMPT, "--env", "sandbox", "--out", "{out}"],
            prof_runs,
            work,
        )
        gemini = ["generate", PROMPT, "--env", "sandbox", "--provider", "gemini", "--out", "{out}"]
        show_imports(
            "`imagerelay generate --env sandbox --provider gemini`",
            [venv_bin("imagerelay"), *gemini],
            prof_runs,
            work,
        )
        phases(prof_runs, work)
        phases(prof_runs, work, "gemini")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
