"""The emulated OpenAI image API, spoken to with the real openai SDK."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator

import httpx
import openai
import pytest
from emulator_helpers import data_uri, is_reddish, mean_rgb, open_image, solid
from PIL import Image

from imagerelay.emulator import Emulator, Fault

MODEL = "gpt-image-2"


@pytest.fixture
def client(emulator: Emulator, test_keys: dict[str, str]) -> Iterator[openai.OpenAI]:
    """The real SDK pointed at the emulator, SDK retries off."""
    with openai.OpenAI(base_url=emulator.base_url("openai"), api_key=test_keys["openai"], max_retries=0) as c:
        yield c


def test_generation_returns_bare_b64_and_usage(client: openai.OpenAI) -> None:
    """A generation → bare base64 PNG (no data: prefix), the echoed settings and token usage."""
    res = client.images.generate(model=MODEL, prompt="a cat", size="1024x1024", quality="low")
    assert res.data is not None
    b64 = res.data[0].b64_json
    assert b64 is not None
    assert not b64.startswith("data:")
    img = open_image(base64.b64decode(b64))
    assert (img.format, img.size) == ("PNG", (1024, 1024))
    assert (res.size, res.quality, res.output_format, res.background) == ("1024x1024", "low", "png", "opaque")
    assert res.usage is not None
    assert res.usage.output_tokens == 196
    assert res.usage.input_tokens == res.usage.input_tokens_details.text_tokens > 0
    assert res.usage.total_tokens == res.usage.input_tokens + res.usage.output_tokens


@pytest.mark.parametrize(
    ("size", "quality", "tokens"),
    [("1024x1024", "high", 7024), ("1536x1024", "medium", 1372), ("1024x1024", "medium", 1756)],
)
def test_output_tokens_scale_with_size_and_quality(
    client: openai.OpenAI, size: str, quality: str, tokens: int
) -> None:
    """usage.output_tokens follows gpt-image-2's calculator by size and quality."""
    res = client.images.generate(model=MODEL, prompt="a cat", size=size, quality=quality)  # type: ignore[arg-type]
    assert res.usage is not None
    assert res.usage.output_tokens == tokens


def test_jpeg_and_webp_output_and_n(client: openai.OpenAI) -> None:
    """output_format jpeg/webp is honoured, n images come back."""
    res = client.images.generate(model=MODEL, prompt="a cat", output_format="jpeg", n=3, size="1024x1536")
    assert res.data is not None
    assert len(res.data) == 3
    assert open_image(base64.b64decode(res.data[0].b64_json or "")).format == "JPEG"
    res = client.images.generate(model=MODEL, prompt="a cat", output_format="webp")
    assert res.data is not None
    assert open_image(base64.b64decode(res.data[0].b64_json or "")).format == "WEBP"


def test_response_format_is_unknown_parameter(client: openai.OpenAI) -> None:
    """response_format sent to a GPT-image model → 400 unknown_parameter, param response_format."""
    with pytest.raises(openai.BadRequestError) as exc:
        client.images.generate(model=MODEL, prompt="a cat", response_format="b64_json")
    assert exc.value.status_code == 400
    assert exc.value.body == {
        "message": "Unknown parameter: 'response_format'.",
        "type": "invalid_request_error",
        "param": "response_format",
        "code": "unknown_parameter",
    }


@pytest.mark.parametrize("param", ["seed", "style", "aspect_ratio"])
def test_other_unknown_parameters(client: openai.OpenAI, param: str) -> None:
    """seed, style, aspect_ratio → 400 unknown_parameter naming the parameter."""
    with pytest.raises(openai.BadRequestError) as exc:
        client.images.generate(model=MODEL, prompt="a cat", extra_body={param: "x"})
    assert exc.value.code == "unknown_parameter"
    assert exc.value.param == param


@pytest.mark.parametrize(
    "model",
    [
        "dall-e-3",
        "dall-e-2",
        "gpt-image-1",
        "gpt-image-1.5",
        "gpt-image-1-mini",
        "chatgpt-image-latest",
        "gpt-image-9",
    ],
)
def test_retired_model_is_model_not_found(client: openai.OpenAI, model: str) -> None:
    """DALL·E, gpt-image-1, the models shut down on 2026-12-01 and unknown models → 404
    model_not_found."""
    with pytest.raises(openai.NotFoundError) as exc:
        client.images.generate(model=model, prompt="a cat")
    assert exc.value.code == "model_not_found"
    assert exc.value.message.startswith("Error code: 404")
    assert isinstance(exc.value.body, dict)
    assert exc.value.body["message"] == f"The model `{model}` does not exist or you do not have access to it."


@pytest.mark.parametrize(
    ("model", "size", "ok"),
    [
        ("gpt-image-2", "1536x864", True),
        ("gpt-image-2.6-flare", "3840x2160", True),
        ("gpt-image-2", "1000x1000", False),  # not divisible by 16
        ("gpt-image-2", "3200x1056", False),  # wider than 3:1
        ("gpt-image-2", "2160x3840", True),
        ("gpt-image-2", "4096x2048", False),  # too large
        ("gpt-image-2", "512x512", False),  # under 655,360 pixels
        ("gpt-image-2-2026-04-21", "1024x1536", True),
        ("gpt-image-2.5-flare-2026-09-08", "1536x864", True),
        ("gpt-image-2", "1792x1024", True),
    ],
)
def test_size_rules_by_model(client: openai.OpenAI, model: str, size: str, ok: bool) -> None:
    """Every served model takes any WxH within the limits (multiples of 16, 1:3–3:1, at most
    3840x2160, at least 655,360 pixels), snapshots included."""
    if ok:
        res = client.images.generate(model=model, prompt="x", size=size, quality="low")
        assert res.size == size
        assert res.data is not None
        w, h = (int(v) for v in size.split("x"))
        assert open_image(base64.b64decode(res.data[0].b64_json or "")).size == (w, h)
    else:
        with pytest.raises(openai.BadRequestError) as exc:
            client.images.generate(model=model, prompt="x", size=size)
        assert (exc.value.code, exc.value.param) == ("invalid_value", "size")


def test_bad_enum_is_invalid_value(client: openai.OpenAI) -> None:
    """A quality outside low|medium|high|auto → 400 invalid_value with param quality."""
    with pytest.raises(openai.BadRequestError) as exc:
        client.images.generate(model=MODEL, prompt="x", quality="hd")
    assert (exc.value.code, exc.value.param) == ("invalid_value", "quality")


def test_bad_key_is_401_and_masked(emulator: Emulator) -> None:
    """A wrong key → 401 invalid_api_key; the message never holds the whole key."""
    with (
        openai.OpenAI(
            base_url=emulator.base_url("openai"), api_key="sk-wrong-key-123456", max_retries=0
        ) as c,
        pytest.raises(openai.AuthenticationError) as exc,
    ):
        c.images.generate(model=MODEL, prompt="x")
    assert exc.value.code == "invalid_api_key"
    assert "sk-wrong-key-123456" not in str(exc.value.body)


def test_moderation_blocked_fault(emulator: Emulator, client: openai.OpenAI) -> None:
    """Fault(blocked=True) → 400 moderation_blocked, type image_generation_user_error."""
    emulator.script("openai.generations", Fault(blocked=True))
    with pytest.raises(openai.BadRequestError) as exc:
        client.images.generate(model=MODEL, prompt="x")
    assert exc.value.code == "moderation_blocked"
    assert exc.value.type == "image_generation_user_error"


def test_rate_limit_fault_has_retry_headers(emulator: Emulator, client: openai.OpenAI) -> None:
    """Fault(status=429) → rate_limit_exceeded with retry-after, retry-after-ms and x-ratelimit-* headers."""
    emulator.script("openai.generations", Fault(status=429, headers={"retry-after": "2"}))
    with pytest.raises(openai.RateLimitError) as exc:
        client.images.generate(model=MODEL, prompt="x")
    headers = exc.value.response.headers
    assert headers["retry-after"] == "2"
    assert headers["retry-after-ms"] == "2000"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert exc.value.code == "rate_limit_exceeded"
    assert headers["x-request-id"]


@pytest.mark.parametrize(
    ("status", "error"), [(500, openai.InternalServerError), (503, openai.InternalServerError)]
)
def test_server_error_faults(
    emulator: Emulator, client: openai.OpenAI, status: int, error: type[openai.APIStatusError]
) -> None:
    """Fault(status=5xx) → the OpenAI error shape, mapped by the SDK to InternalServerError."""
    emulator.script("openai.generations", Fault(status=status))
    with pytest.raises(error) as exc:
        client.images.generate(model=MODEL, prompt="x")
    assert exc.value.status_code == status
    assert exc.value.type == "server_error"


def test_every_response_has_a_request_id(emulator: Emulator, test_keys: dict[str, str]) -> None:
    """x-request-id is on successes, errors and unknown endpoints alike, and differs per response."""
    base = emulator.base_url("openai")
    auth = {"authorization": f"Bearer {test_keys['openai']}"}
    ok = httpx.post(
        f"{base}/images/generations", json={"model": MODEL, "prompt": "x", "quality": "low"}, headers=auth
    )
    bad = httpx.post(f"{base}/images/generations", json={"model": MODEL}, headers=auth)
    gone = httpx.post(f"{base}/images/variations", headers=auth)
    ids = [r.headers.get("x-request-id") for r in (ok, bad, gone)]
    assert [ok.status_code, bad.status_code, gone.status_code] == [200, 400, 404]
    assert all(ids)
    assert len(set(ids)) == 3


def test_variations_is_retired(emulator: Emulator, test_keys: dict[str, str]) -> None:
    """/v1/images/variations → 404 in the OpenAI error shape."""
    r = httpx.post(
        emulator.base_url("openai") + "/images/variations",
        files={"image": ("a.png", solid(), "image/png")},
        headers={"authorization": f"Bearer {test_keys['openai']}"},
    )
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "Invalid URL (POST /v1/images/variations)"


def test_multipart_edit_with_sdk_derives_from_first_image(emulator: Emulator, client: openai.OpenAI) -> None:
    """images.edit(image=[...]) sends multipart image[] parts; the output derives from the first image."""
    red, blue = solid((255, 0, 0), (300, 200)), solid((0, 0, 255), (64, 64), "JPEG")
    res = client.images.edit(
        model=MODEL, prompt="keep it", image=[("red.png", red, "image/png"), ("blue.jpg", blue, "image/jpeg")]
    )
    assert res.data is not None
    out = base64.b64decode(res.data[0].b64_json or "")
    assert is_reddish(mean_rgb(out))
    assert res.size == "1536x1024"  # auto follows the first image's landscape ratio
    assert res.usage is not None
    assert res.usage.input_tokens_details.image_tokens > 0
    logged = emulator.requests_for("openai.edits")[-1]
    assert [(name, ctype) for name, _, ctype, _ in logged.files] == [
        ("image[]", "image/png"),
        ("image[]", "image/jpeg"),
    ]
    assert logged.form["prompt"] == "keep it"


def test_multipart_edit_single_image_and_mask(client: openai.OpenAI) -> None:
    """A single `image` file with a same-sized PNG mask → 200; a mask of another size → 400."""
    image = solid((0, 200, 0), (128, 128))
    mask = io.BytesIO()
    Image.new("RGBA", (128, 128), (0, 0, 0, 0)).save(mask, "PNG")
    res = client.images.edit(
        model=MODEL, prompt="x", image=("g.png", image, "image/png"), mask=mask.getvalue()
    )
    assert res.data
    small = io.BytesIO()
    Image.new("RGBA", (64, 64), (0, 0, 0, 0)).save(small, "PNG")
    with pytest.raises(openai.BadRequestError) as exc:
        client.images.edit(
            model=MODEL, prompt="x", image=("g.png", image, "image/png"), mask=small.getvalue()
        )
    assert exc.value.param == "mask"


def test_multipart_edit_refuses_non_images(client: openai.OpenAI) -> None:
    """A file that is not png/webp/jpeg → 400."""
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, "GIF")
    with pytest.raises(openai.BadRequestError):
        client.images.edit(model=MODEL, prompt="x", image=("a.gif", gif.getvalue(), "image/gif"))


def test_json_edit_with_data_url(client: openai.OpenAI) -> None:
    """JSON edits {"images": [{"image_url": data URI}]} → 200, derived from the reference."""
    body = {"model": MODEL, "prompt": "x", "images": [{"image_url": data_uri(solid((255, 0, 0)))}]}
    res = client.post("/images/edits", body=body, cast_to=openai.types.ImagesResponse)
    assert res.data is not None
    assert is_reddish(mean_rgb(base64.b64decode(res.data[0].b64_json or "")))


def test_json_edit_refuses_response_format(client: openai.OpenAI) -> None:
    """JSON edits apply the same unknown_parameter rule."""
    body = {
        "model": MODEL,
        "prompt": "x",
        "images": [{"image_url": data_uri(solid())}],
        "response_format": "url",
    }
    with pytest.raises(openai.BadRequestError) as exc:
        client.post("/images/edits", body=body, cast_to=openai.types.ImagesResponse)
    assert exc.value.param == "response_format"


def test_empty_fault_is_200_without_data(emulator: Emulator, client: openai.OpenAI) -> None:
    """Fault(empty=True) → 200 with data [] and usage still present."""
    emulator.script("openai.generations", Fault(empty=True))
    res = client.images.generate(model=MODEL, prompt="x")
    assert res.data == []
    assert res.usage is not None


@pytest.mark.parametrize(
    ("model", "fields", "ok"),
    [
        ("gpt-image-2.5-sunburst", {"quality": "xhigh"}, True),
        ("gpt-image-2.6-flare", {"quality": "max"}, True),
        ("gpt-image-2", {"quality": "xhigh"}, False),
        ("gpt-image-2.6-sunburst", {"complexity": "low"}, True),
        ("gpt-image-2", {"complexity": "low"}, False),
        ("gpt-image-2", {"safety_identifier": "hashed-user-1"}, True),
        ("gpt-image-2", {"user": "u-1"}, True),
        ("gpt-image-2", {"input_fidelity": "high"}, False),
        ("gpt-image-2.6-sunburst", {"output_format": "gif"}, False),
    ],
)
def test_newer_fields_and_values(client: openai.OpenAI, model: str, fields: dict[str, str], ok: bool) -> None:
    """xhigh/max and `complexity` on 2.5 and 2.6 only; `safety_identifier` (and the deprecated
    `user`) everywhere; `input_fidelity` is for the shut-down 1.x models; GIF needs access."""
    if ok:
        res = client.images.generate(model=model, prompt="x", size="1024x1024", extra_body=fields)
        assert res.data
        if "quality" in fields:
            assert res.quality == fields["quality"]
    else:
        with pytest.raises((openai.BadRequestError, openai.PermissionDeniedError)):
            client.images.generate(model=model, prompt="x", extra_body=fields)


def test_usage_reports_output_token_details(client: openai.OpenAI) -> None:
    """usage carries output_tokens_details (image and text), as openai 3.57 parses it."""
    res = client.images.generate(model=MODEL, prompt="a cat", size="1024x1024", quality="medium")
    assert res.usage is not None
    assert res.usage.output_tokens_details is not None
    assert res.usage.output_tokens_details.image_tokens == res.usage.output_tokens == 1756


def test_models_listing(client: openai.OpenAI, emulator: Emulator) -> None:
    """GET /v1/models lists the image models served today (snapshots too) among others, and
    follows what a test scripts into the listing."""
    ids = {m.id for m in client.models.list()}
    assert {"gpt-image-2", "gpt-image-2.5-flare-2026-09-08", "gpt-image-2.6-flare"} <= ids
    assert not ids & {"gpt-image-1.5", "gpt-image-1-mini", "dall-e-3"}
    emulator.listings.openai = [m for m in emulator.listings.openai if m["id"] != "gpt-image-2.6-flare"]
    assert "gpt-image-2.6-flare" not in {m.id for m in client.models.list()}
    emulator.reset()
    assert "gpt-image-2.6-flare" in {m.id for m in client.models.list()}
