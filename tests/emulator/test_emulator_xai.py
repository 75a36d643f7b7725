"""The emulated xAI API, spoken to over real HTTP."""

from __future__ import annotations

import base64
import time

import httpx
import pytest
from emulator_helpers import data_uri, is_reddish, mean_rgb, open_image, solid

from imagerelay.emulator import Emulator, Fault
from imagerelay.emulator.xai import listed as xai_listed

GEN = "/images/generations"
EDIT = "/images/edits"
MODEL = "grok-imagine-image"


@pytest.mark.parametrize("field", ["size", "style", "seed", "negative_prompt"])
def test_unsupported_argument_is_400_code_error(xai: httpx.Client, field: str) -> None:
    """size, style, seed and any unknown field → 400 {code, error: "Argument not supported: <field>"}."""
    r = xai.post(GEN, json={"model": MODEL, "prompt": "a cat", field: "1024x1024"})
    assert r.status_code == 400
    assert r.json() == {
        "code": "Client specified an invalid argument",
        "error": f"Argument not supported: {field}",
    }


@pytest.mark.parametrize(
    ("field", "value"), [("resolution", "1K"), ("aspect_ratio", "7:5"), ("response_format", "png")]
)
def test_bad_enum_value_is_422(xai: httpx.Client, field: str, value: str) -> None:
    """A value outside an enum → 422 in the {code, error} shape."""
    r = xai.post(GEN, json={"model": MODEL, "prompt": "a cat", field: value})
    assert r.status_code == 422
    assert set(r.json()) == {"code", "error"}


def test_bad_key_is_400_and_key_is_masked(emulator: Emulator) -> None:
    """A wrong xAI key → 400 "Incorrect API key provided: xa***ey." and the key is never echoed whole."""
    r = httpx.post(
        emulator.base_url("xai") + GEN,
        json={"model": MODEL, "prompt": "a cat"},
        headers={"authorization": "Bearer xai-wrong-key"},
    )
    assert r.status_code == 400
    assert r.json()["error"].startswith("Incorrect API key provided: xa***ey.")
    assert "xai-wrong-key" not in r.text
    assert emulator.requests[-1].key_ok is False
    assert emulator.requests[-1].headers["authorization"] == "<redacted>"


def test_missing_key_is_400(emulator: Emulator) -> None:
    """No Authorization header at all → 400 like a wrong key."""
    r = httpx.post(emulator.base_url("xai") + GEN, json={"model": MODEL, "prompt": "a cat"})
    assert r.status_code == 400
    assert "Incorrect API key" in r.json()["error"]


@pytest.mark.parametrize("model", ["grok-2-image", "grok-imagine-video"])
def test_retired_or_unknown_model_is_404(xai: httpx.Client, model: str) -> None:
    """grok-2-image (retired) and unknown models → 404 "Some requested entity was not found"."""
    r = xai.post(GEN, json={"model": model, "prompt": "a cat"})
    assert r.status_code == 404
    assert r.json()["code"] == "Some requested entity was not found"
    assert r.json()["error"].startswith(f"The model {model} does not exist")


def test_multipart_body_is_refused(xai: httpx.Client) -> None:
    """The image endpoints are JSON only: a multipart edit is refused in the {code, error} shape."""
    r = xai.post(EDIT, data={"prompt": "x", "model": MODEL}, files={"image": ("a.png", solid(), "image/png")})
    assert r.status_code in (400, 415)
    assert set(r.json()) == {"code", "error"}


def test_b64_json_is_a_jpeg_data_uri(xai: httpx.Client) -> None:
    """b64_json is a data:image/jpeg;base64 URI string; mime_type image/jpeg; block_reason null."""
    r = xai.post(GEN, json={"model": MODEL, "prompt": "a cat", "response_format": "b64_json", "n": 2})
    assert r.status_code == 200
    body = r.json()
    assert body["block_reason"] is None
    assert len(body["data"]) == 2
    item = body["data"][0]
    assert item["mime_type"] == "image/jpeg"
    assert item["revised_prompt"] == ""
    assert item["b64_json"].startswith("data:image/jpeg;base64,")
    img = open_image(base64.b64decode(item["b64_json"].split(",", 1)[1]))
    assert (img.format, img.size) == ("JPEG", (1024, 1024))


def test_url_is_downloadable_then_expires(emulator: Emulator, xai: httpx.Client) -> None:
    """A url output serves a JPEG until expire_urls(), then answers 403 with an XML body."""
    url = xai.post(GEN, json={"model": MODEL, "prompt": "a cat"}).json()["data"][0]["url"]
    got = httpx.get(url)
    assert got.status_code == 200
    assert got.headers["content-type"] == "image/jpeg"
    assert open_image(got.content).format == "JPEG"
    emulator.expire_urls()
    gone = httpx.get(url)
    assert gone.status_code == 403
    assert b"<Error>" in gone.content
    assert [r.route for r in emulator.requests_for("files")] == ["files", "files"]


def test_urls_expire_after_ttl(test_keys: dict[str, str]) -> None:
    """Hosted URLs stop working once url_ttl seconds have passed."""
    with Emulator(keys=test_keys, url_ttl=0.2) as emu:
        r = httpx.post(
            emu.base_url("xai") + GEN,
            json={"model": MODEL, "prompt": "a cat", "resolution": "1k", "aspect_ratio": "1:2"},
            headers={"authorization": f"Bearer {test_keys['xai']}"},
        )
        url = r.json()["data"][0]["url"]
        assert httpx.get(url).status_code == 200
        time.sleep(0.25)
        assert httpx.get(url).status_code == 403


@pytest.mark.parametrize(
    ("ratio", "resolution", "size"),
    [
        ("16:9", "1k", (1360, 768)),
        ("9:16", "2k", (1536, 2720)),
        ("auto", "2k", (2048, 2048)),
        (None, None, (1024, 1024)),
    ],
)
def test_pixel_size_follows_ratio_and_resolution(
    xai: httpx.Client, ratio: str | None, resolution: str | None, size: tuple[int, int]
) -> None:
    """Output size is about 1 MP (1k) or 4 MP (2k, at most 2048x2048 in area) at the ratio, sides
    multiples of 16."""
    body = {"model": MODEL, "prompt": "a cat", "response_format": "b64_json"}
    body |= {k: v for k, v in (("aspect_ratio", ratio), ("resolution", resolution)) if v}
    item = xai.post(GEN, json=body).json()["data"][0]
    assert open_image(base64.b64decode(item["b64_json"].split(",", 1)[1])).size == size


@pytest.mark.parametrize(
    ("model", "extra", "n", "usd"),
    [
        ("grok-imagine-image", {}, 2, 0.04),
        ("grok-imagine-image", {"resolution": "2k"}, 1, 0.02),
        ("grok-imagine-image-quality", {"resolution": "1k"}, 1, 0.04),
        ("grok-imagine-image-quality", {"resolution": "2k", "quality": "medium"}, 1, 0.06),
        ("grok-imagine-image-2.0", {"quality": "low"}, 1, 0.04),
        ("grok-imagine-image-2.0", {"quality": "medium"}, 1, 0.06),
        ("grok-imagine-image-2.0", {"quality": "medium", "resolution": "2k"}, 1, 0.08),
        ("grok-imagine-image-2.0", {"quality": "low", "resolution": "2k"}, 2, 0.12),
        ("grok-imagine-image-2.0", {}, 1, 0.04),
        ("grok-imagine-image-2.0", {"quality": "auto"}, 1, 0.04),
    ],
)
def test_cost_in_usd_ticks(xai: httpx.Client, model: str, extra: dict[str, str], n: int, usd: float) -> None:
    """usage.cost_in_usd_ticks is xAI's price per image × n in 1e-10 USD: 2.0 by quality ×
    resolution (auto = low for a generation); the retired quality model as 2.0 at low."""
    body = {"model": model, "prompt": "a cat", "n": n, **extra}
    r = xai.post(GEN, json=body)
    assert r.status_code == 200
    assert r.json()["usage"]["cost_in_usd_ticks"] == round(usd * 1e10)


def test_quality_is_ignored_by_other_models(xai: httpx.Client) -> None:
    """quality on grok-imagine-image is accepted and changes nothing (price or size)."""
    r = xai.post(GEN, json={"model": MODEL, "prompt": "a cat", "quality": "medium"})
    assert r.status_code == 200
    assert r.json()["usage"]["cost_in_usd_ticks"] == round(0.02 * 1e10)


@pytest.mark.parametrize(
    ("model", "served"),
    [
        ("grok-imagine-image", "grok-imagine-image"),
        ("grok-imagine-image-2.0", "grok-imagine-image-2.0"),
        ("grok-imagine-image-quality", "grok-imagine-image-2.0"),
        ("grok-imagine-image-pro", "grok-imagine-image-2.0"),
    ],
)
def test_answer_names_the_model_that_served(xai: httpx.Client, model: str, served: str) -> None:
    """Every answer carries the top-level `model` that served it: a retired name answers as 2.0."""
    r = xai.post(GEN, json={"model": model, "prompt": "a cat"})
    assert r.status_code == 200
    assert r.json()["model"] == served


def test_2_0_takes_wide_ratios_and_five_images(xai: httpx.Client) -> None:
    """2.0 takes 21:9 and 5:2 and up to five images; 1.0 refuses those ratios and a fourth image."""
    body = {"model": "grok-imagine-image-2.0", "prompt": "x", "aspect_ratio": "21:9"}
    assert xai.post(GEN, json=body).status_code == 200
    assert xai.post(GEN, json={**body, "model": MODEL}).status_code == 422
    ref = {"url": data_uri(solid())}
    five = {"model": "grok-imagine-image-2.0", "prompt": "x", "images": [ref] * 5}
    r = xai.post(EDIT, json=five)
    assert r.status_code == 200
    assert r.json()["usage"]["cost_in_usd_ticks"] == round((0.06 + 5 * 0.01) * 1e10)  # auto = medium
    assert xai.post(EDIT, json={**five, "images": [ref] * 6}).status_code == 400


def test_webp_reference_accepted_and_large_ones_refused(xai: httpx.Client) -> None:
    """A WebP reference is taken as it is; one over 10 MiB is refused with 400."""
    webp = {"url": data_uri(solid(fmt="WEBP"), "image/webp")}
    assert xai.post(EDIT, json={"model": MODEL, "prompt": "x", "image": webp}).status_code == 200
    big = {
        "url": "data:image/png;base64," + base64.b64encode(b"\x89PNG" + b"\0" * (10 * 1024 * 1024)).decode()
    }
    r = xai.post(EDIT, json={"model": MODEL, "prompt": "x", "image": big})
    assert r.status_code == 400
    assert "10 MiB" in r.json()["error"]


def test_image_generation_models_listing(emulator: Emulator, xai: httpx.Client) -> None:
    """GET /v1/image-generation-models lists ids, aliases and image_price in 1e-10 USD, and
    follows what a test scripts into the listing."""
    models = {m["id"]: m for m in xai.get("/image-generation-models").json()["models"]}
    assert set(models) == {"grok-imagine-image", "grok-imagine-image-2.0"}
    assert models["grok-imagine-image"]["image_price"] == 200_000_000
    assert models["grok-imagine-image-2.0"]["image_price"] == 400_000_000
    assert "grok-imagine-image-quality" in models["grok-imagine-image-2.0"]["aliases"]
    xai_listed(emulator, "grok-imagine-image")["image_price"] = 300_000_000
    listed = xai.get("/image-generation-models").json()["models"]
    assert next(m for m in listed if m["id"] == MODEL)["image_price"] == 300_000_000


def test_n_out_of_range_is_400(xai: httpx.Client) -> None:
    """n above 10 is refused."""
    assert xai.post(GEN, json={"model": MODEL, "prompt": "a cat", "n": 11}).status_code == 400


def test_blocked_fault_sets_block_reason(emulator: Emulator, xai: httpx.Client) -> None:
    """Fault(blocked=True) → 200 with block_reason set and no data."""
    emulator.script("xai.generations", Fault(blocked=True))
    body = xai.post(GEN, json={"model": MODEL, "prompt": "a cat"}).json()
    assert body["block_reason"]
    assert body["data"] == []


def test_empty_fault_is_200_without_data(emulator: Emulator, xai: httpx.Client) -> None:
    """Fault(empty=True) → 200, block_reason null, data []."""
    emulator.script("xai.generations", Fault(empty=True))
    r = xai.post(GEN, json={"model": MODEL, "prompt": "a cat"})
    assert r.status_code == 200
    assert r.json()["data"] == []
    assert r.json()["block_reason"] is None


def test_truncate_fault_truncates_b64_image(emulator: Emulator, xai: httpx.Client) -> None:
    """Fault(truncate=True) → the b64 image bytes are cut short and do not decode fully."""
    emulator.script("xai.generations", Fault(truncate=True))
    body = {"model": MODEL, "prompt": "a cat", "response_format": "b64_json"}
    item = xai.post(GEN, json=body).json()["data"][0]
    with pytest.raises(OSError, match=r"truncated|broken|cannot identify"):
        open_image(base64.b64decode(item["b64_json"].split(",", 1)[1]))


def test_status_fault_uses_xai_error_shape(emulator: Emulator, xai: httpx.Client) -> None:
    """Fault(status=429, headers=...) → 429 in the {code, error} shape with the scripted header, once."""
    emulator.script("xai.generations", Fault(status=429, headers={"retry-after": "1"}))
    r = xai.post(GEN, json={"model": MODEL, "prompt": "a cat"})
    assert r.status_code == 429
    assert r.headers["retry-after"] == "1"
    assert set(r.json()) == {"code", "error"}
    assert xai.post(GEN, json={"model": MODEL, "prompt": "a cat"}).status_code == 200


def test_edit_with_one_data_uri_image_keeps_its_colour_and_ratio(xai: httpx.Client) -> None:
    """An edit with one image {url: data URI} → 200; output keeps the reference's ratio and colour."""
    ref = data_uri(solid((255, 0, 0), (200, 100)))
    body = {"model": MODEL, "prompt": "make it red", "image": {"url": ref}, "response_format": "b64_json"}
    r = xai.post(EDIT, json=body)
    assert r.status_code == 200
    jpeg = base64.b64decode(r.json()["data"][0]["b64_json"].split(",", 1)[1])
    assert open_image(jpeg).size == (1456, 720)  # about 1 MP at 2:1
    assert is_reddish(mean_rgb(jpeg))
    assert r.json()["usage"]["cost_in_usd_ticks"] == round(0.03 * 1e10)


def test_edit_with_three_images(xai: httpx.Client) -> None:
    """images with 3 data URIs (jpeg and png) → 200, priced with +$0.01 per input image."""
    jpeg = {"url": data_uri(solid((0, 0, 255), fmt="JPEG"), "image/jpeg")}
    refs = [jpeg, {"url": data_uri(solid())}, {"url": data_uri(solid())}]
    r = xai.post(EDIT, json={"model": MODEL, "prompt": "<IMAGE_0> with <IMAGE_1>", "images": refs})
    assert r.status_code == 200
    assert r.json()["usage"]["cost_in_usd_ticks"] == round(0.05 * 1e10)


def test_edit_refuses_four_images_or_both_fields(xai: httpx.Client) -> None:
    """4 images, or both image and images → 400."""
    ref = {"url": data_uri(solid())}
    assert xai.post(EDIT, json={"model": MODEL, "prompt": "x", "images": [ref] * 4}).status_code == 400
    both = {"model": MODEL, "prompt": "x", "image": ref, "images": [ref]}
    assert xai.post(EDIT, json=both).status_code == 400


def test_edit_refuses_undecodable_or_foreign_images(xai: httpx.Client) -> None:
    """A data URI that is not an image, or a URL the emulator cannot fetch → 400."""
    junk = {"url": "data:image/png;base64," + base64.b64encode(b"not a png").decode()}
    assert xai.post(EDIT, json={"model": MODEL, "prompt": "x", "image": junk}).status_code == 400
    foreign = {"url": "https://example.com/cat.png"}
    r = xai.post(EDIT, json={"model": MODEL, "prompt": "x", "image": foreign})
    assert r.status_code == 400
    assert "could not fetch" in r.json()["error"]


def test_edit_accepts_own_hosted_url(xai: httpx.Client) -> None:
    """A URL the emulator itself handed out can be used as an edit reference."""
    url = xai.post(GEN, json={"model": MODEL, "prompt": "a cat"}).json()["data"][0]["url"]
    assert xai.post(EDIT, json={"model": MODEL, "prompt": "x", "image": {"url": url}}).status_code == 200


def test_chat_describes_the_image(xai: httpx.Client) -> None:
    """chat/completions with an image_url part answers a fixed description with its size and colour."""
    content = [
        {"type": "text", "text": "Describe this image."},
        {"type": "image_url", "image_url": {"url": data_uri(solid((255, 0, 0), (30, 20))), "detail": "high"}},
    ]
    body = {"model": "grok-4.6", "messages": [{"role": "user", "content": content}]}
    first = xai.post("/chat/completions", json=body).json()
    text = first["choices"][0]["message"]["content"]
    assert "30x20" in text
    assert "red" in text
    assert first["usage"]["total_tokens"] > 0
    assert xai.post("/chat/completions", json=body).json()["choices"][0]["message"]["content"] == text


def test_chat_retired_vision_model_is_404(xai: httpx.Client) -> None:
    """grok-2-vision → 404 in the {code, error} shape."""
    r = xai.post(
        "/chat/completions", json={"model": "grok-2-vision", "messages": [{"role": "user", "content": "hi"}]}
    )
    assert r.status_code == 404
    assert r.json()["code"] == "Some requested entity was not found"
