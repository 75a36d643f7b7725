"""The emulator's own speed: drawing one image, and starting and stopping the server.

These were timed tests once (drawing "under 50 ms", start "under 50 ms"); on a shared 2-core
machine a timed test fails whenever a neighbour is busy, so the numbers live here instead.
Method: after one warm-up, rounds; in each round every variant runs once (order reversed every
other round), timed with `time.perf_counter`; medians with IQR and range.

    python bench/emulator.py            # 30 rounds
    python bench/emulator.py --quick    # 10 rounds
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Stats, print_machine, table, verdict

from imagerelay.emulator import Emulator, draw

#: What the tests used to demand, kept as the targets.
TARGETS = {"draw 1024x1024 JPEG": 0.05, "draw 1024x1024 PNG": None, "Emulator.start()": 0.05}


def _start_stop() -> tuple[float, float]:
    emu = Emulator()
    t0 = time.perf_counter()
    emu.start()
    t1 = time.perf_counter()
    emu.stop()
    return t1 - t0, time.perf_counter() - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds = 10 if args.quick else 30
    print_machine()

    def jpeg() -> None:
        draw.render(prompt="a cat", model="grok-imagine-image", size=(1024, 1024))

    def png() -> None:
        draw.render(prompt="a cat", model="gpt-image-2", size=(1024, 1024), fmt="png")

    variants: dict[str, Callable[[], None]] = {"draw 1024x1024 JPEG": jpeg, "draw 1024x1024 PNG": png}
    times: dict[str, list[float]] = {name: [] for name in [*variants, "Emulator.start()", "Emulator.stop()"]}
    jpeg(), png(), _start_stop()  # warm-up: imports, fonts, first allocations
    for r in range(rounds):
        order = list(variants.items())
        for name, fn in order if r % 2 == 0 else reversed(order):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        started, stopped = _start_stop()
        times["Emulator.start()"].append(started)
        times["Emulator.stop()"].append(stopped)
    rows = []
    for name, values in times.items():
        stats = Stats(values)
        target = TARGETS.get(name)
        rows.append(
            [name, *stats.ms(), f"≤ {target * 1e3:.0f} ms: {verdict(stats.median, target)}" if target else ""]
        )
    print(f"{rounds} rounds")
    print(table(["what", "median ms", "IQR ms", "min–max ms", "target"], rows))


if __name__ == "__main__":
    main()
