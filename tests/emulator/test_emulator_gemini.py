"""The emulated Gemini API (generateContent on the image models), spoken to over real HTTP."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from emulator_helpers import is_reddish, mean_rgb, open_image, solid

from imagerelay.emulator import Emulator, Fault

NB21 = "gemini-nano-banana-2.1"
PRO = "gemini-3-pro-image"
LITE = "gemini-3.1-flash-lite-image"
FLASH25 = "gemini-2.5-flash-image"
ROUTE = "gemini.generate"


@pytest.fixture
def gemini(emulator: Emulator, test_keys: dict[str, str]) -> Iterator[httpx.Client]:
    """httpx client on the emulated Gemini API root (v1beta), with the test key in x-goog-api-key."""
    headers = {"x-goog-api-key": test_keys["gemini"]}
    with httpx.Client(base_url=emulator.base_url("gemini"), headers=headers, timeout=30) as client:
        yield client


def generate(model: str = NB21) -> str:
    return f"/models/{model}:generateContent"


def request(*parts: dict[str, Any], prompt: str = "a red fox", **config: Any) -> dict[str, Any]:
    """A camelCase request body (the way curl users and the docs write it)."""
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": [*parts, {"text": prompt}]}]}
    body["generationConfig"] = {"responseModalities": ["IMAGE"], **config}
    return body


def blob(data: bytes, mime: str = "image/png", *, urlsafe: bool = False, pad: bool = True) -> dict[str, Any]:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    text = encode(data).decode()
    return {"inlineData": {"mimeType": mime, "data": text if pad else text.rstrip("=")}}


def final_image(answer: dict[str, Any]) -> tuple[str, bytes]:
    """(mimeType, bytes) of the last non-thought image part of the first candidate."""
    parts = answer["candidates"][0]["content"]["parts"]
    [last] = [p for p in parts if "inlineData" in p and not p.get("thought")]
    return last["inlineData"]["mimeType"], base64.b64decode(last["inlineData"]["data"])


def error_of(r: httpx.Response) -> dict[str, Any]:
    assert r.headers["content-type"] == "application/json; charset=UTF-8"
    body: dict[str, Any] = r.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == r.status_code
    return body["error"]


# -- routes and keys ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v1", "v1beta", "v1alpha", ""])
def test_every_api_version_is_served(emulator: Emulator, test_keys: dict[str, str], version: str) -> None:
    """/v1/, /v1beta/, /v1alpha/ and no version at all reach the same generateContent."""
    root = f"{emulator.url}/gemini" + (f"/{version}" if version else "")
    r = httpx.post(
        root + generate(), json=request(), headers={"x-goog-api-key": test_keys["gemini"]}, timeout=30
    )
    assert r.status_code == 200, r.text
    assert emulator.requests[-1].route == ROUTE


def test_the_key_may_come_as_a_query_parameter(emulator: Emulator, test_keys: dict[str, str]) -> None:
    """?key=… is accepted as curl users send it; the logged path carries no query."""
    r = httpx.post(
        emulator.base_url("gemini") + generate(), params={"key": test_keys["gemini"]}, json=request()
    )
    assert r.status_code == 200
    assert emulator.requests[-1].key_ok
    assert "key=" not in emulator.requests[-1].path


def test_a_missing_key_is_403_permission_denied(emulator: Emulator) -> None:
    """No key at all → 403 PERMISSION_DENIED ("unregistered callers")."""
    r = httpx.post(emulator.base_url("gemini") + generate(), json=request())
    assert r.status_code == 403
    assert error_of(r)["status"] == "PERMISSION_DENIED"


def test_a_wrong_key_is_400_with_reason_api_key_invalid(emulator: Emulator) -> None:
    """A wrong key → 400 INVALID_ARGUMENT whose ErrorInfo reason is API_KEY_INVALID; never echoed, and the
    logged x-goog-api-key header is redacted."""
    key = "AIza" + "not-the-right-one"
    r = httpx.post(emulator.base_url("gemini") + generate(), json=request(), headers={"x-goog-api-key": key})
    error = error_of(r)
    assert (r.status_code, error["status"]) == (400, "INVALID_ARGUMENT")
    info = [d for d in error["details"] if d["@type"].endswith("google.rpc.ErrorInfo")]
    assert info[0]["reason"] == "API_KEY_INVALID"
    assert key not in r.text
    assert emulator.requests[-1].headers["x-goog-api-key"] == "<redacted>"
    assert emulator.requests[-1].key_ok is False


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("gemini-3.1-flash-image", "This model models/gemini-3.1-flash-image is no longer available."),
        ("imagen-4.0-generate-001", "This model models/imagen-4.0-generate-001 is no longer available."),
        ("gemini-pro", "models/gemini-pro is not found for API version v1beta, or is not supported for"),
    ],
)
def test_retired_and_unknown_models_are_404(gemini: httpx.Client, model: str, message: str) -> None:
    """A shut-down model says "no longer available", an unknown one "not found for API version"."""
    r = gemini.post(generate(model), json=request())
    assert r.status_code == 404
    assert error_of(r)["message"].startswith(message)


def test_imagen_predict_is_404(gemini: httpx.Client) -> None:
    """Imagen's :predict does not exist on this API any more."""
    r = gemini.post("/models/imagen-4.0-generate-001:predict", json={"instances": [{"prompt": "x"}]})
    assert r.status_code == 404
    assert error_of(r)["status"] == "NOT_FOUND"


# -- what a request may say -----------------------------------------------------------------------


def test_snake_case_and_url_safe_unpadded_base64_are_read(gemini: httpx.Client) -> None:
    """inline_data/mime_type (as the SDK sends) with URL-safe, unpadded base64 decode like camelCase."""
    ref = solid((220, 20, 20), (64, 64))
    snake = {
        "inline_data": {"mime_type": "image/png", "data": base64.urlsafe_b64encode(ref).decode().rstrip("=")}
    }
    body = {
        "contents": [{"parts": [snake, {"text": "same, at night"}]}],
        "generation_config": {"response_modalities": ["IMAGE"]},
    }
    r = gemini.post(generate(), json=body)
    assert r.status_code == 200, r.text
    _, data = final_image(r.json())
    assert is_reddish(mean_rgb(data))


def test_references_are_tiled_in_order(gemini: httpx.Client) -> None:
    """Four references (red, green, blue, yellow) come back as a 2x2 tiling, in the order sent."""
    colours = [(220, 20, 20), (20, 200, 20), (20, 20, 220), (230, 230, 20)]
    parts = [blob(solid(c, (48, 48))) for c in colours]
    r = gemini.post(generate(PRO), json=request(*parts, imageConfig={"aspectRatio": "1:1"}))
    assert r.status_code == 200, r.text
    img = open_image(final_image(r.json())[1]).convert("RGB")
    w, h = img.size
    # Inside each quadrant, clear of the corner mark (top left) and the caption band (bottom).
    points = [(3 * w // 8, h // 4), (3 * w // 4, h // 4), (3 * w // 8, 3 * h // 4), (3 * w // 4, 3 * h // 4)]
    seen = [img.getpixel(p) for p in points]
    nearest = [
        min(range(4), key=lambda i, px=px: sum((a - b) ** 2 for a, b in zip(colours[i], px, strict=True)))
        for px in seen
    ]
    assert nearest == [0, 1, 2, 3]


def test_too_many_references_are_400(gemini: httpx.Client) -> None:
    """gemini-2.5-flash-image takes 3 references: a fourth is a 400; the 3.x models take 14, not 15."""
    tiny = blob(solid(size=(16, 16)))
    assert gemini.post(generate(FLASH25), json=request(*[tiny] * 3)).status_code == 200
    r = gemini.post(generate(FLASH25), json=request(*[tiny] * 4))
    assert r.status_code == 400
    assert "at most 3" in error_of(r)["message"]
    assert gemini.post(generate(NB21), json=request(*[tiny] * 15)).status_code == 400


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (LITE, "imageSize", "2K"),
        (FLASH25, "imageSize", "4K"),
        (NB21, "imageSize", "512"),
        (NB21, "imageSize", "2k"),
        (PRO, "aspectRatio", "1:4"),
        (NB21, "aspectRatio", "7:3"),
    ],
)
def test_a_size_or_ratio_the_model_lacks_is_400(
    gemini: httpx.Client, model: str, field: str, value: str
) -> None:
    """Each model takes its own sizes (capital K) and ratios; anything else is 400 INVALID_ARGUMENT."""
    r = gemini.post(generate(model), json=request(imageConfig={field: value}))
    assert r.status_code == 400
    assert error_of(r)["status"] == "INVALID_ARGUMENT"


@pytest.mark.parametrize(
    "body",
    [
        {"contents": []},
        {"contents": [{"parts": [{"text": "x"}]}], "promptt": 1},
        {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"candidateCount": 2}},
        {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"responseModalities": ["image"]}},
        {
            "contents": [
                {"parts": [{"inlineData": {"mimeType": "image/gif", "data": "R0lGODlh"}}, {"text": "x"}]}
            ]
        },
        {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "%%%"}}, {"text": "x"}]}]},
        {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "bm90IGFuIGltYWdl"}}]}]},
    ],
    ids=[
        "no-contents",
        "unknown-field",
        "two-candidates",
        "lower-case-modality",
        "gif",
        "bad-base64",
        "not-an-image",
    ],
)
def test_a_malformed_request_is_400(gemini: httpx.Client, body: dict[str, Any]) -> None:
    """No contents, an unknown field, candidateCount 2, a lower-case modality, a GIF, bad base64 or bytes
    that are no image → 400 INVALID_ARGUMENT."""
    r = gemini.post(generate(), json=body)
    assert r.status_code == 400
    assert error_of(r)["status"] == "INVALID_ARGUMENT"


# -- what comes back ------------------------------------------------------------------------------


def test_a_thinking_model_answers_thoughts_then_the_image(gemini: httpx.Client) -> None:
    """A Gemini 3 answer: a thought text, a small thought image, then the final image with its signature,
    image/png at 1K, and usage with thoughts counted."""
    r = gemini.post(generate(NB21), json=request())
    answer = r.json()
    parts = answer["candidates"][0]["content"]["parts"]
    assert [("text" in p, "inlineData" in p, bool(p.get("thought"))) for p in parts] == [
        (True, False, True),
        (False, True, True),
        (False, True, False),
    ]
    assert "thoughtSignature" in parts[-1]
    mime, data = final_image(answer)
    assert mime == "image/png"
    assert open_image(data).size == (1024, 1024)
    assert open_image(base64.b64decode(parts[1]["inlineData"]["data"])).size == (128, 128)
    usage = answer["usageMetadata"]
    assert usage["candidatesTokenCount"] == 1120
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + 1120 + usage["thoughtsTokenCount"]
    assert answer["modelVersion"] == NB21
    assert answer["responseId"]


def test_the_older_model_does_not_think_and_says_it_is_deprecated(gemini: httpx.Client) -> None:
    """gemini-2.5-flash-image answers the image alone (1290 tokens) and a modelStatus of DEPRECATED."""
    answer = gemini.post(generate(FLASH25), json=request(imageConfig={"aspectRatio": "16:9"})).json()
    [part] = answer["candidates"][0]["content"]["parts"]
    assert open_image(base64.b64decode(part["inlineData"]["data"])).size == (1376, 768)
    assert answer["usageMetadata"]["candidatesTokenCount"] == 1290
    assert answer["modelStatus"]["modelStage"] == "DEPRECATED"


@pytest.mark.parametrize(
    ("size", "mime", "tokens"),
    [("1K", "image/png", 1120), ("2K", "image/jpeg", 1120), ("4K", "image/jpeg", 2000)],
)
def test_pro_bills_its_tokens_per_size(gemini: httpx.Client, size: str, mime: str, tokens: int) -> None:
    """Pro: 1120 output tokens at 1K and 2K, 2000 at 4K; PNG at 1K, JPEG above, declared as what it is."""
    answer = gemini.post(
        generate(PRO), json=request(imageConfig={"imageSize": size, "aspectRatio": "21:9"})
    ).json()
    got_mime, data = final_image(answer)
    assert got_mime == mime
    assert open_image(data).format == {"image/png": "PNG", "image/jpeg": "JPEG"}[mime]
    assert open_image(data).size == (1584 * int(size[0]), 672 * int(size[0]))
    assert answer["usageMetadata"]["candidatesTokenCount"] == tokens


def test_references_count_as_prompt_tokens(gemini: httpx.Client) -> None:
    """Each reference adds 560 prompt tokens on Pro, listed under modality IMAGE."""
    tiny = blob(solid(size=(16, 16)))
    usage = gemini.post(generate(PRO), json=request(tiny, tiny)).json()["usageMetadata"]
    assert {"modality": "IMAGE", "tokenCount": 1120} in usage["promptTokensDetails"]


def test_without_the_image_modality_the_answer_is_text(gemini: httpx.Client) -> None:
    """responseModalities ["TEXT"] → a text part, no image, finishReason STOP."""
    body = request(responseModalities=["TEXT"])
    [part] = gemini.post(generate(), json=body).json()["candidates"][0]["content"]["parts"]
    assert set(part) == {"text"}


@pytest.mark.parametrize(
    ("fault", "check"),
    [
        (
            Fault(blocked=True),
            lambda a: a["promptFeedback"] == {"blockReason": "PROHIBITED_CONTENT"} and "candidates" not in a,
        ),
        (Fault(blocked=True, error="SAFETY"), lambda a: a["promptFeedback"]["blockReason"] == "SAFETY"),
        (
            Fault(finish="IMAGE_SAFETY"),
            lambda a: (
                a["candidates"][0]["finishReason"] == "IMAGE_SAFETY" and "content" not in a["candidates"][0]
            ),
        ),
        (Fault(empty=True), lambda a: [set(p) for p in a["candidates"][0]["content"]["parts"]] == [{"text"}]),
    ],
    ids=["blocked", "blocked-safety", "finish-image-safety", "text-only"],
)
def test_empty_answers_are_200(gemini: httpx.Client, emulator: Emulator, fault: Fault, check: Any) -> None:
    """A block, a withheld image and a text-only answer are all HTTP 200 without an image."""
    emulator.script(ROUTE, fault)
    r = gemini.post(generate(), json=request())
    assert r.status_code == 200
    assert check(r.json())


def test_a_429_carries_its_retry_delay_in_the_body_only(gemini: httpx.Client, emulator: Emulator) -> None:
    """429 RESOURCE_EXHAUSTED with QuotaFailure, Help and RetryInfo "7.5s" in details; no Retry-After."""
    emulator.script(ROUTE, Fault(status=429, seconds=7.5))
    r = gemini.post(generate(), json=request())
    error = error_of(r)
    assert (r.status_code, error["status"]) == (429, "RESOURCE_EXHAUSTED")
    kinds = [d["@type"].rsplit(".", 1)[1] for d in error["details"]]
    assert kinds == ["QuotaFailure", "Help", "RetryInfo"]
    assert error["details"][-1]["retryDelay"] == "7.5s"
    assert "retry-after" not in r.headers


@pytest.mark.parametrize(
    ("status", "name"), [(500, "INTERNAL"), (503, "UNAVAILABLE"), (504, "DEADLINE_EXCEEDED")]
)
def test_server_errors_have_google_status_names(
    gemini: httpx.Client, emulator: Emulator, status: int, name: str
) -> None:
    """Scripted 5xx answers in Google's error shape with its status name."""
    emulator.script(ROUTE, Fault(status=status))
    r = gemini.post(generate(), json=request())
    assert (r.status_code, error_of(r)["status"]) == (status, name)


def test_a_502_is_an_html_page(gemini: httpx.Client, emulator: Emulator) -> None:
    """A 502 comes from Google's front end as HTML, not JSON."""
    emulator.script(ROUTE, Fault(status=502))
    r = gemini.post(generate(), json=request())
    assert r.status_code == 502
    assert r.headers["content-type"].startswith("text/html")


def test_a_reply_slower_than_the_announced_deadline_is_504(gemini: httpx.Client, emulator: Emulator) -> None:
    """With X-Server-Timeout: 1 and 1.2 s of scripted latency the answer is 504 DEADLINE_EXCEEDED."""
    emulator.script(ROUTE, Fault(latency=1.2))
    r = gemini.post(generate(), json=request(), headers={"x-server-timeout": "1"})
    assert (r.status_code, error_of(r)["status"]) == (504, "DEADLINE_EXCEEDED")


# -- the model listing ----------------------------------------------------------------------------


def test_the_listing_names_every_image_model_served(gemini: httpx.Client) -> None:
    """GET models lists the four image models served today, each able to generateContent."""
    r = gemini.get("/models")
    assert r.status_code == 200
    names = [m["name"] for m in r.json()["models"]]
    assert names == [f"models/{m}" for m in (NB21, PRO, LITE, FLASH25)]
    assert all("generateContent" in m["supportedGenerationMethods"] for m in r.json()["models"])


async def test_the_sdk_reads_one_model_and_a_retired_one_is_404(
    emulator: Emulator, test_keys: dict[str, str]
) -> None:
    """The real SDK's models.get reads a served model; a shut-down one raises its 404, "no longer
    available"."""
    from google import genai
    from google.genai import errors, types

    options = types.HttpOptions(base_url=emulator.base_url("gemini"), api_version="")
    client = genai.Client(vertexai=False, api_key=test_keys["gemini"], http_options=options)
    try:
        model = await client.aio.models.get(model=PRO)
        assert (model.name, model.display_name) == (f"models/{PRO}", "Nano Banana Pro")
        with pytest.raises(errors.ClientError) as info:
            await client.aio.models.get(model="gemini-3.1-flash-image")
        assert info.value.code == 404
        assert "no longer available" in (info.value.message or "")
    finally:
        await client.aio.aclose()
        client.close()
    assert [r.route for r in emulator.requests] == ["gemini.model", "gemini.model"]


def test_a_test_can_script_drift_in_the_listing(gemini: httpx.Client, emulator: Emulator) -> None:
    """A model dropped from `emu.listings.gemini` is gone from GET models and 404s on GET models/{id};
    `reset()` brings it back."""
    emulator.listings.gemini = [m for m in emulator.listings.gemini if m["name"] != f"models/{LITE}"]
    assert f"models/{LITE}" not in [m["name"] for m in gemini.get("/models").json()["models"]]
    assert gemini.get(f"/models/{LITE}").status_code == 404
    emulator.reset()
    assert gemini.get(f"/models/{LITE}").status_code == 200
