"""Nothing paid is lost at the gateway: a client that hangs up mid-generation, a retry with the
same Idempotency-Key, SIGTERM with requests in flight (and its deadline), and bodies over the caps."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from imagerelay.emulator import Emulator
from imagerelay.emulator.wire import Fault
from imagerelay.gateway.keys import hash_key

from . import images
from .conftest import TEST_KEYS
from .gatewaykit import GatewayProcess, emulator_env, gateway, keys_env, ledger_rows


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """An emulator of its own for each test (each also has its own gateway)."""
    emulator = Emulator(keys=TEST_KEYS, url_ttl=60, marked=False).start()
    try:
        yield emulator
    finally:
        emulator.stop()


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Poll `check` until it holds (the timeout only keeps a broken run from hanging)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting: {what}")
        time.sleep(0.02)


def generated(out_dir: Path) -> list[tuple[str, int, str]]:
    """(receipt id, images, gateway key) of every ledger row."""
    if not (out_dir / "imagerelay.sqlite3").exists():
        return []
    return [
        (r, int(n), k)
        for r, n, k in ledger_rows(out_dir, "SELECT receipt_id, images, gateway_key FROM generations")
    ]


def test_client_that_hangs_up_mid_generation_loses_nothing(emu: Emulator, tmp_path: Path) -> None:
    """A client that times out while the provider works: the image is still saved and recorded,
    its receipt can be fetched, and asking again with the same Idempotency-Key returns that image
    without a second provider call."""
    emu.script("xai.generations", Fault(latency=1.5))
    with gateway(tmp_path, emulator_env(emu), "--env", "development") as gw:
        url = f"{gw.url}/v1/images/generations"
        body = {"prompt": "a slow fox", "model": "xai"}
        headers = {"idempotency-key": "order-17"}
        with pytest.raises(httpx.TimeoutException):
            httpx.post(url, json=body, headers=headers, timeout=httpx.Timeout(10, read=0.3))
        wait_until(lambda: bool(generated(gw.out_dir)), "the abandoned generation to be recorded")
        [(receipt_id, n, key)] = generated(gw.out_dir)
        assert (n, key) == (1, "local")
        [(path,)] = ledger_rows(gw.out_dir, "SELECT path FROM images WHERE receipt_id = ?", (receipt_id,))
        assert (gw.out_dir / path).is_file()
        assert httpx.get(f"{gw.url}/v1/receipts/{receipt_id}").json()["status"] == "succeeded"
        again = httpx.post(url, json=body, headers=headers, timeout=60)
        assert again.status_code == 200
        assert again.headers["x-imagerelay-receipt"] == receipt_id
        assert len(emu.requests_for("xai.generations")) == 1
        reused = httpx.post(url, json={**body, "prompt": "another"}, headers=headers, timeout=60)
        assert reused.status_code == 400
        assert reused.json()["error"]["code"] == "idempotency_key_reused"
        assert len(emu.requests_for("xai.generations")) == 1


def test_a_retry_while_the_first_is_in_flight_waits_for_it(emu: Emulator, tmp_path: Path) -> None:
    """Two requests with one Idempotency-Key at once: one provider call, one receipt, two answers."""
    emu.script("xai.generations", Fault(latency=1.0))
    with gateway(tmp_path, emulator_env(emu), "--env", "development") as gw:
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)
        got: list[str] = []

        def ask() -> None:
            raw = c.images.with_raw_response.generate(
                prompt="one fox", model="xai", extra_headers={"Idempotency-Key": "same"}
            )
            got.append(raw.headers["x-imagerelay-receipt"])

        first = threading.Thread(target=ask)
        first.start()
        wait_until(lambda: bool(emu.requests_for("xai.generations")), "the first call to reach the provider")
        ask()
        first.join()
        assert len(got) == 2
        assert got[0] == got[1]
        assert len(emu.requests_for("xai.generations")) == 1


def test_an_idempotency_key_never_answers_across_sandbox_and_real(emu: Emulator, tmp_path: Path) -> None:
    """One Idempotency-Key sent to a sandbox gateway, then to a real one in the same directory,
    then to the sandbox again: the real gateway makes its own image (a provider call, labelled
    `sandbox: false`), and the sandbox answers its own placeholder again (labelled `sandbox: true`)."""
    body = {"prompt": "idem", "model": "xai"}
    headers = {"idempotency-key": "same-key-1"}
    real_env = emulator_env(emu)
    sandbox_env = {k: v for k, v in real_env.items() if not k.endswith("__BASE_URL")}

    def ask(env: dict[str, str], *args: str) -> httpx.Response:
        with gateway(tmp_path, env, *args) as gw:
            return httpx.post(f"{gw.url}/v1/images/generations", json=body, headers=headers, timeout=60)

    sandboxed = ask(sandbox_env, "--env", "sandbox")
    assert sandboxed.status_code == 200, sandboxed.text
    assert sandboxed.json()["imagerelay"]["sandbox"] is True
    assert emu.requests_for("xai.generations") == []
    real = ask(real_env, "--env", "development")
    assert real.status_code == 200, real.text
    assert real.headers["x-imagerelay-receipt"] != sandboxed.headers["x-imagerelay-receipt"]
    assert real.json()["imagerelay"]["sandbox"] is False
    assert real.json()["imagerelay"]["cost_usd"] > 0
    assert len(emu.requests_for("xai.generations")) == 1
    again = ask(sandbox_env, "--env", "sandbox")
    assert again.headers["x-imagerelay-receipt"] == sandboxed.headers["x-imagerelay-receipt"]
    assert again.json()["imagerelay"]["sandbox"] is True
    assert len(emu.requests_for("xai.generations")) == 1


def test_sigterm_drains_requests_in_flight_then_exits(emu: Emulator, tmp_path: Path) -> None:
    """SIGTERM with three generations in flight: each still gets its image (HTTP 200), each is in
    the ledger, and the process exits 0 afterwards."""
    emu.script("xai.generations", Fault(latency=1.5, times=3))
    gw = GatewayProcess(tmp_path, emulator_env(emu), "--env", "development")
    try:
        statuses: list[int] = []
        lock = threading.Lock()

        def ask(i: int) -> None:
            r = httpx.post(
                f"{gw.url}/v1/images/generations", json={"prompt": f"fox {i}", "model": "xai"}, timeout=60
            )
            with lock:
                statuses.append(r.status_code)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        wait_until(lambda: len(emu.requests_for("xai.generations")) == 3, "three calls in flight")
        code = gw.terminate()
        for t in threads:
            t.join()
        assert statuses == [200, 200, 200]
        assert code == 0
        assert len(generated(gw.out_dir)) == 3
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{gw.url}/healthz")
    finally:
        gw.close()


def test_sigterm_gives_up_at_the_drain_deadline(emu: Emulator, tmp_path: Path) -> None:
    """A generation still running when the drain deadline passes does not keep the process alive:
    its client gets a 424 saying it may be billed, its receipt records what may have been billed,
    and the process exits 1 while the provider has not answered yet."""
    emu.script("xai.generations", Fault(latency=30.0))
    env = emulator_env(emu, IMAGERELAY_GATEWAY__DRAIN_SECONDS="1")
    gw = GatewayProcess(tmp_path, env, "--env", "development")
    try:
        answers: list[httpx.Response] = []

        def ask() -> None:
            answers.append(
                httpx.post(
                    f"{gw.url}/v1/images/generations", json={"prompt": "slow", "model": "xai"}, timeout=60
                )
            )

        t = threading.Thread(target=ask)
        t.start()
        wait_until(lambda: bool(emu.requests_for("xai.generations")), "the call to reach the provider")
        code = gw.terminate(timeout=25)
        [call] = emu.requests_for("xai.generations")
        assert call.status is None  # the provider was still working when the gateway left
        t.join()
        [answer] = answers
        assert answer.status_code == 424  # possibly billed: an answer no SDK retries
        assert answer.headers["x-should-retry"] == "false"
        assert answer.json()["error"]["code"] == "drain_deadline"
        assert code == 1
        assert "Traceback" not in gw.stderr()
        # What may have been billed is on record, under the key that asked, as the answer said.
        [(body, key)] = ledger_rows(gw.out_dir, "SELECT receipt, gateway_key FROM generations")
        receipt = json.loads(body)
        assert key == "local"
        assert receipt["id"] in answer.json()["error"]["message"]
        assert receipt["attempts"][-1]["outcome"] == "interrupted"
        assert receipt["possibly_billed_usd"] > 0
    finally:
        gw.close()


def test_bodies_over_the_caps_are_refused_and_nothing_is_sent(emu: Emulator, tmp_path: Path) -> None:
    """A body over gateway.max_request_bytes is 413 (declared or streamed), one image over
    gateway.max_image_bytes is 400 naming `image`; nothing reaches a provider, and the gateway
    still serves afterwards."""
    env = emulator_env(
        emu, IMAGERELAY_GATEWAY__MAX_REQUEST_BYTES="300000", IMAGERELAY_GATEWAY__MAX_IMAGE_BYTES="100000"
    )
    with gateway(tmp_path, env, "--env", "development") as gw:
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0)
        big = images.noise_png_bytes((400, 400))
        assert len(big) > 300000
        with pytest.raises(openai.APIStatusError) as caught:
            c.images.edit(image=("big.png", big, "image/png"), prompt="edit")
        assert caught.value.status_code == 413
        medium = images.noise_png_bytes((220, 220))
        assert 100000 < len(medium) < 300000
        with pytest.raises(openai.BadRequestError) as bad:
            c.images.edit(image=("medium.png", medium, "image/png"), prompt="edit")
        assert bad.value.code == "image_too_large"
        assert bad.value.param == "image"  # type: ignore[attr-defined]

        def chunks() -> Iterator[bytes]:
            yield b'{"prompt": "'
            for _ in range(40):
                yield b"x" * 10000
            yield b'"}'

        streamed = httpx.post(
            f"{gw.url}/v1/images/generations", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        assert streamed.json()["error"]["code"] == "request_too_large"
        assert not [r for r in emu.requests if r.route != "files"]
        ok = c.images.generate(prompt="small and fine")
        assert ok.data[0].b64_json


async def test_while_draining_new_requests_get_503_and_readyz_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once draining, a new generation is 503 (Retry-After) before anything is read or sent, and
    /readyz is 503 so a load balancer stops sending."""
    from imagerelay.gateway.app import Gateway
    from imagerelay.gateway.routes import create_app
    from imagerelay.settings import load_settings

    monkeypatch.chdir(tmp_path)
    gw = Gateway(load_settings("sandbox"))
    try:
        gw.begin_drain()
        transport = httpx.ASGITransport(app=create_app(gw))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            r = await c.post("/v1/images/generations", json={"prompt": "a fox"})
            assert r.status_code == 503
            assert r.json()["error"]["code"] == "draining"
            assert r.headers["retry-after"] == "5"
            ready = await c.get("/readyz")
            assert ready.status_code == 503
            assert (await c.get("/healthz")).status_code == 200
    finally:
        gw.ledger.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_workers_share_one_port_and_drain_on_sigterm(emu: Emulator, tmp_path: Path) -> None:
    """`--workers 2` serves from two processes on one port, each with its own relay, all writing
    one ledger; SIGTERM stops them all and the gateway exits 0."""
    import subprocess
    import sys

    from .gatewaykit import _URL

    port = _free_port()
    err = tmp_path / "stderr"
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "imagerelay.cli", "serve", "--port", str(port), "--workers", "2",
             "--env", "development"],
            cwd=tmp_path, env=emulator_env(emu), stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        wait_until(lambda: _URL.search(err.read_text()) is not None, "the gateway to listen")
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _ready(url), "a worker to answer")
        for i in range(4):
            r = httpx.post(
                f"{url}/v1/images/generations", json={"prompt": f"fox {i}", "model": "xai"}, timeout=60
            )
            assert r.status_code == 200, r.text
        assert len(generated(tmp_path / "generated")) == 4
        proc.terminate()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_workers_share_a_key_budget_through_the_ledger(emu: Emulator, tmp_path: Path) -> None:
    """`--workers 2` and twelve clients at once on a key with $0.07 a day, at $0.02 a request:
    the workers hold each request's cost in the shared ledger, so at most three are paid and
    the key's spend stays within its budget (each worker alone would have taken three)."""
    import subprocess
    import sys

    from .gatewaykit import _URL

    key = "irk_workers_" + "7" * 12
    keys = {"w": {"hash": hash_key(key), "budget_per_day": 0.07, "models": ["xai:grok-imagine-image"]}}
    emu.script("xai.generations", Fault(latency=0.5, times=None))
    port = _free_port()
    err = tmp_path / "stderr"
    env = emulator_env(emu, IMAGERELAY_GATEWAY__KEYS=keys_env(keys))
    with err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "imagerelay.cli", "serve", "--port", str(port), "--workers", "2",
             "--env", "development"],
            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        wait_until(lambda: _URL.search(err.read_text()) is not None, "the gateway to listen")
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _ready(url), "a worker to answer")
        statuses: list[int] = []
        lock = threading.Lock()
        start = threading.Barrier(12)

        def ask(i: int) -> None:
            start.wait()
            r = httpx.post(
                f"{url}/v1/images/generations",
                json={"prompt": f"budget {i}", "model": "xai:grok-imagine-image"},
                headers={"authorization": f"Bearer {key}"},
                timeout=60,
            )
            with lock:
                statuses.append(r.status_code)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(set(statuses)) == [200, 429]
        assert 1 <= statuses.count(200) <= 3
        assert len(emu.requests_for("xai.generations")) == statuses.count(200)
        [(spent,)] = ledger_rows(
            tmp_path / "generated", "SELECT SUM(cost_usd + possibly_billed_usd) FROM generations"
        )
        assert spent <= 0.07
        proc.terminate()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz").status_code == 200
    except httpx.HTTPError:
        return False
