"""Shared helpers for the benchmark scripts: machine facts, statistics, tables, emulator relays.

Benchmarks here are scripts, not tests. On a small, shared machine absolute times drift from run
to run, so each script interleaves its variants (A B A B …), repeats them, and reports medians with
ranges, and ratios computed within one round.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def machine() -> dict[str, str]:
    """nproc, CPU model, Python version, OS and the date, for the README's Machine section."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def print_machine() -> None:
    m = machine()
    print(f"# {m['date']} · {m['nproc']} cores · {m['cpu']} · Python {m['python']} · {m['os']}")


class Stats:
    """Median, quartiles and extremes of a sample."""

    def __init__(self, values: Sequence[float]) -> None:
        if not values:
            raise ValueError("no values")
        v = sorted(values)
        self.n = len(v)
        self.median = statistics.median(v)
        if len(v) >= 4:
            q = statistics.quantiles(v, n=4, method="inclusive")
            self.q1, self.q3 = q[0], q[2]
        else:
            self.q1, self.q3 = v[0], v[-1]
        self.min, self.max = v[0], v[-1]

    def ms(self, digits: int = 1) -> tuple[str, str, str]:
        """(median, IQR, min–max) formatted in milliseconds."""
        f = f"{{:.{digits}f}}"
        return (
            f.format(self.median * 1e3),
            f"{f.format(self.q1 * 1e3)}–{f.format(self.q3 * 1e3)}",
            f"{f.format(self.min * 1e3)}–{f.format(self.max * 1e3)}",
        )

    def plain(self, digits: int = 3) -> tuple[str, str, str]:
        """(median, IQR, min–max) as plain numbers (ratios)."""
        f = f"{{:.{digits}f}}"
        return (
            f.format(self.median),
            f"{f.format(self.q1)}–{f.format(self.q3)}",
            f"{f.format(self.min)}–{f.format(self.max)}",
        )


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (so it can be pasted into bench/README.md as is)."""
    cells = [[str(h) for h in headers], *[[str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(cells[0]), sep, *[line(r) for r in cells[1:]]])


def verdict(value: float, target: float) -> str:
    return "met" if value <= target else "MISSED"


def emulator_settings(emulator: Any, env: str = "development", **overrides: Any) -> Any:
    """Settings of `env` with every provider pointed at `emulator`, no rate limit, no budget cap.

    `providers={"xai": {"base_url": …}}` overrides one provider (e.g. point it at a dead port).
    """
    from imagerelay.settings import load_settings

    providers: dict[str, dict[str, Any]] = {
        p: {"base_url": emulator.base_url(p), "timeout": 10.0, "max_requests_per_minute": None}
        for p in ("xai", "openai", "replicate")
    }
    providers["replicate"]["poll_interval"] = 0.05  # a knob of Replicate's settings alone
    for name, values in overrides.pop("providers", {}).items():
        providers.setdefault(name, {}).update(values)
    retry = {"backoff_initial": 0.01, "backoff_max": 0.05, **overrides.pop("retry", {})}
    budget = overrides.pop("budget", {"max_cost_per_request": None})
    return load_settings(env, providers=providers, retry=retry, budget=budget, **overrides)


KEYS = {"xai": "xai-bench", "openai": "sk-bench", "replicate": "r8_bench"}


def venv_bin(name: str) -> str:
    """A tool from the interpreter's own environment (the venv running this script)."""
    return str(Path(sys.executable).parent / name)


def _serve_child(conn: Any, keys: dict[str, str] | None, latency: float = 0.0) -> None:
    """Child process: run an emulator, send its port, serve until told to stop."""
    from imagerelay.emulator import Emulator

    emu = Emulator(keys=keys, latency=latency).start(0)
    conn.send(emu.port)
    with contextlib.suppress(EOFError):
        conn.recv()
    emu.stop()


class ProcessEmulator:
    """The same `Emulator`, run in a child process so its image drawing does not compete with the
    process being measured for the GIL (a real provider is another machine). No fault scripting.
    """

    host = "127.0.0.1"

    def __init__(self, keys: dict[str, str] | None = None, latency: float = 0.0) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve_child, args=(child, keys, latency), daemon=True)
        self.port = 0

    def __enter__(self) -> ProcessEmulator:
        self._proc.start()
        if not self._conn.poll(30):
            raise RuntimeError("the emulator process did not start")
        self.port = int(self._conn.recv())
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._conn.send("stop")
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)

    def base_url(self, provider: str) -> str:
        return f"http://{self.host}:{self.port}/{provider}/v1"

    @property
    def errors(self) -> list[str]:
        return []


#: glibc malloc settings that stop it from handing big freed blocks back to the kernel (and
#: page-faulting them in again on the next image). Without them the emulator's connection threads
#: draw at different speeds (up to ~3 ms per 1024² image apart, depending on which malloc arena a
#: thread got), which shows up as a false difference between relays that use different connections.
STEADY_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "268435456", "MALLOC_TRIM_THRESHOLD_": "268435456"}


def reexec_with_steady_malloc() -> None:
    """Restart this script with `STEADY_MALLOC` in the environment (glibc reads it at start-up)."""
    if all(os.environ.get(k) == v for k, v in STEADY_MALLOC.items()):
        return
    env = {**os.environ, **STEADY_MALLOC}
    os.execve(sys.executable, [sys.executable, *sys.argv], env)
