"""A generation the provider accepted is possibly billed, whatever breaks after: never re-sent."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from imagerelay.emulator import Emulator, Fault
from tests.clikit import run_cli


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def failure_receipt(out: Path) -> dict[str, object]:
    [path] = out.glob("*-failed.json")
    receipt: dict[str, object] = json.loads(path.read_text())
    return receipt


def test_an_image_host_that_resets_is_possibly_billed_and_not_asked_again(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Replicate made the image but its host resets every download: one prediction only, its cost in
    possibly_billed_usd, the host named, and the receipt says what was sent."""
    cli_emulator.script("files", Fault(drop=True, times=None))
    model = "replicate:black-forest-labs/flux-schnell"
    code, _, err = run_cli(capsys, monkeypatch, "generate", "a lighthouse", "-p", model, "--out", "out")
    assert code == 1
    assert len(cli_emulator.requests_for("replicate.create")) == 1
    assert f"127.0.0.1:{cli_emulator.port}" in err
    assert "reset or cut off" in err
    receipt = failure_receipt(tmp_path / "out")
    assert receipt["possibly_billed_usd"] == pytest.approx(0.003)
    [attempt] = receipt["attempts"]  # type: ignore[misc]
    assert attempt["maybe_billed"] is True
    assert attempt["sent"]["prompt"] == "a lighthouse"
    assert attempt["prediction_id"]


def test_an_image_url_whose_host_refuses_is_possibly_billed_and_not_asked_again(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """xAI answered 200 with an image URL whose host refuses the connection: one call only, its cost
    in possibly_billed_usd, the message names that host, and the receipt says what was sent."""
    port = closed_port()
    body = {"created": 1, "data": [{"url": f"http://127.0.0.1:{port}/a.jpg"}]}
    cli_emulator.script("xai.generations", Fault(body=body, times=None))
    code, _, err = run_cli(capsys, monkeypatch, "generate", "a fox", "--provider", "xai:grok-imagine-image",
                           "--out", "out", "--json")  # fmt: skip
    assert code == 1
    assert len(cli_emulator.requests_for("xai.generations")) == 1
    assert f"127.0.0.1:{port}" in err
    assert "refused" in err
    receipt = failure_receipt(tmp_path / "out")
    assert receipt["possibly_billed_usd"] == pytest.approx(0.02)
    [attempt] = receipt["attempts"]  # type: ignore[misc]
    assert attempt["error_type"] == "DownloadFailed"
    assert attempt["sent"]["prompt"] == "a fox"
    assert attempt["sent"]["model"] == "grok-imagine-image"


@pytest.mark.parametrize(
    ("model", "route"),
    [
        ("xai:grok-imagine-image", "xai.generations"),
        ("openai:gpt-image-2", "openai.generations"),
        ("replicate:black-forest-labs/flux-schnell", "replicate.create"),
        ("gemini:gemini-nano-banana-2.1", "gemini.generate"),
    ],
)
def test_a_failed_attempt_records_what_was_sent(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    model: str,
    route: str,
) -> None:
    """Every backend's failed attempt says in the receipt what was sent, not `sent: {}`."""
    cli_emulator.script(route, Fault(status=500, times=None))
    monkeypatch.setenv("IMAGERELAY_RETRY__ATTEMPTS", "1")
    code, _, err = run_cli(capsys, monkeypatch, "generate", "a heron", "-p", model, "--out", "out")
    assert code == 1, err
    [attempt] = failure_receipt(tmp_path / "out")["attempts"]  # type: ignore[misc]
    assert attempt["outcome"] == "transient"
    assert "a heron" in json.dumps(attempt["sent"])


@pytest.mark.parametrize("drops", [1, 3])
def test_a_dropped_download_of_a_replicate_image_is_fetched_again_not_bought_again(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    drops: int,
) -> None:
    """The host resets the first GET(s) of a finished prediction's image: the same URL is fetched
    again (and, after three failures, the prediction re-read for its URL) — one prediction, the
    first model's image saved at its price, no dearer model asked."""
    cli_emulator.script("files", Fault(drop=True, times=drops))
    code, out, err = run_cli(capsys, monkeypatch, "generate", "drop once", "--provider", "replicate",
                             "--out", "out", "--json")  # fmt: skip
    assert code == 0, err
    receipt = json.loads(out)
    assert [c.json["input"]["prompt"] for c in cli_emulator.requests_for("replicate.create")] == ["drop once"]
    assert receipt["model"] == "black-forest-labs/flux-schnell"
    assert (receipt["cost_usd"], receipt["possibly_billed_usd"]) == (pytest.approx(0.003), 0.0)
    assert len(cli_emulator.requests_for("files")) == drops + 1
    assert len(receipt["images"]) == 1


def test_a_dropped_download_of_an_xai_image_is_fetched_again_not_bought_again(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """xAI's image URL resets twice, then answers: one generation, its image saved, nothing else paid."""
    import io

    from PIL import Image

    jpeg = io.BytesIO()
    Image.new("RGB", (64, 64), "navy").save(jpeg, "JPEG")
    url = cli_emulator.host_file("xai", jpeg.getvalue(), "image/jpeg", "a.jpg")
    cli_emulator.script("xai.generations", Fault(body={"created": 1, "data": [{"url": url}]}))
    cli_emulator.script("files", Fault(drop=True, times=2))
    code, out, err = run_cli(capsys, monkeypatch, "generate", "a fox", "--provider", "xai:grok-imagine-image",
                             "--out", "out", "--json")  # fmt: skip
    assert code == 0, err
    receipt = json.loads(out)
    assert len(cli_emulator.requests_for("xai.generations")) == 1
    assert len(cli_emulator.requests_for("files")) == 3
    assert (receipt["cost_usd"], receipt["possibly_billed_usd"]) == (pytest.approx(0.02), 0.0)


def test_a_replicate_create_whose_answer_is_late_is_found_in_the_list_not_bought_again(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The create's answer comes after the read timeout (the prediction exists, and is paid for):
    it is found in GET /v1/predictions and its image saved — one create, no dearer fallback."""
    cli_emulator.script("replicate.create", Fault(answer_after=2))
    monkeypatch.setenv("IMAGERELAY_PROVIDERS__REPLICATE__TIMEOUT", "0.5")
    code, out, err = run_cli(capsys, monkeypatch, "generate", "late answer", "--provider", "replicate",
                             "--out", "out", "--json")  # fmt: skip
    assert code == 0, err
    receipt = json.loads(out)
    assert len(cli_emulator.requests_for("replicate.create")) == 1
    assert cli_emulator.requests_for("replicate.list")
    assert receipt["model"] == "black-forest-labs/flux-schnell"
    [attempt] = receipt["attempts"]
    assert attempt["prediction_id"] in cli_emulator.state("replicate").predictions
    assert any("found in Replicate's list" in note for note in receipt["notes"])
