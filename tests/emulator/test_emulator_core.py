"""The emulator's core: fault scripts, the request log, hosted files, drawing, lifecycle."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import threading
import time

import httpx
import openai
import pytest
from emulator_helpers import data_uri, is_reddish, mean_rgb, open_image, solid

from imagerelay.emulator import Emulator, Fault, draw

GEN = "/images/generations"
BODY = {"model": "grok-imagine-image", "prompt": "a cat"}


def test_drop_closes_without_response(emulator: Emulator, xai: httpx.Client) -> None:
    """Fault(drop=True) → the connection closes with no response; the request is still logged."""
    emulator.script("xai.generations", Fault(drop=True))
    with pytest.raises(httpx.RemoteProtocolError):
        xai.post(GEN, json=BODY)
    logged = emulator.requests_for("xai.generations")
    assert len(logged) == 1
    assert logged[0].status is None
    assert logged[0].json == BODY
    assert xai.post(GEN, json=BODY).status_code == 200  # only once


def test_drop_half_way(emulator: Emulator, xai: httpx.Client) -> None:
    """Fault(drop=True, truncate=True) → headers and part of the body, then the connection closes."""
    emulator.script("xai.generations", Fault(drop=True, truncate=True))
    with pytest.raises(httpx.RemoteProtocolError):
        xai.post(GEN, json=BODY)


def test_drop_is_a_connection_error_for_the_openai_sdk(emulator: Emulator, test_keys: dict[str, str]) -> None:
    """A dropped OpenAI request surfaces as APIConnectionError in the SDK."""
    emulator.script("openai.generations", Fault(drop=True))
    c = openai.OpenAI(base_url=emulator.base_url("openai"), api_key=test_keys["openai"], max_retries=0)
    with c, pytest.raises(openai.APIConnectionError):
        c.images.generate(model="gpt-image-2", prompt="x")


def test_latency_beyond_read_timeout_is_a_read_timeout_but_logged(
    emulator: Emulator, xai: httpx.Client
) -> None:
    """Fault(latency=...) longer than the client's read timeout → ReadTimeout; the request was received."""
    emulator.script("xai.generations", Fault(latency=0.5))
    with pytest.raises(httpx.ReadTimeout):
        xai.post(GEN, json=BODY, timeout=httpx.Timeout(5, read=0.1))
    assert len(emulator.requests_for("xai.generations")) == 1


def test_latency_delays_the_answer(emulator: Emulator, xai: httpx.Client) -> None:
    """Fault(latency=0.2) alone → a normal answer, 0.2 s late."""
    emulator.script("xai.generations", Fault(latency=0.2))
    start = time.monotonic()
    assert xai.post(GEN, json=BODY).status_code == 200
    assert time.monotonic() - start >= 0.2


def test_default_latency_applies_to_every_request(test_keys: dict[str, str]) -> None:
    """Emulator(latency=...) delays every answer."""
    with Emulator(keys=test_keys, latency=0.15) as emu:
        start = time.monotonic()
        httpx.get(emu.url + "/files/none")
        assert time.monotonic() - start >= 0.15


def test_malformed_is_200_not_json(emulator: Emulator, xai: httpx.Client) -> None:
    """Fault(malformed=True) → 200 with a body that is not valid JSON."""
    emulator.script("xai.generations", Fault(malformed=True))
    r = xai.post(GEN, json=BODY)
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        r.json()


def test_status_with_custom_body(emulator: Emulator, xai: httpx.Client) -> None:
    """Fault(status, body) → that status with exactly that body."""
    body = {"code": "Some resource has been exhausted", "error": "Your team has no credits left."}
    emulator.script("xai.generations", Fault(status=429, body=body))
    r = xai.post(GEN, json=BODY)
    assert (r.status_code, r.json()) == (429, body)


def test_script_is_fifo_and_times_none_is_forever(emulator: Emulator, xai: httpx.Client) -> None:
    """Faults apply in order, each `times` requests; times=None applies forever; reset() clears it."""
    emulator.script("xai.generations", Fault(status=429, times=2), Fault(status=503, times=None))
    assert [xai.post(GEN, json=BODY).status_code for _ in range(5)] == [429, 429, 503, 503, 503]
    assert [r.status for r in emulator.requests_for("xai.generations")] == [429, 429, 503, 503, 503]
    emulator.reset()
    assert emulator.requests == []
    assert xai.post(GEN, json=BODY).status_code == 200


def test_faults_are_per_route(emulator: Emulator, xai: httpx.Client) -> None:
    """A fault scripted for one route leaves the others alone."""
    emulator.script("xai.edits", Fault(status=500))
    assert xai.post(GEN, json=BODY).status_code == 200


def test_request_log_records_what_crossed_the_wire(emulator: Emulator, xai: httpx.Client) -> None:
    """LoggedRequest holds route, provider, method, path, redacted headers, key_ok, json and time."""
    before = time.monotonic()
    xai.post(GEN, json=BODY, headers={"x-trace": "1"})
    (r,) = emulator.requests
    assert (r.route, r.provider, r.method, r.path) == (
        "xai.generations",
        "xai",
        "POST",
        "/xai/v1/images/generations",
    )
    assert r.headers["authorization"] == "<redacted>"
    assert r.headers["x-trace"] == "1"
    assert r.key_ok is True
    assert r.json == BODY
    assert r.status == 200
    assert r.at >= before


def test_unknown_endpoint_is_logged_and_404(emulator: Emulator, xai: httpx.Client) -> None:
    """An endpoint the emulator does not know → 404 in the provider's shape, logged as <provider>.unknown."""
    r = xai.post("/images/variations", json=BODY)
    assert r.status_code == 404
    assert set(r.json()) == {"code", "error"}
    assert emulator.requests[-1].route == "xai.unknown"


def test_keys_none_accepts_any_non_empty_token() -> None:
    """Emulator(keys=None) accepts any bearer token but still refuses a missing one."""
    with Emulator() as emu:
        ok = httpx.post(emu.base_url("xai") + GEN, json=BODY, headers={"authorization": "Bearer anything"})
        missing = httpx.post(emu.base_url("xai") + GEN, json=BODY)
    assert (ok.status_code, missing.status_code) == (200, 400)


def test_files_faults(emulator: Emulator, xai: httpx.Client) -> None:
    """files route: truncate serves half the bytes, expired answers expired, malformed is no image."""
    url = xai.post(GEN, json=BODY).json()["data"][0]["url"]
    full = httpx.get(url).content
    emulator.script("files", Fault(truncate=True), Fault(expired=True), Fault(malformed=True))
    assert httpx.get(url).content == full[: len(full) // 2]
    assert httpx.get(url).status_code == 403
    with pytest.raises(OSError, match="cannot identify"):
        open_image(httpx.get(url).content)
    assert httpx.get(url).content == full


def test_unknown_hosted_file_is_404(emulator: Emulator) -> None:
    """A hosted path that was never handed out → 404."""
    assert httpx.get(emulator.url + "/files/nothing/here.jpeg").status_code == 404


def test_drawing_is_deterministic() -> None:
    """Same (prompt, seed, size, model) → same bytes; a different seed or prompt → different bytes."""
    args = {"prompt": "a cat", "model": "m", "size": (256, 192), "seed": 7}
    assert draw.render(**args) == draw.render(**args)  # type: ignore[arg-type]
    assert draw.render(**{**args, "seed": 8}) != draw.render(**args)  # type: ignore[arg-type]
    assert draw.render(**{**args, "prompt": "a dog"}) != draw.render(**args)  # type: ignore[arg-type]


def test_same_request_same_image_over_http(xai: httpx.Client) -> None:
    """Two identical requests produce byte-identical images."""
    body = {**BODY, "response_format": "b64_json"}
    first, second = (xai.post(GEN, json=body).json()["data"][0]["b64_json"] for _ in range(2))
    assert first == second


def test_reference_influences_output() -> None:
    """A solid-red reference yields a reddish output; without it the output is something else."""
    ref = draw.load(solid((255, 0, 0), (100, 100)))
    with_ref = draw.render(prompt="p", model="m", size=(256, 256), reference=ref, fmt="png")
    without = draw.render(prompt="p", model="m", size=(256, 256), fmt="png")
    assert is_reddish(mean_rgb(with_ref))
    assert with_ref != without


def test_drawing_gives_an_image_of_the_asked_size() -> None:
    """A 1024x1024 JPEG render decodes at 1024x1024 (its speed is measured in bench/emulator.py)."""
    data = draw.render(prompt="a cat", model="grok-imagine-image", size=(1024, 1024))
    im = open_image(data)
    assert (im.format, im.size) == ("JPEG", (1024, 1024))


def test_stop_is_clean() -> None:
    """After stop() the port refuses connections (start-up time is measured in bench/emulator.py)."""
    emu = Emulator()
    emu.start()
    assert httpx.get(emu.url + "/files/x").status_code == 404
    url = emu.url
    emu.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/files/x")


def test_concurrent_requests(emulator: Emulator, test_keys: dict[str, str]) -> None:
    """Concurrent clients are served in parallel and every request is logged once."""
    statuses: list[int] = []

    def worker() -> None:
        with httpx.Client(headers={"authorization": f"Bearer {test_keys['xai']}"}) as c:
            for _ in range(3):
                statuses.append(c.post(emulator.base_url("xai") + GEN, json=BODY).status_code)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 18
    assert len(emulator.requests_for("xai.generations")) == 18


def test_base_urls(emulator: Emulator) -> None:
    """base_url(provider) is the API root of each provider on this emulator."""
    assert emulator.base_url("xai") == emulator.url + "/xai/v1"
    assert emulator.base_url("openai") == emulator.url + "/openai/v1"
    assert emulator.base_url("replicate") == emulator.url + "/replicate/v1"
    assert emulator.url.startswith("http://127.0.0.1:")
    with pytest.raises(ValueError, match="unknown provider"):
        emulator.base_url("midjourney")


def test_edit_reference_round_trip_through_hosted_url(xai: httpx.Client) -> None:
    """An xAI edit of a red data-URI reference keeps red, also when fetched back from its URL."""
    body = {"model": "grok-imagine-image", "prompt": "x", "image": {"url": data_uri(solid())}}
    url = xai.post("/images/edits", json=body).json()["data"][0]["url"]
    assert is_reddish(mean_rgb(httpx.get(url).content))
    b64 = xai.post("/images/edits", json={**body, "image": {"url": url}, "response_format": "b64_json"})
    assert is_reddish(mean_rgb(base64.b64decode(b64.json()["data"][0]["b64_json"].split(",", 1)[1])))


def test_api_key_endpoint(emulator: Emulator, xai: httpx.Client) -> None:
    """GET /v1/api-key answers 200 for a valid key and the 400 bad-key error otherwise."""
    assert xai.get("/api-key").status_code == 200
    bad = httpx.get(emulator.base_url("xai") + "/api-key", headers={"authorization": "Bearer xai-nope-nope"})
    assert bad.status_code == 400


def test_serve_prints_base_urls_and_stops_on_ctrl_c() -> None:
    """serve() runs in the foreground, prints the three API roots and exits cleanly on SIGINT."""
    code = "from imagerelay.emulator import serve; serve(port=0)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(5)]
        assert "/xai/v1" in lines[1]
        assert "/openai/v1" in lines[2]
        assert "/replicate/v1" in lines[3]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()


async def test_async_clients(emulator: Emulator, test_keys: dict[str, str]) -> None:
    """The async SDK clients (AsyncOpenAI, replicate async_create) work against the emulator too."""
    import replicate

    async with openai.AsyncOpenAI(
        base_url=emulator.base_url("openai"), api_key=test_keys["openai"], max_retries=0
    ) as oa:
        res = await oa.images.generate(model="gpt-image-2", prompt="x", quality="low")
        assert res.data
    rc = replicate.Client(api_token=test_keys["replicate"], base_url=emulator.url + "/replicate")
    p = await rc.models.predictions.async_create(
        model="black-forest-labs/flux-schnell", input={"prompt": "x"}, wait=True
    )
    assert p.status == "succeeded"
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {test_keys['xai']}"}) as ax:
        for _ in range(3):  # one kept-alive connection, several requests
            assert (await ax.post(emulator.base_url("xai") + GEN, json=BODY)).status_code == 200
