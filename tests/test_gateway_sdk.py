"""`imagerelay serve` driven by the official OpenAI Python SDK (sync and async), with the emulator
behind it: generations, edits with several images and a mask, url and b64_json answers, and every
error mapped to the SDK's exception class."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from imagerelay.catalog import load_catalog
from imagerelay.emulator import Emulator
from imagerelay.emulator.wire import Fault

from . import images
from .conftest import TEST_KEYS
from .gatewaykit import GatewayProcess, emulator_env, gateway, ledger_rows

OPENAI_MODELS = load_catalog().provider("openai").models


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    """One emulator for the module's gateway; scripts and logs are reset by `served`."""
    emulator = Emulator(keys=TEST_KEYS, url_ttl=60, marked=False).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def shared(emu: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """One `imagerelay serve` (development environment, no gateway key, loopback) for the module."""
    cwd = tmp_path_factory.mktemp("gateway")
    # No cooldown: a test that makes a model fail must not change the routing of the next one.
    env = emulator_env(emu, IMAGERELAY_RETRY__COOLDOWN="0")
    with gateway(cwd, env, "--env", "development") as proc:
        yield proc


@pytest.fixture
def served(shared: GatewayProcess, emu: Emulator) -> GatewayProcess:
    """The module's gateway, with the emulator's scripts and request log cleared for this test."""
    emu.reset()
    yield shared
    assert not emu.errors, emu.errors


def client(proc: GatewayProcess) -> openai.OpenAI:
    # No SDK retries: each test counts exactly what reached the emulator.
    return openai.OpenAI(base_url=proc.url + "/v1", api_key="unused-locally", max_retries=0)


def aclient(proc: GatewayProcess) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=proc.url + "/v1", api_key="unused-locally", max_retries=0)


def generations(emu: Emulator) -> list[str]:
    """Routes of the generation calls the emulator received (downloads and key checks left out)."""
    return [r.route for r in emu.requests if r.route.endswith((".generations", ".edits", ".create"))]


def test_generate_b64_json_saves_and_answers_in_openai_shape(served: GatewayProcess, emu: Emulator) -> None:
    """A generation answers with b64_json of the stored image, its size and format, the receipt id
    in the body and a header, and a ledger row recording the local (keyless) client."""
    raw = client(served).images.with_raw_response.generate(prompt="a red fox in snow", model="auto")
    result = raw.parse()
    receipt_id = raw.headers["x-imagerelay-receipt"]
    assert raw.headers["x-request-id"].startswith("req_")
    [item] = result.data
    assert item.b64_json is not None
    assert item.url is None
    data = base64.b64decode(item.b64_json)
    extra = result.model_extra or {}
    info = extra["imagerelay"]
    assert info["receipt_id"] == receipt_id
    assert (info["provider"], info["model"]) == ("xai", "grok-imagine-image")
    assert info["cost_usd"] > 0
    assert info["attempts"][-1]["outcome"] == "success"
    assert result.size == f"{images.decode(data).width}x{images.decode(data).height}"
    assert result.output_format == "jpeg"
    [(path, key)] = ledger_rows(
        served.out_dir,
        "SELECT m.path, g.gateway_key FROM generations g JOIN images m USING (receipt_id) "
        "WHERE receipt_id = ?",
        (receipt_id,),
    )
    assert key == "local"
    assert (served.out_dir / path).read_bytes() == data  # the stored image, metadata and all
    assert generations(emu) == ["xai.generations"]


def test_response_format_url_is_served_by_the_gateway_from_the_stored_image(served: GatewayProcess) -> None:
    """`response_format: url` returns a URL on the gateway itself that serves the saved file, not
    the provider's expiring URL."""
    result = client(served).images.generate(prompt="a lighthouse", response_format="url")
    [item] = result.data
    assert item.url is not None
    assert item.url.startswith(served.url + "/v1/images/")
    got = httpx.get(item.url)
    assert got.status_code == 200
    assert got.headers["content-type"] == "image/jpeg"
    [(path,)] = ledger_rows(
        served.out_dir,
        "SELECT path FROM images WHERE receipt_id = ?",
        ((result.model_extra or {})["imagerelay"]["receipt_id"],),
    )
    assert got.content == (served.out_dir / path).read_bytes()


async def test_async_generate_takes_imagerelay_fields_through_extra_body(
    served: GatewayProcess, emu: Emulator
) -> None:
    """The async SDK's `extra_body={"imagerelay": …}` reaches the request: n=2, aspect ratio and
    seed arrive at the provider, and metadata lands in the receipt."""
    async with aclient(served) as c:
        result = await c.images.generate(
            prompt="two boats",
            n=2,
            model="xai",
            extra_body={"imagerelay": {"aspect_ratio": "16:9", "metadata": {"post": "monday"}}},
        )
    assert len(result.data) == 2
    sent = emu.requests_for("xai.generations")[-1].json
    assert sent["n"] == 2
    assert sent["aspect_ratio"] == "16:9"
    receipt_id = (result.model_extra or {})["imagerelay"]["receipt_id"]
    receipt = httpx.get(f"{served.url}/v1/receipts/{receipt_id}").json()
    assert receipt["metadata"] == {"post": "monday"}
    assert receipt["status"] == "succeeded"
    assert receipt["request"]["aspect_ratio"] == "16:9"


def test_edit_with_several_images_and_a_mask_reaches_the_pinned_model(
    served: GatewayProcess, emu: Emulator
) -> None:
    """A multipart edit with two images and a mask, pinned to openai:gpt-image-2, sends both images
    and the mask to the model and answers with the edited image."""
    first = images.png_bytes((64, 48), images.RED)
    second = images.jpeg_bytes((40, 40), images.BLUE)
    mask = images.rgba_png_bytes((64, 48))
    result = client(served).images.edit(
        image=[("a.png", first, "image/png"), ("b.jpg", second, "image/jpeg")],
        mask=("mask.png", mask, "image/png"),
        prompt="paint the sky",
        model="openai:gpt-image-2",
    )
    assert base64.b64decode(result.data[0].b64_json or "")
    [call] = emu.requests_for("openai.edits")
    names = [name for name, *_ in call.files]
    assert names.count("image[]") + names.count("image") == 2
    assert names.count("mask") == 1
    receipt = httpx.get(
        f"{served.url}/v1/receipts/{(result.model_extra or {})['imagerelay']['receipt_id']}"
    ).json()
    assert [r["source"] for r in receipt["references"]] == [
        "upload:1:a.png",
        "upload:2:b.jpg",
        "upload:mask:mask.png",
    ]


def test_multipart_edit_takes_imagerelay_fields_as_form_fields(served: GatewayProcess, emu: Emulator) -> None:
    """In a multipart edit the SDK sends `extra_body` as `imagerelay[field]` form fields; they
    reach the request like JSON ones (aspect ratio to the provider, metadata to the receipt)."""
    result = client(served).images.edit(
        image=("cat.png", images.png_bytes(), "image/png"),
        prompt="a cat, wider",
        model="xai",
        extra_body={"imagerelay": {"aspect_ratio": "16:9", "metadata": {"shoot": "week-48"}}},
    )
    assert emu.requests_for("xai.edits")[-1].json["aspect_ratio"] == "16:9"
    receipt_id = (result.model_extra or {})["imagerelay"]["receipt_id"]
    receipt = httpx.get(f"{served.url}/v1/receipts/{receipt_id}").json()
    assert receipt["metadata"] == {"shoot": "week-48"}


async def test_async_edit_takes_one_image(served: GatewayProcess, emu: Emulator) -> None:
    """The async SDK's edit with one uploaded image goes to the environment's reference routing."""
    async with aclient(served) as c:
        result = await c.images.edit(
            image=("cat.png", images.png_bytes(), "image/png"), prompt="make it blue"
        )
    assert (result.model_extra or {})["imagerelay"]["provider"] == "xai"
    assert emu.requests_for("xai.edits")


def test_json_edit_takes_data_uris(served: GatewayProcess, emu: Emulator) -> None:
    """A JSON edit with `images: [{image_url: data:…}]` is decoded and sent as a reference."""
    uri = "data:image/png;base64," + base64.b64encode(images.png_bytes((32, 32), images.GREEN)).decode()
    got = httpx.post(
        f"{served.url}/v1/images/edits",
        json={"prompt": "add a hat", "images": [{"image_url": uri}], "model": "xai"},
        timeout=60,
    )
    assert got.status_code == 200, got.text
    assert emu.requests_for("xai.edits")
    assert got.json()["imagerelay"]["receipt_id"] == got.headers["x-imagerelay-receipt"]


def test_a_local_path_as_image_url_is_refused(served: GatewayProcess, emu: Emulator) -> None:
    """An image_url that is a path on the gateway's machine is refused: a client never reads its files."""
    got = httpx.post(
        f"{served.url}/v1/images/edits",
        json={"prompt": "x", "images": [{"image_url": "/etc/hostname"}]},
    )
    assert got.status_code == 400
    assert got.json()["error"]["param"] == "images[0].image_url"
    assert generations(emu) == []


def test_bad_size_is_a_bad_request_naming_the_param(served: GatewayProcess, emu: Emulator) -> None:
    """A size that is not WxH is BadRequestError with param `size`, and nothing is sent."""
    with pytest.raises(openai.BadRequestError) as caught:
        client(served).images.generate(prompt="a fox", size="huge")  # type: ignore[arg-type]
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["param"] == "size"
    assert body["type"] == "invalid_request_error"
    assert generations(emu) == []


def test_unknown_model_and_unknown_parameter_are_bad_requests(served: GatewayProcess, emu: Emulator) -> None:
    """An unknown model and a misspelt parameter each get a BadRequestError naming them."""
    with pytest.raises(openai.BadRequestError) as caught:
        client(served).images.generate(prompt="a fox", model="dall-e-9")
    assert caught.value.param == "model"  # type: ignore[attr-defined]
    with pytest.raises(openai.BadRequestError) as caught:
        client(served).images.generate(prompt="a fox", extra_body={"qualty": "high"})
    assert caught.value.param == "qualty"  # type: ignore[attr-defined]
    with pytest.raises(openai.BadRequestError) as caught:
        client(served).images.generate(prompt="a fox", extra_body={"imagerelay": {"sed": 3}})
    assert caught.value.param == "imagerelay.sed"  # type: ignore[attr-defined]
    assert generations(emu) == []


def test_bare_model_id_resolves_to_its_provider(served: GatewayProcess, emu: Emulator) -> None:
    """`model: "gpt-image-2"` (as OpenAI names it) means openai:gpt-image-2, and the answer carries
    the token usage the provider reported."""
    result = client(served).images.generate(prompt="a fox", model="gpt-image-2")
    assert (result.model_extra or {})["imagerelay"]["model"] == "gpt-image-2"
    assert result.usage is not None
    assert result.usage.output_tokens > 0
    assert result.usage.total_tokens >= result.usage.output_tokens
    assert generations(emu) == ["openai.generations"]


def test_blocked_prompt_is_content_policy_violation(served: GatewayProcess, emu: Emulator) -> None:
    """A moderation refusal is a 400 with code content_policy_violation, and nothing falls back."""
    emu.script("xai.generations", Fault(blocked=True))
    with pytest.raises(openai.BadRequestError) as caught:
        client(served).images.generate(prompt="something refused")
    assert caught.value.code == "content_policy_violation"
    assert generations(emu) == ["xai.generations"]


def test_every_upstream_failing_is_502_listing_the_attempts(served: GatewayProcess, emu: Emulator) -> None:
    """When every model fails, the SDK raises InternalServerError (502) whose message lists each
    attempt, and the body carries the failed receipt's id."""
    for route in ("xai.generations", "replicate.create", "openai.generations", "gemini.generate"):
        emu.script(route, Fault(status=500, times=None))
    with pytest.raises(openai.InternalServerError) as caught:
        client(served).images.generate(prompt="a fox")
    assert caught.value.status_code == 502
    message = str(caught.value)
    for model in (
        "xai:grok-imagine-image",
        "replicate:black-forest-labs/flux-schnell",
        "openai:gpt-image-2.6-flare",
        "gemini:gemini-nano-banana-2.1",
    ):
        assert model in message
    body = caught.value.body
    assert isinstance(body, dict)
    receipt_id = body["imagerelay"]["receipt_id"]
    receipt = httpx.get(f"{served.url}/v1/receipts/{receipt_id}").json()
    assert receipt["status"] == "failed"
    assert len(receipt["attempts"]) == len(body["imagerelay"]["attempts"]) > 3


def test_reference_url_on_a_private_address_is_refused(served: GatewayProcess, emu: Emulator) -> None:
    """A reference URL on loopback is refused by the usual URL rules (400), before anything is sent."""
    with pytest.raises(openai.BadRequestError) as caught:
        client(served).images.generate(
            prompt="a fox", extra_body={"imagerelay": {"references": [emu.url + "/files/x.png"]}}
        )
    assert caught.value.code == "invalid_image"
    assert generations(emu) == []


def test_models_lists_auto_providers_models_and_capabilities(served: GatewayProcess) -> None:
    """`models.list()` names auto, each provider and each pinned model, with capabilities."""
    listed = client(served).models.list()
    by_id = {m.id: m.model_extra or {} for m in listed.data}
    assert {"auto", "xai", "openai", "replicate", "openai:gpt-image-2"} <= set(by_id)
    assert by_id["auto"]["imagerelay"]["text"][0] == "xai:grok-imagine-image"
    gpt = by_id["openai:gpt-image-2"]["imagerelay"]
    assert "mask" in gpt["modes"]
    assert gpt["max_references"] == 16
    assert gpt["available"] is True


def test_images_are_served_only_from_the_output_directory(served: GatewayProcess, tmp_path: Path) -> None:
    """Image URLs take only a receipt id and an index: traversal and unknown ids are 404."""
    result = client(served).images.generate(prompt="a fox", response_format="url")
    url = result.data[0].url or ""
    assert httpx.get(url).status_code == 200
    base = url.rsplit("/", 2)[0]
    for bad in (
        "../../../etc/passwd",
        "..%2F..%2Fimagerelay.sqlite3",
        "0" * 32 + "/1.jpg",
        url.rsplit("/", 2)[1] + "/9.jpg",
    ):
        assert httpx.get(f"{base}/{bad}").status_code == 404, bad


def test_metrics_count_requests_images_cost_and_attempts(served: GatewayProcess) -> None:
    """/metrics is Prometheus text with requests, images, cost, attempts by outcome and latency."""
    client(served).images.generate(prompt="a fox")
    text = httpx.get(f"{served.url}/metrics").text
    for name in (
        'imagerelay_requests_total{endpoint="generations",status="200"}',
        'imagerelay_images_total{model="grok-imagine-image",provider="xai"}',
        "imagerelay_cost_usd_total",
        'outcome="success"',
        "imagerelay_request_duration_seconds_bucket",
    ):
        assert name in text, name


def test_health_and_readiness(served: GatewayProcess) -> None:
    """/healthz and /readyz answer 200 while serving."""
    assert httpx.get(f"{served.url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{served.url}/readyz").json() == {"status": "ready"}


def test_errors_never_carry_a_traceback_or_a_provider_key(served: GatewayProcess, emu: Emulator) -> None:
    """Provider errors reach the client as one-line messages: no traceback, no provider key."""
    emu.script("xai.generations", Fault(status=401, times=None))
    emu.script("replicate.create", Fault(status=500, times=None))
    emu.script("openai.generations", Fault(status=500, times=None))
    emu.script("gemini.generate", Fault(status=500, times=None))
    got = httpx.post(f"{served.url}/v1/images/generations", json={"prompt": "a fox"}, timeout=60)
    assert got.status_code == 502
    text = got.text
    assert "Traceback" not in text
    for key in TEST_KEYS.values():
        assert key not in text
    assert "XAI_API_KEY" in text  # the variable is named, never its value
    json.loads(text)


def test_no_request_body_surprises(served: GatewayProcess) -> None:
    """A body that is not JSON, JSON that is not an object, and a wrong content type are 400/415."""
    url = f"{served.url}/v1/images/generations"
    assert (
        httpx.post(url, content=b"{not json", headers={"content-type": "application/json"}).status_code == 400
    )
    assert httpx.post(url, json=["a list"]).status_code == 400
    assert httpx.post(url, content=b"prompt=x", headers={"content-type": "text/plain"}).status_code == 415
    missing = httpx.post(url, json={"n": 1})
    assert missing.status_code == 400
    assert missing.json()["error"]["param"] == "prompt"


def test_upload_that_is_not_an_image_is_refused(served: GatewayProcess, emu: Emulator) -> None:
    """An uploaded file that does not decode is a 400 naming `image`, and nothing is sent."""
    with pytest.raises(openai.BadRequestError) as caught:
        client(served).images.edit(
            image=("x.png", io.BytesIO(b"not an image at all"), "image/png"), prompt="x"
        )
    assert caught.value.param == "image"  # type: ignore[attr-defined]
    assert generations(emu) == []


def test_idempotency_key_of_a_refused_request_can_be_used_again(
    served: GatewayProcess, emu: Emulator
) -> None:
    """A request refused before anything was sent (a reference URL the rules refuse) does not
    hold its Idempotency-Key: the corrected request with the same key is served."""
    url = f"{served.url}/v1/images/generations"
    headers = {"idempotency-key": "refused-then-fixed"}
    bad = {"prompt": "a fox", "imagerelay": {"references": [emu.url + "/files/x.png"]}}
    assert httpx.post(url, json=bad, headers=headers, timeout=60).status_code == 400
    fixed = httpx.post(url, json={"prompt": "a fox"}, headers=headers, timeout=60)
    assert fixed.status_code == 200, fixed.text
    again = httpx.post(url, json={"prompt": "a fox"}, headers=headers, timeout=60)
    assert again.headers["x-imagerelay-receipt"] == fixed.headers["x-imagerelay-receipt"]
    assert generations(emu) == ["xai.generations"]


def test_a_request_cost_cap_no_model_fits_is_a_bad_request(served: GatewayProcess, emu: Emulator) -> None:
    """`imagerelay.max_cost` below every candidate's estimate is a 400 naming the cap, and nothing
    is sent (a per-request cap is the caller's own limit, not a budget that renews)."""
    with pytest.raises(openai.BadRequestError) as caught:
        client(served).images.generate(
            prompt="a fox", model="xai", extra_body={"imagerelay": {"max_cost": 0.0001}}
        )
    assert caught.value.code == "over_max_cost"
    assert caught.value.param == "imagerelay.max_cost"  # type: ignore[attr-defined]
    assert generations(emu) == []


def test_a_malformed_multipart_body_is_a_bad_request_naming_the_problem(
    served: GatewayProcess, emu: Emulator
) -> None:
    """Garbage, a missing boundary and over 200 fields are each a 400 invalid_request_error naming
    the problem, with no traceback in the server log and nothing sent."""
    url = f"{served.url}/v1/images/edits"
    many = (
        b"".join(b'--B\r\nContent-Disposition: form-data; name="f%d"\r\n\r\nx\r\n' % i for i in range(201))
        + b"--B--\r\n"
    )
    cases = [
        ("multipart/form-data; boundary=B", b"garbage", "malformed"),
        ("multipart/form-data", b"garbage", "no boundary"),
        ("multipart/form-data; boundary=B", many, "over 200 fields"),
    ]
    for ctype, body, says in cases:
        got = httpx.post(url, content=body, headers={"content-type": ctype}, timeout=60)
        assert got.status_code == 400, got.text
        error = got.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert says in error["message"], error["message"]
    assert "Traceback" not in served.stderr()
    assert "unexpectedly" not in served.stderr()
    assert generations(emu) == []


def test_a_possibly_billed_failure_is_not_retried_by_the_sdk(served: GatewayProcess, emu: Emulator) -> None:
    """A connection dropped after the provider read the request, answered to the SDK with its
    default retries: one provider call, an APIStatusError 424 `possibly_billed` with
    `x-should-retry: false` whose message names the attempt and the amount that may be billed."""
    emu.script("openai.generations", Fault(drop=True, times=None))
    sdk = openai.OpenAI(base_url=served.url + "/v1", api_key="unused-locally")  # the default: 2 retries
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.images.generate(model="openai:gpt-image-2", prompt="retry me")
    assert caught.value.status_code == 424
    assert caught.value.code == "possibly_billed"
    assert caught.value.response.headers["x-should-retry"] == "false"
    message = str(caught.value)
    assert "openai:gpt-image-2 transient" in message
    assert "(it may be billed)" in message
    body = caught.value.body
    assert isinstance(body, dict)
    billed = body["imagerelay"]["possibly_billed_usd"]
    assert billed > 0
    assert f"up to ${billed:.4f} may have been billed (openai:gpt-image-2)" in message
    assert len(emu.requests_for("openai.generations")) == 1


def test_every_model_rate_limited_is_a_rate_limit_error_keeping_retry_after(
    served: GatewayProcess, emu: Emulator
) -> None:
    """When every attempt was a provider's 429 (Retry-After: 600), the answer is RateLimitError
    (429) with that Retry-After, not a 502 that loses it."""
    emu.script("xai.generations", Fault(status=429, headers={"Retry-After": "600"}, times=None))
    with pytest.raises(openai.RateLimitError) as caught:
        client(served).images.generate(prompt="a fox", model="xai")
    assert caught.value.code == "upstream_rate_limited"
    assert caught.value.response.headers["retry-after"] == "600"
    assert "try again in 600 s" in str(caught.value)
    assert len(emu.requests_for("xai.generations")) >= 1


def test_a_web_page_cannot_spend_through_a_keyless_gateway(served: GatewayProcess, emu: Emulator) -> None:
    """With no gateway key, a cross-site form post (a foreign Origin) and a DNS-rebound Host are
    each refused with a 403 of one line, and nothing reaches a provider."""
    url = f"{served.url}/v1/images/edits"
    files = {"image": ("fox.png", images.png_bytes(), "image/png")}
    port = served.url.rsplit(":", 1)[1]
    for headers, code in (
        ({"Origin": "https://evil.example"}, "origin_not_allowed"),
        ({"Origin": "null"}, "origin_not_allowed"),
        ({"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}, "host_not_allowed"),
        ({"Host": "evil.example"}, "host_not_allowed"),
    ):
        got = httpx.post(url, data={"prompt": "csrf"}, files=files, headers=headers)
        assert got.status_code == 403, (headers, got.text)
        error = got.json()["error"]
        assert error["code"] == code
        assert error["type"] == "permission_error"
        assert "\n" not in error["message"]
    got = httpx.get(f"{served.url}/v1/models", headers={"Host": "rebound.example"})
    assert got.status_code == 403
    assert generations(emu) == []


def test_this_machine_is_served_by_any_loopback_name_and_from_a_local_page(
    served: GatewayProcess, emu: Emulator
) -> None:
    """Host 127.0.0.1, localhost or [::1] (with or without the port), and an Origin on localhost,
    are served by a keyless gateway; the SDKs send no Origin and are served too."""
    port = served.url.rsplit(":", 1)[1]
    for host in ("localhost", f"localhost:{port}", "127.0.0.1", "[::1]", f"[::1]:{port}"):
        got = httpx.get(f"{served.url}/v1/models", headers={"Host": host})
        assert got.status_code == 200, (host, got.text)
    got = httpx.post(
        f"{served.url}/v1/images/generations",
        json={"prompt": "from a local page"},
        headers={"Origin": "http://localhost:3000"},
    )
    assert got.status_code == 200, got.text
    assert client(served).images.generate(prompt="from a program").data
    assert generations(emu) == ["xai.generations", "xai.generations"]


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"user": 5}, "user", "invalid_type"),
        ({"n": True}, "n", "invalid_type"),
        ({"n": "2"}, "n", "invalid_type"),
        ({"n": 11}, "n", "integer_above_max_value"),
        ({"imagerelay": {"max_cost": True}}, "imagerelay.max_cost", "invalid_type"),
        ({"imagerelay": {"max_cost": "0.5"}}, "imagerelay.max_cost", "invalid_type"),
        ({"imagerelay": {"seed": True}}, "imagerelay.seed", "invalid_type"),
        ({"model": "openai", "background": "rainbow"}, "background", "invalid_value"),
        ({"model": "openai", "moderation": "none"}, "moderation", "invalid_value"),
        ({"model": "openai", "output_compression": 500}, "output_compression", "integer_above_max_value"),
        ({"quality": "ultra"}, "quality", "invalid_value"),
        ({"stream": "no"}, "stream", "invalid_type"),
    ],
)
def test_a_wrong_type_or_value_is_refused_before_anything_is_sent(
    served: GatewayProcess, emu: Emulator, body: dict[str, object], param: str, code: str
) -> None:
    """Each field is checked against OpenAI's schema (and imagerelay's own fields by their type):
    a 400 in OpenAI's error shape naming the field, and the emulator receives nothing."""
    got = httpx.post(f"{served.url}/v1/images/generations", json={"prompt": "a fox", **body})
    assert got.status_code == 400, got.text
    assert set(got.json()) == {"error"}
    error = got.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)
    assert param in error["message"]
    assert emu.requests == []


def test_a_mistake_reads_as_the_library_says_it(served: GatewayProcess, emu: Emulator) -> None:
    """A field the gateway checks against OpenAI's schema, and one the request model refuses, read
    as the library's sentence for the same mistake: the field, what it must be, what was given."""
    for body, message in [
        ({"n": "2"}, "n: must be a whole number (got '2')"),
        ({"imagerelay": {"seed": -1}}, "imagerelay.seed: must be at least 0 (got -1)"),
        ({"imagerelay": {"aspect_ratio": 5}}, "imagerelay.aspect_ratio: must be text (got 5)"),
    ]:
        got = httpx.post(f"{served.url}/v1/images/generations", json={"prompt": "a fox", **body})
        assert got.status_code == 400, got.text
        assert got.json()["error"]["message"] == message
    assert emu.requests == []


def test_the_sdk_gets_a_bad_request_naming_a_value_no_model_takes(
    served: GatewayProcess, emu: Emulator
) -> None:
    """`background="rainbow"` through the SDK is BadRequestError with param background, and
    OpenAI's values are in the message, worded as every validation error is."""
    with pytest.raises(openai.BadRequestError) as caught:
        client(served).images.generate(prompt="a fox", model="openai", background="rainbow")  # type: ignore[arg-type]
    assert caught.value.param == "background"  # type: ignore[attr-defined]
    assert "background: must be one of transparent, opaque, auto (got 'rainbow')" in str(caught.value)
    assert emu.requests == []


def test_multipart_text_is_read_as_the_type_of_its_field(served: GatewayProcess, emu: Emulator) -> None:
    """In a multipart edit every field is text: `n=1`, `output_compression=80` and
    `imagerelay[max_cost]=0.5` are read as numbers and served; `n=two` is a 400 naming n."""
    files = {"image": ("fox.png", images.png_bytes(), "image/png")}
    url = f"{served.url}/v1/images/edits"
    fields = {"prompt": "a fox", "model": "openai:gpt-image-2", "n": "1", "output_compression": "80"}
    got = httpx.post(url, data={**fields, "imagerelay[max_cost]": "0.5"}, files=files)
    assert got.status_code == 200, got.text
    assert emu.requests_for("openai.edits")[-1].form["output_compression"] == "80"
    got = httpx.post(url, data={**fields, "n": "two"}, files=files)
    assert got.status_code == 400
    assert got.json()["error"]["param"] == "n"
    assert len(emu.requests_for("openai.edits")) == 1


def test_qualities_the_catalog_offers_beyond_openais_are_served(emu: Emulator, tmp_path: Path) -> None:
    """`quality: "xhigh"` and `"max"` (offered by the catalog and the CLI, not in OpenAI's file)
    are accepted and reach an OpenAI model that takes them, sent as asked."""
    emu.reset()
    # "max" costs more than the development environment's $0.50 cap per request.
    env = emulator_env(emu, IMAGERELAY_BUDGET__MAX_COST_PER_REQUEST="2")
    with gateway(tmp_path, env, "--env", "development") as proc:
        for quality in ("xhigh", "max"):
            result = client(proc).images.generate(prompt="a fox", model="openai", quality=quality)  # type: ignore[arg-type]
            model = (result.model_extra or {})["imagerelay"]["model"]
            assert quality in OPENAI_MODELS[model].qualities
            assert emu.requests_for("openai.generations")[-1].json["quality"] == quality
    assert len(emu.requests_for("openai.generations")) == 2
    assert not emu.errors, emu.errors


def test_an_image_url_with_another_extension_is_not_found(served: GatewayProcess) -> None:
    """A stored JPEG is served at its own URL (`1.jpg`); `1.png` is a 404 naming the right one."""
    result = client(served).images.generate(prompt="a fox", response_format="url")
    url = result.data[0].url or ""
    assert url.endswith("/1.jpg")
    assert httpx.get(url).status_code == 200
    got = httpx.get(url[: -len("jpg")] + "png")
    assert got.status_code == 404
    assert got.json()["error"]["message"].endswith(url.split(served.url, 1)[1])


def test_errors_name_request_fields_not_cli_flags(served: GatewayProcess, emu: Emulator) -> None:
    """The fix an HTTP client is told names its request fields and models, never a CLI flag:
    a cap no model fits says imagerelay.max_cost, a pinned model that cannot serve says which
    `model` to ask for."""
    with pytest.raises(openai.BadRequestError) as caught:
        client(served).images.generate(
            prompt="a fox", model="xai", extra_body={"imagerelay": {"max_cost": 0.0001}}
        )
    assert "raise imagerelay.max_cost" in str(caught.value)
    with pytest.raises(openai.BadRequestError) as pinned:
        client(served).images.edit(
            prompt="a fox",
            model="replicate:black-forest-labs/flux-schnell",
            image=("fox.png", images.png_bytes(), "image/png"),
        )
    assert "ask for model replicate" in str(pinned.value)
    assert "GET /v1/models" in str(pinned.value)
    for message in (str(caught.value), str(pinned.value)):
        assert " --" not in message
        assert "imagerelay providers" not in message
    assert generations(emu) == []


def test_a_note_on_an_extra_for_another_provider_reads_well(served: GatewayProcess) -> None:
    """An extra meant for Gemini on a Grok request is noted as "not among gemini's models"."""
    result = client(served).images.generate(
        prompt="a fox",
        model="xai",
        extra_body={"imagerelay": {"extras": {"gemini": {"thinking_level": "high"}}}},
    )
    notes = (result.model_extra or {})["imagerelay"]["notes"]
    note = "extra gemini.thinking_level not sent: grok-imagine-image is not among gemini's models"
    assert f"xai:grok-imagine-image: {note}" in notes


def test_serve_out_is_where_images_receipts_and_the_ledger_go(emu: Emulator, tmp_path: Path) -> None:
    """`imagerelay serve --out DIR` stores each image, its receipt and the ledger in DIR (not
    ./generated), as `generate --out` does."""
    emu.reset()
    out = tmp_path / "images"
    with gateway(tmp_path / "cwd", emulator_env(emu), "--env", "development", "--out", str(out)) as proc:
        result = client(proc).images.generate(prompt="a fox")
        receipt_id = (result.model_extra or {})["imagerelay"]["receipt_id"]
        [(path,)] = ledger_rows(out, "SELECT path FROM images WHERE receipt_id = ?", (receipt_id,))
        assert (out / path).read_bytes() == base64.b64decode(result.data[0].b64_json or "")
        assert not (tmp_path / "cwd" / "generated").exists()
    assert not emu.errors, emu.errors
