"""The gallery: a self-contained contact sheet that a real browser renders, with every image shown."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from imagerelay.batch import run_batch
from imagerelay.emulator import Emulator
from imagerelay.gallery import GALLERY_NAME, write_gallery
from imagerelay.ledger import LEDGER_NAME, Ledger
from imagerelay.manifest import load_manifest
from imagerelay.relay import Relay
from imagerelay.store import Store
from tests.clikit import run_cli
from tests.images import RED, jpeg_bytes
from tests.relaykit import emulator_settings

EVIL = '<script>document.title="pwned"</script><img src=x onerror=alert(1)> & "quotes"'


def chromium() -> str:
    """Debian's headless Chromium; installed with apt-get when missing and possible, else a clear failure."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "chromium"]
        if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=900)
            subprocess.run(install, env=env, capture_output=True, timeout=900)
        found = shutil.which("chromium")
        if found:
            return found
    pytest.fail(
        "headless Chromium is needed to check the gallery page and could not be installed: "
        "run `apt-get install chromium` (as root) and run the tests again"
    )


def render(page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Open `page` in headless Chromium with no network and nothing of its own to fetch."""
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        *extra,
        page.as_uri(),
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


async def make_batch(emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]) -> Path:
    """An output directory holding a small batch: 3 items, 5 images, one prompt with markup in it."""
    manifest_path = tmp_path / "m.jsonl"
    manifest_path.write_text(
        "\n".join(
            [
                json.dumps({"prompt": EVIL, "name": "evil"}),
                '{"prompt": "a fox", "n": 3, "metadata": {"publish_on": "2026-12-01"}, "tags": ["winter"]}',
                '{"prompt": "a cat", "provider": "replicate:black-forest-labs/flux-schnell"}',
            ]
        )
        + "\n"
    )
    manifest = load_manifest(manifest_path)
    out = tmp_path / "out"
    with Ledger.open(out) as ledger:
        relay = Relay(
            emulator_settings(emulator),
            keys=test_keys,
            out_dir=out,
            on_receipt=[ledger.record_receipt],
            record=False,
        )
        async with relay:
            summary = await run_batch(manifest, relay, ledger)
    assert summary.done == 3
    return out


async def test_chromium_shows_every_image_and_escapes_prompts(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """Headless Chromium renders the page with one data-URI <img> per image of the batch, runs no
    script from a prompt, and the page references nothing outside itself."""
    out = await make_batch(emulator, tmp_path, test_keys)
    result = write_gallery(out)
    assert result.path == out / GALLERY_NAME
    assert result.images == 5
    source = result.path.read_text(encoding="utf-8")

    dom = render(result.path, tmp_path, "--dump-dom").stdout
    images = re.findall(r"<img\b[^>]*>", dom)
    assert len(images) == 5
    assert all(re.search(r'src="data:image/(jpeg|png);base64,', tag) for tag in images)
    assert "<script" not in dom.lower()
    assert "pwned" not in re.search(r"<title>(.*?)</title>", dom, re.S).group(1)  # type: ignore[union-attr]
    assert "&lt;script&gt;document.title=" in dom
    assert "onerror=alert" not in source.replace("&lt;img src=x onerror=alert(1)&gt;", "")
    # No network reference of any kind: every src is a data URI, every href a file beside the page.
    for attr, value in re.findall(r'\b(src|href)="([^"]*)"', source):
        assert value.startswith("data:") if attr == "src" else ":" not in value and "/" not in value
    assert "http://" not in source.replace(" xmlns", "")
    assert "https://" not in source
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in source
    assert "grid-template-columns: repeat(auto-fill" in source
    for text in ("a fox", "winter", "publish_on", "2026-12-01", "xai:grok-imagine-image", "flux-schnell"):
        assert text in source


async def test_phone_screenshot_is_made(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """At a phone's width the page renders to a screenshot (one column of cards, no sideways scroll)."""
    out = await make_batch(emulator, tmp_path, test_keys)
    page = write_gallery(out).path
    shot = tmp_path / "phone.png"
    render(page, tmp_path, "--window-size=390,844", f"--screenshot={shot}")
    from imagerelay.imaging import probe

    info = probe(shot.read_bytes())
    assert (info.width, info.height) == (390, 844)


async def test_gallery_without_the_ledger_uses_the_sidecar_receipts(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """With the ledger gone, the receipts beside the images are enough to show every image."""
    out = await make_batch(emulator, tmp_path, test_keys)
    for name in (LEDGER_NAME, LEDGER_NAME + "-wal", LEDGER_NAME + "-shm"):
        (out / name).unlink(missing_ok=True)
    result = write_gallery(out)
    assert result.images == 5
    assert not (out / LEDGER_NAME).exists()


def test_image_of_an_interrupted_request_is_shown(tmp_path: Path) -> None:
    """An image saved by a request killed before its receipt is on the sheet, marked as such."""
    manifest_path = tmp_path / "m.jsonl"
    manifest_path.write_text('{"prompt": "half done", "name": "cut"}\n')
    manifest = load_manifest(manifest_path)
    out = tmp_path / "out"
    with Ledger.open(out) as ledger:
        ledger.sync_items(manifest.name, manifest.items)
        rid = "cafe0123" + "0" * 24
        ledger.start_run(manifest.items[0].key, rid, n=1, estimate_usd=0.02, planned="xai:grok-imagine-image")
        (out / f"{Store(out).stem('cut', rid, 1)}.jpg").write_bytes(jpeg_bytes((40, 30), RED))
        ledger.adopt_orphans()
    page = write_gallery(out).path.read_text()
    assert page.count("<img ") == 1
    assert "half done" in page
    assert "interrupted before its receipt" in page


def test_gallery_cli_prints_the_path_and_refuses_a_missing_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`imagerelay gallery` prints the page's path; a missing directory is one line, exit 2."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    code, out, _ = run_cli(capsys, monkeypatch, "gallery", "--out", "empty")
    assert code == 0
    assert out.strip() == str(Path("empty") / GALLERY_NAME)
    assert "No images in" in (tmp_path / "empty" / GALLERY_NAME).read_text()
    code, out, err = run_cli(capsys, monkeypatch, "gallery", "--out", "missing")
    assert (code, out) == (2, "")
    assert "output directory 'missing' does not exist" in err
    assert len(err.strip().splitlines()) == 1


def test_sandbox_images_are_shown_as_costing_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sandbox image's card says "$0 (sandbox)" and the sheet's total does not count it."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, monkeypatch, "generate", "a fox", "--env", "sandbox", "-p", "xai")
    assert code == 0, err
    code, _, err = run_cli(capsys, monkeypatch, "gallery")
    assert code == 0, err
    page = (tmp_path / "generated" / GALLERY_NAME).read_text()
    assert "$0 (sandbox)" in page
    assert "1 image(s), $0.0000 in all" in page
