"""The emulated Replicate API, spoken to with the real replicate SDK (and httpx where the SDK cannot)."""

from __future__ import annotations

import io
import time

import httpx
import pytest
import replicate
from emulator_helpers import data_uri, is_reddish, mean_rgb, open_image, solid
from replicate.exceptions import ReplicateError

from imagerelay.emulator import Emulator, Fault
from imagerelay.emulator.replicate_schema import input_properties

SCHNELL = "black-forest-labs/flux-schnell"
PRO = "black-forest-labs/flux-1.1-pro"
KONTEXT = "black-forest-labs/flux-kontext-pro"


@pytest.fixture
def client(emulator: Emulator, test_keys: dict[str, str]) -> replicate.Client:
    """The real SDK pointed at the emulator (its base URL is the root without /v1), polling fast."""
    c = replicate.Client(api_token=test_keys["replicate"], base_url=emulator.url + "/replicate")
    c.poll_interval = 0.02
    return c


@pytest.fixture
def raw(emulator: Emulator, test_keys: dict[str, str]) -> httpx.Client:
    """Plain httpx on the Replicate API root, for what the SDK hides (status codes, headers, aborted)."""
    headers = {"authorization": f"Bearer {test_keys['replicate']}"}
    return httpx.Client(base_url=emulator.base_url("replicate"), headers=headers, timeout=10)


def test_create_is_201_starting_without_prefer(raw: httpx.Client, emulator: Emulator) -> None:
    """Create without Prefer → 201 at once with status starting and absolute urls on the emulator."""
    r = raw.post(f"/models/{SCHNELL}/predictions", json={"input": {"prompt": "a cat"}})
    assert r.status_code == 201
    p = r.json()
    assert p["status"] == "starting"
    assert p["output"] is None
    assert p["model"] == SCHNELL
    assert p["urls"]["get"] == f"{emulator.base_url('replicate')}/predictions/{p['id']}"
    assert p["urls"]["cancel"].endswith(f"/predictions/{p['id']}/cancel")
    for key in ("version", "input", "logs", "error", "created_at", "started_at", "completed_at", "metrics"):
        assert key in p


def test_prefer_wait_returns_finished_list_output(client: replicate.Client) -> None:
    """Prefer: wait on flux-schnell → succeeded in the create answer, output a list of URLs."""
    p = client.models.predictions.create(model=SCHNELL, input={"prompt": "a cat", "num_outputs": 2}, wait=5)
    assert p.status == "succeeded"
    assert isinstance(p.output, list)
    assert len(p.output) == 2
    got = httpx.get(p.output[0])
    assert got.headers["content-type"] == "image/webp"
    assert open_image(got.content).size == (1024, 1024)
    assert p.metrics is not None
    assert "predict_time" in p.metrics


@pytest.mark.parametrize("model", [PRO, KONTEXT, "black-forest-labs/flux-kontext-max"])
def test_single_url_output_models(client: replicate.Client, model: str) -> None:
    """flux-1.1-pro and flux-kontext-* → output is one URL string."""
    p = client.models.predictions.create(model=model, input={"prompt": "a cat"}, wait=True)
    assert p.status == "succeeded"
    assert isinstance(p.output, str)
    assert httpx.get(p.output).status_code == 200


def test_prefer_wait_holds_the_create_then_returns_it_unfinished(
    emulator: Emulator, client: replicate.Client
) -> None:
    """Prefer: wait=1 on a prediction that never finishes: the create is held (at least 0.9 s),
    then answered 201 unfinished; the prediction goes on until it is polled or cancelled."""
    emulator.script("replicate.create", Fault(prediction="stuck"))
    start = time.monotonic()
    p = client.models.predictions.create(model=SCHNELL, input={"prompt": "a cat"}, wait=1)
    assert time.monotonic() - start >= 0.9
    assert p.status in ("starting", "processing")
    assert p.output is None
    p.reload()
    assert p.status == "processing"
    p.cancel()
    p.reload()
    assert p.status == "canceled"
    assert [r.route for r in emulator.requests] == [
        "replicate.create",
        "replicate.get",
        "replicate.cancel",
        "replicate.get",
    ]


def test_statuses_move_over_time(test_keys: dict[str, str]) -> None:
    """With prediction_seconds set, GET shows starting → processing → succeeded as time passes."""
    with Emulator(keys=test_keys, prediction_seconds=0.4) as emu:
        c = httpx.Client(
            base_url=emu.base_url("replicate"), headers={"authorization": f"Token {test_keys['replicate']}"}
        )
        pid = c.post(f"/models/{SCHNELL}/predictions", json={"input": {"prompt": "x"}}).json()["id"]
        seen = []
        deadline = time.monotonic() + 30  # a safety net only: it ends at `succeeded`
        while time.monotonic() < deadline:
            status = c.get(f"/predictions/{pid}").json()["status"]
            if not seen or seen[-1] != status:
                seen.append(status)
            if status == "succeeded":
                break
            time.sleep(0.03)
        assert seen == ["starting", "processing", "succeeded"]


def test_failed_prediction_is_200_with_error(
    emulator: Emulator, client: replicate.Client, raw: httpx.Client
) -> None:
    """Fault(prediction="failed", error=...) → create 201, GET 200, status failed with that error."""
    emulator.script("replicate.create", Fault(prediction="failed", error="CUDA out of memory"))
    r = raw.post(
        f"/models/{SCHNELL}/predictions", json={"input": {"prompt": "x"}}, headers={"prefer": "wait"}
    )
    assert r.status_code == 201
    assert (r.json()["status"], r.json()["error"]) == ("failed", "CUDA out of memory")
    got = raw.get(f"/predictions/{r.json()['id']}")
    assert got.status_code == 200
    assert got.json()["status"] == "failed"


def test_blocked_fault_fails_with_nsfw_error(emulator: Emulator, client: replicate.Client) -> None:
    """Fault(blocked=True) → the prediction fails with Replicate's NSFW error string."""
    emulator.script("replicate.create", Fault(blocked=True))
    p = client.models.predictions.create(model=PRO, input={"prompt": "x"}, wait=True)
    assert p.status == "failed"
    assert p.error == "NSFW content detected. Try running it again, or try a different prompt."


def test_aborted_is_terminal(emulator: Emulator, raw: httpx.Client) -> None:
    """Fault(prediction="aborted") → terminal status aborted (which replicate 1.0.7 cannot parse)."""
    emulator.script("replicate.create", Fault(prediction="aborted"))
    r = raw.post(
        f"/models/{SCHNELL}/predictions", json={"input": {"prompt": "x"}}, headers={"prefer": "wait=5"}
    )
    assert r.json()["status"] == "aborted"
    assert r.json()["completed_at"]


def test_cancel_stuck_prediction(emulator: Emulator, client: replicate.Client) -> None:
    """A stuck prediction never finishes; cancel makes it canceled, and it stays so."""
    emulator.script("replicate.create", Fault(prediction="stuck"))
    p = client.models.predictions.create(model=SCHNELL, input={"prompt": "x"})
    time.sleep(0.1)
    p.reload()
    assert p.status == "processing"
    p.cancel()
    p.reload()
    assert p.status == "canceled"
    assert p.output is None
    assert emulator.requests_for("replicate.cancel")


def test_empty_fault_list_and_single(emulator: Emulator, client: replicate.Client) -> None:
    """Fault(empty=True) → succeeded with output [] (list models) or null (single-URL models)."""
    emulator.script("replicate.create", Fault(empty=True), Fault(empty=True))
    assert client.models.predictions.create(model=SCHNELL, input={"prompt": "x"}, wait=True).output == []
    single = client.models.predictions.create(model=PRO, input={"prompt": "x"}, wait=True)
    assert (single.status, single.output) == ("succeeded", None)


def test_unknown_prediction_is_404_problem(raw: httpx.Client) -> None:
    """GET of an unknown id → 404 application/problem+json."""
    r = raw.get("/predictions/doesnotexist")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 404


def test_unknown_model_is_404(client: replicate.Client) -> None:
    """An unknown model → 404 ReplicateError."""
    with pytest.raises(ReplicateError) as exc:
        client.models.predictions.create(model="black-forest-labs/flux-99", input={"prompt": "x"})
    assert exc.value.status == 404


@pytest.mark.parametrize(
    ("model", "bad"),
    [
        (SCHNELL, {"num_outputs": 5}),
        (SCHNELL, {"aspect_ratio": "7:5"}),
        (SCHNELL, {"image": "data:,"}),  # schnell takes no image
        (SCHNELL, {"megapixels": 1}),
        (PRO, {"aspect_ratio": "custom", "width": 300}),  # not a multiple of 32
        (PRO, {"safety_tolerance": 0}),
        (KONTEXT, {"output_format": "webp"}),
        ("black-forest-labs/flux-dev", {"prompt_strength": 1.5}),
    ],
)
def test_invalid_input_is_422(raw: httpx.Client, model: str, bad: dict[str, object]) -> None:
    """Unknown inputs and bad values → 422 problem+json "Input validation failed", invalid_fields."""
    r = raw.post(f"/models/{model}/predictions", json={"input": {"prompt": "x", **bad}})
    assert r.status_code == 422
    body = r.json()
    assert body["title"] == "Input validation failed"
    assert body["invalid_fields"]
    assert r.headers["content-type"] == "application/problem+json"


def test_bad_token_is_401(emulator: Emulator) -> None:
    """A wrong token → 401 problem+json Unauthenticated."""
    c = replicate.Client(api_token="r8_wrong", base_url=emulator.url + "/replicate")
    with pytest.raises(ReplicateError) as exc:
        c.models.predictions.create(model=SCHNELL, input={"prompt": "x"})
    assert (exc.value.status, exc.value.title) == (401, "Unauthenticated")
    assert exc.value.detail == "You did not pass a valid authentication token"


def test_throttled_body_has_retry_after(emulator: Emulator, raw: httpx.Client) -> None:
    """Fault(status=429, headers={"retry-after": "7"}) → problem+json with retry_after 7."""
    emulator.script("replicate.create", Fault(status=429, headers={"retry-after": "7"}))
    r = raw.post(f"/models/{SCHNELL}/predictions", json={"input": {"prompt": "x"}})
    assert r.status_code == 429
    assert r.json() == {
        "title": "Request was throttled",
        "detail": "Request was throttled. Expected available in 7 seconds.",
        "status": 429,
        "retry_after": 7,
    }


@pytest.mark.parametrize(
    ("inp", "size"),
    [
        ({"aspect_ratio": "16:9"}, (1344, 768)),
        ({"aspect_ratio": "1:1", "megapixels": "0.25"}, (512, 512)),
        ({"aspect_ratio": "9:21"}, (640, 1536)),
    ],
)
def test_flux_pixel_sizes(client: replicate.Client, inp: dict[str, str], size: tuple[int, int]) -> None:
    """Outputs are about one megapixel at the aspect ratio (a quarter with megapixels 0.25)."""
    p = client.models.predictions.create(model=SCHNELL, input={"prompt": "x", **inp}, wait=True)
    assert open_image(httpx.get(p.output[0]).content).size == size


def test_custom_size_and_jpg_output(client: replicate.Client) -> None:
    """flux-1.1-pro with aspect_ratio custom honours width/height; output_format jpg serves image/jpeg."""
    inp = {"prompt": "x", "aspect_ratio": "custom", "width": 512, "height": 1024, "output_format": "jpg"}
    p = client.models.predictions.create(model=PRO, input=inp, wait=True)
    got = httpx.get(p.output)
    assert got.headers["content-type"] == "image/jpeg"
    assert p.output.endswith(".jpg")
    assert open_image(got.content).size == (512, 1024)


def test_file_upload_then_use_as_input(emulator: Emulator, client: replicate.Client) -> None:
    """files.create → 201 with urls.get serving the bytes; that URL works as kontext input_image."""
    red = solid((255, 0, 0), (300, 150))
    f = client.files.create(
        io.BytesIO(red), filename="red.png", content_type="image/png", metadata={"k": "v"}
    )
    assert (f.size, f.content_type, f.metadata) == (len(red), "image/png", {"k": "v"})
    assert f.checksums["sha256"]
    assert httpx.get(f.urls["get"]).content == red
    assert emulator.requests_for("replicate.files")[0].files == [
        ("content", "red.png", "image/png", len(red))
    ]
    p = client.models.predictions.create(
        model=KONTEXT, input={"prompt": "x", "input_image": f.urls["get"]}, wait=True
    )
    assert p.status == "succeeded"
    out = httpx.get(p.output).content
    img = open_image(out)
    assert img.width > img.height  # match_input_image follows the 2:1 reference
    assert is_reddish(mean_rgb(out))


def test_data_uri_input_and_foreign_url(client: replicate.Client) -> None:
    """A data URI reference is used; a URL the emulator cannot fetch makes the prediction fail."""
    ok = client.models.predictions.create(
        model="black-forest-labs/flux-dev", input={"prompt": "x", "image": data_uri(solid())}, wait=True
    )
    assert ok.status == "succeeded"
    assert is_reddish(mean_rgb(httpx.get(ok.output[0]).content))
    bad = client.models.predictions.create(
        model=KONTEXT, input={"prompt": "x", "input_image": "https://example.com/a.png"}, wait=True
    )
    assert bad.status == "failed"
    assert bad.error


def test_output_urls_expire(emulator: Emulator, client: replicate.Client) -> None:
    """Replicate output URLs answer 404 once expired."""
    p = client.models.predictions.create(model=PRO, input={"prompt": "x"}, wait=True)
    assert httpx.get(p.output).status_code == 200
    emulator.expire_urls()
    assert httpx.get(p.output).status_code == 404


def test_run_with_sdk(client: replicate.Client) -> None:
    """replicate.run(use_file_output=False) returns the plain http URLs."""
    out = client.run(SCHNELL, input={"prompt": "x"}, use_file_output=False)
    assert isinstance(out, list)
    assert out[0].startswith("http://127.0.0.1")


FLUX2 = "black-forest-labs/flux-2-pro"


def test_flux_2_input_images_resolution_and_single_output(client: replicate.Client) -> None:
    """flux-2-pro takes up to 8 `input_images` and a megapixel `resolution`, and answers one URL."""
    ref = data_uri(solid((255, 0, 0), (200, 100)))
    out = client.run(
        FLUX2,
        input={
            "prompt": "x",
            "input_images": [ref, ref],
            "aspect_ratio": "match_input_image",
            "resolution": "4 MP",
        },
        use_file_output=False,
    )
    assert isinstance(out, str)
    img = open_image(httpx.get(out).content)
    assert img.size == (2048, 1024)  # 4 MP at the reference's 2:1, capped at 2048 a side


@pytest.mark.parametrize(
    ("model", "bad"),
    [
        (FLUX2, {"input_images": ["data:image/png;base64,AA=="] * 9}),
        (FLUX2, {"resolution": "3 MP"}),
        (FLUX2, {"safety_tolerance": 6}),
        ("black-forest-labs/flux-2-flex", {"input_images": ["data:image/png;base64,AA=="] * 11}),
        ("black-forest-labs/flux-2-dev", {"resolution": "1 MP"}),
        (PRO, {"aspect_ratio": "21:9"}),
        (KONTEXT, {"input_image": "data:image/png;base64,AA==", "safety_tolerance": 3}),
    ],
)
def test_today_s_input_limits_are_422(raw: httpx.Client, model: str, bad: dict[str, object]) -> None:
    """Nine images on flux-2-pro, eleven on flex, an unknown tier, safety above 5, a resolution on
    dev, 21:9 on 1.1-pro, safety above 2 with a Kontext input image: each is 422."""
    r = raw.post(f"/models/{model}/predictions", json={"input": {"prompt": "x", **bad}})
    assert r.status_code == 422, r.text


def test_model_listing_publishes_the_input_schema(raw: httpx.Client, emulator: Emulator) -> None:
    """GET /v1/models/{owner}/{name} carries latest_version.openapi_schema: the inputs the
    emulator validates, enums as components, limits; and a scripted change shows up."""
    model = raw.get(f"/models/{FLUX2}").json()
    schema = model["latest_version"]["openapi_schema"]["components"]["schemas"]
    props = schema["Input"]["properties"]
    assert props["input_images"]["maxItems"] == 8
    assert props["resolution"]["allOf"] == [{"$ref": "#/components/schemas/resolution"}]
    assert "2 MP" in schema["resolution"]["enum"]
    assert props["safety_tolerance"]["maximum"] == 5
    assert model["latest_version"]["openapi_schema"]["components"]["schemas"]["Output"]["format"] == "uri"
    input_properties(emulator, FLUX2).pop("seed")
    assert "seed" not in raw.get(f"/models/{FLUX2}").json()["latest_version"]["openapi_schema"][
        "components"]["schemas"]["Input"]["properties"]  # fmt: skip
    assert raw.get("/models/black-forest-labs/flux-9").status_code == 404


def test_list_is_newest_first_100_a_page_with_a_cursor_and_created_after(
    client: replicate.Client, raw: httpx.Client
) -> None:
    """GET /v1/predictions lists every prediction newest first, 100 a page, `next` a cursor URL the
    SDK follows, and `created_after` keeps only later ones."""
    made = [
        raw.post(f"/models/{SCHNELL}/predictions", json={"input": {"prompt": f"p{i}"}}).json()
        for i in range(205)
    ]
    first = client.predictions.list()
    assert [p.id for p in first.results] == [p["id"] for p in reversed(made)][:100]
    assert first.next is not None
    second = client.predictions.list(first.next)
    third = client.predictions.list(second.next)
    assert [len(first.results), len(second.results), len(third.results)] == [100, 100, 5]
    assert third.next is None
    seen = [p.id for page in (first, second, third) for p in page.results]
    assert seen == [p["id"] for p in reversed(made)]
    assert third.results[0].input == {"prompt": "p4"}

    after = raw.get("/predictions", params={"created_after": made[202]["created_at"]}).json()
    assert [p["id"] for p in after["results"]] == [made[204]["id"], made[203]["id"]]
    assert after["next"] is None
    assert raw.get("/predictions", params={"created_after": "yesterday"}).status_code == 400


def test_answer_after_creates_the_prediction_before_answering(raw: httpx.Client, emulator: Emulator) -> None:
    """`answer_after` on a create: the prediction exists at once, while its answer is still held."""
    emulator.script("replicate.create", Fault(answer_after=5))
    with pytest.raises(httpx.ReadTimeout):
        raw.post(f"/models/{SCHNELL}/predictions", json={"input": {"prompt": "x"}}, timeout=0.5)
    [prediction] = emulator.state("replicate").predictions.values()
    assert prediction.input == {"prompt": "x"}
