"""The gateway: its overhead per image over calling `Relay` directly, and 1,000 requests from 100
concurrent clients — compared in the same run with LiteLLM's proxy on the same emulator.

Everything asks one model, `openai:gpt-image-2` (1024x1024, b64_json), of one emulator running in
its own process (a real provider is another machine):

* direct — `AsyncOpenAI(base_url=emulator).images.generate`, the image decoded, nothing stored:
  what the provider call alone costs here;
* relay — `await relay.generate(prompt, provider="openai:gpt-image-2")` on one `Relay` in this
  process, with the ledger hook the CLI adds (verify, bytes first with fsync, metadata, receipt,
  ledger row);
* gateway — `POST /v1/images/generations` to `imagerelay serve` (its own process, no gateway key)
  over one keep-alive connection, the answer's b64_json decoded;
* litellm — the same request to LiteLLM's proxy (its own venv and process; a pass-through that
  stores nothing), when it is installed (`--litellm-venv`, default /work/litellm-venv).

Part 1 (overhead): `--rounds` × `--block` images per variant, one image of each variant in turn,
the order rotating every turn; the gateway's overhead is the median of gateway − relay over the
turns (neighbours in time share the machine's load, so it mostly cancels). The gateway also
reports its own share in a Server-Timing header (its time minus the time inside Relay.generate).

Part 2 (load): `--requests` requests (1,000) from `--clients` (100) concurrent clients, each with
its own connection, against the gateway and then LiteLLM, the emulator adding `--latency` seconds
(0.25) to each answer as a provider would; errors, p50/p99 latency, throughput, and the peak RSS
of the server process (VmHWM).

    python bench/gateway.py            # full run
    python bench/gateway.py --quick    # short run
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import KEYS, Stats, emulator_settings, print_machine, reexec_with_steady_malloc, table, verdict

PROMPT = "a lighthouse on a cliff at dusk"
#: Both servers authenticate each request (LiteLLM refuses to start without a master key).
GATEWAY_KEY = "irk_bench_" + "7" * 32
LITELLM_KEY = "sk-bench-" + "5" * 48
AUTH_GW = {"authorization": f"Bearer {GATEWAY_KEY}"}
AUTH_LL = {"authorization": f"Bearer {LITELLM_KEY}"}
MODEL = "openai:gpt-image-2"
TARGET_MS = 2.0

_SERVE_EMULATOR = """
import sys, time
from imagerelay.emulator import Emulator
emu = Emulator(keys=None, latency=float(sys.argv[1])).start(0)
print(emu.port, flush=True)
sys.stdin.read()
emu.stop()
"""


@contextlib.contextmanager
def emulator_process(latency: float) -> Iterator[Any]:
    """An emulator in a child process; yields an object with `base_url(provider)` and `port`."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVE_EMULATOR, str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    port = int(proc.stdout.readline())

    class Handle:
        def base_url(self, provider: str) -> str:
            return f"http://127.0.0.1:{port}/{provider}/v1"

    try:
        yield Handle()
    finally:
        proc.stdin.close()
        proc.wait(10)


def _wait_for(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server at {url} did not start:\n{log.read_text()[-3000:]}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def gateway_process(emu: Any, workdir: Path) -> Iterator[tuple[str, int]]:
    """`imagerelay serve` pointed at `emu`; yields (base URL, pid)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMAGERELAY_")}
    for p, key in KEYS.items():
        env[f"IMAGERELAY_PROVIDERS__{p.upper()}__BASE_URL"] = emu.base_url(p)
        env[f"IMAGERELAY_PROVIDERS__{p.upper()}__MAX_REQUESTS_PER_MINUTE"] = "1000000"
        env[{"xai": "XAI_API_KEY", "openai": "OPENAI_API_KEY", "replicate": "REPLICATE_API_TOKEN"}[p]] = key
    env["IMAGERELAY_BUDGET__MAX_COST_PER_REQUEST"] = "10"
    from imagerelay.gateway.keys import hash_key

    env["IMAGERELAY_GATEWAY__KEYS"] = json.dumps({"bench": {"hash": hash_key(GATEWAY_KEY)}})
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "gateway.log"
    port = _free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "imagerelay.cli", "serve", "--port", str(port), "--env", "development"],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url + "/readyz", proc, log)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(60)


@contextlib.contextmanager
def litellm_process(emu: Any, venv: Path, workdir: Path) -> Iterator[tuple[str, int] | None]:
    """LiteLLM's proxy serving `gpt-image-2` from the emulator's OpenAI API; None if not installed."""
    binary = venv / "bin" / "litellm"
    if not binary.exists():
        yield None
        return
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: gpt-image-2\n"
        "    litellm_params:\n"
        "      model: openai/gpt-image-2\n"
        f"      api_base: {emu.base_url('openai')}\n"
        f"      api_key: {KEYS['openai']}\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
        "  num_retries: 0\n"
    )
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no download of the price list at start
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOG": "ERROR",
        "LITELLM_MASTER_KEY": LITELLM_KEY,
    }
    log = workdir / "litellm.log"
    port = _free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(binary),
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--num_workers",
                "1",
            ],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url + "/health/liveliness", proc, log, timeout=300)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def peak_rss_mib(pid: int) -> float:
    """VmHWM of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# -- part 1: overhead per image ----------------------------------------------------------------


async def part1(emu: Any, gw: str, ll: str | None, root: Path, rounds: int, block: int) -> None:
    import httpx
    from openai import AsyncOpenAI

    from imagerelay.ledger import Ledger
    from imagerelay.relay import Relay

    out = root / "relay"
    out.mkdir()
    ledger = Ledger.open(out)
    relay = Relay(emulator_settings(emu), keys=KEYS, out_dir=out, on_receipt=[ledger.record_receipt])
    await relay.open()
    direct = AsyncOpenAI(base_url=emu.base_url("openai"), api_key=KEYS["openai"], max_retries=0)
    http = httpx.AsyncClient(timeout=60)
    body = {"prompt": PROMPT, "model": MODEL}
    ll_body = {"prompt": PROMPT, "model": "gpt-image-2"}

    async def v_direct() -> None:
        r = await direct.images.generate(prompt=PROMPT, model="gpt-image-2")
        assert base64.b64decode(r.data[0].b64_json or "")  # type: ignore[index]

    async def v_relay() -> None:
        receipt = await relay.generate(PROMPT, provider=MODEL)
        assert receipt.images

    own: list[float] = []
    inside: list[float] = []

    async def v_gateway() -> None:
        r = await http.post(gw + "/v1/images/generations", json=body, headers=AUTH_GW)
        assert r.status_code == 200, r.text[:300]
        assert base64.b64decode(r.json()["data"][0]["b64_json"])
        timing = dict(part.strip().split(";dur=") for part in r.headers["server-timing"].split(","))
        own.append((float(timing["total"]) - float(timing["relay"])) / 1e3)
        inside.append(float(timing["relay"]) / 1e3)

    async def v_litellm() -> None:
        assert ll is not None
        r = await http.post(ll + "/v1/images/generations", json=ll_body, headers=AUTH_LL)
        assert r.status_code == 200, r.text[:300]
        assert base64.b64decode(r.json()["data"][0]["b64_json"])

    variants: dict[str, Callable[[], Awaitable[None]]] = {
        "direct": v_direct,
        "relay": v_relay,
        "gateway": v_gateway,
    }
    if ll is not None:
        variants["litellm"] = v_litellm
    for fn in variants.values():  # warm up: connections, imports, first-call caches
        for _ in range(3):
            await fn()
    own.clear()
    inside.clear()
    per: dict[str, list[float]] = {name: [] for name in variants}
    overhead: list[float] = []
    ll_overhead: list[float] = []
    names = list(variants)
    # One image per variant in turn, the order rotating every time: on a machine shared with
    # other work, neighbours in time see the same load, so per-image differences cancel most of it.
    for r in range(rounds * block):
        order = names[r % len(names) :] + names[: r % len(names)]
        times: dict[str, float] = {}
        for name in order:
            start = time.perf_counter()
            await variants[name]()
            times[name] = time.perf_counter() - start
            per[name].append(times[name])
        overhead.append(times["gateway"] - times["relay"])
        if "litellm" in times:
            ll_overhead.append(times["litellm"] - times["direct"])
    await http.aclose()
    await direct.close()
    await relay.aclose()
    ledger.close()

    rows = [[name, *Stats(v).ms(2)] for name, v in per.items()]
    print(f"\n## Part 1: per image, {rounds * block} images per variant, interleaved one by one\n")
    print(table(["variant", "median ms/image", "IQR", "range"], rows))
    o = Stats(overhead)
    print(
        f"\ngateway − relay, image by image: median {o.median * 1e3:.2f} ms "
        f"(IQR {o.q1 * 1e3:.2f}–{o.q3 * 1e3:.2f}, range {o.min * 1e3:.2f}–{o.max * 1e3:.2f}); "
        f"target ≤ {TARGET_MS} ms: {verdict(o.median * 1e3, TARGET_MS)}"
    )
    g = Stats(own)
    print(
        f"the gateway's own time per request (Server-Timing: total − relay, {g.n} requests): median "
        f"{g.median * 1e3:.2f} ms (IQR {g.q1 * 1e3:.2f}–{g.q3 * 1e3:.2f}); the rest of gateway − relay is "
        "HTTP on both sides and the hops between processes"
    )
    print(
        f"Relay.generate inside the gateway: median {statistics.median(inside) * 1e3:.2f} ms "
        f"(in this process: {statistics.median(per['relay']) * 1e3:.2f} ms)"
    )
    if ll_overhead:
        lo = Stats(ll_overhead)
        print(
            f"litellm − direct, image by image: median {lo.median * 1e3:.2f} ms "
            f"(range {lo.min * 1e3:.2f}–{lo.max * 1e3:.2f})"
        )


# -- part 2: 1,000 requests from 100 clients -----------------------------------------------------


async def load(
    url: str, body: dict[str, Any], headers: dict[str, str], requests: int, clients: int
) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    queue = list(range(requests))

    async def client() -> None:
        async with httpx.AsyncClient(timeout=300) as http:
            while queue:
                queue.pop()
                start = time.perf_counter()
                try:
                    r = await http.post(url + "/v1/images/generations", json=body, headers=headers)
                    if r.status_code != 200 or not r.json()["data"][0]["b64_json"]:
                        errors.append(f"HTTP {r.status_code}: {r.text[:120]}")
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - start
    lat = sorted(latencies)
    return {
        "errors": errors,
        "p50": statistics.median(lat),
        "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        "wall": wall,
        "rps": len(lat) / wall,
    }


def part2(args: argparse.Namespace, root: Path, venv: Path) -> None:
    results: list[list[str]] = []
    with emulator_process(args.latency) as emu:
        with gateway_process(emu, root / "load-gw") as (gw, pid):
            res = asyncio.run(
                load(gw, {"prompt": PROMPT, "model": MODEL}, AUTH_GW, args.requests, args.clients)
            )
            rss = peak_rss_mib(pid)
        results.append(_row("imagerelay serve", res, rss))
        with litellm_process(emu, venv, root / "load-ll") as ll:
            if ll is not None:
                url, pid = ll
                body = {"prompt": PROMPT, "model": "gpt-image-2"}
                res = asyncio.run(load(url, body, AUTH_LL, args.requests, args.clients))
                results.append(_row("litellm proxy", res, peak_rss_mib(pid)))
    print(
        f"\n## Part 2: {args.requests} requests, {args.clients} concurrent clients, "
        f"emulator latency {args.latency} s\n"
    )
    print(table(["server", "errors", "p50", "p99", "requests/s", "peak RSS"], results))


def _row(name: str, res: dict[str, Any], rss: float) -> list[str]:
    if res["errors"]:
        print(f"{name}: {len(res['errors'])} errors, first: {res['errors'][0]}")
    return [
        name,
        str(len(res["errors"])),
        f"{res['p50'] * 1e3:.0f} ms",
        f"{res['p99'] * 1e3:.0f} ms",
        f"{res['rps']:.1f}",
        f"{rss:.0f} MiB",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--block", type=int, default=25)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.25)
    parser.add_argument("--litellm-venv", type=Path, default=Path("/work/litellm-venv"))
    parser.add_argument("--skip-load", action="store_true", help="part 1 only")
    args = parser.parse_args()
    reexec_with_steady_malloc()  # the emulator (a child) inherits it: its threads draw alike
    if args.quick:
        args.rounds, args.block, args.requests = 4, 10, 300
    print_machine()
    venv = args.litellm_venv
    if not (venv / "bin" / "litellm").exists():
        print(f"# LiteLLM is not installed in {venv}: its columns are left out")
    else:
        version = subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import importlib.metadata as m; print(m.version('litellm'))",
            ],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        print(f"# LiteLLM {version} from {venv}")
    root = Path(tempfile.mkdtemp(prefix="imagerelay-bench-gw-"))
    try:
        with (
            emulator_process(0.0) as emu,
            gateway_process(emu, root / "gw") as (gw, _),
            litellm_process(emu, venv, root / "ll") as ll,
        ):
            asyncio.run(part1(emu, gw, ll[0] if ll else None, root, args.rounds, args.block))
        if not args.skip_load:
            part2(args, root, venv)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
