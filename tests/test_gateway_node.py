"""The gateway from Node: `tests/node` (the official `openai` npm package and the Vercel AI SDK's
`generateImage`) runs against a real `imagerelay serve` with the emulator behind it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from imagerelay.emulator import Emulator
from imagerelay.emulator.wire import Fault
from imagerelay.gateway.keys import hash_key

from . import images
from .conftest import TEST_KEYS
from .gatewaykit import emulator_env, gateway, keys_env, ledger_rows

NODE_DIR = Path(__file__).parent / "node"
NODE = shutil.which("node")


def _installed() -> None:
    """`npm ci` once when tests/node has no node_modules (CI runs it before the tests)."""
    if (NODE_DIR / "node_modules" / "openai").is_dir():
        return
    npm = shutil.which("npm")
    assert npm is not None, "node is installed but npm is not: install npm, then run `npm ci` in tests/node"
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=600)


@pytest.mark.skipif(NODE is None, reason="node is not installed on this machine (the Node SDK tests need it)")
def test_node_sdks_drive_the_gateway(tmp_path: Path) -> None:
    """Every test in tests/node passes: generate (b64_json and url), extra fields, an edit with two
    images and a mask, errors mapped to the SDK classes, and the AI SDK's generateImage (n, size,
    edits, headers, a wrong key); the ledger records each image under the key that spent it."""
    assert NODE is not None
    _installed()
    fixtures = tmp_path / "fixtures"
    fixtures.mkdir()
    images.write(fixtures, "first.png", images.png_bytes((64, 48), images.RED))
    images.write(fixtures, "second.jpg", images.jpeg_bytes((40, 40), images.BLUE))
    images.write(fixtures, "mask.png", images.rgba_png_bytes((64, 48)))
    key, narrow = "irk_node_" + "1" * 12, "irk_narrow_" + "2" * 12
    keys = {"node": {"hash": hash_key(key)}, "narrow": {"hash": hash_key(narrow), "models": ["xai"]}}
    with Emulator(keys=TEST_KEYS, url_ttl=60, marked=False) as emu:
        env = emulator_env(emu, IMAGERELAY_GATEWAY__KEYS=keys_env(keys), IMAGERELAY_RETRY__COOLDOWN="0")
        with gateway(tmp_path / "gw", env, "--env", "development") as gw:
            run_env = {
                **os.environ,
                "GATEWAY_URL": gw.url,
                "GATEWAY_KEY": key,
                "GATEWAY_NARROW_KEY": narrow,
                "FIXTURES": str(fixtures),
            }
            proc = subprocess.run(
                [NODE, "--test", "--test-reporter=spec", "gateway.test.mjs"],
                cwd=NODE_DIR,
                env=run_env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert proc.returncode == 0, proc.stdout + proc.stderr + gw.stderr()
            assert "# fail 0" in proc.stdout or "ℹ fail 0" in proc.stdout, proc.stdout
            masked = [r for r in emu.requests_for("openai.edits") if any(f[0] == "mask" for f in r.files)]
            assert sorted(sum(1 for f in r.files if f[0].startswith("image")) for r in masked) == [1, 2]
            assert not emu.errors, emu.errors
        rows = ledger_rows(gw.out_dir, "SELECT gateway_key, images FROM generations")
    assert {k for k, _ in rows} == {"node"}
    assert sum(n for _, n in rows) == 9


@pytest.mark.skipif(NODE is None, reason="node is not installed on this machine (the Node SDK tests need it)")
def test_node_sdks_do_not_retry_a_possibly_billed_failure(tmp_path: Path) -> None:
    """With their default retries, the openai npm package and the AI SDK each send a generation
    whose connection dropped after the provider read it once: one provider call per SDK."""
    assert NODE is not None
    _installed()
    key = "irk_node_" + "3" * 12
    with Emulator(keys=TEST_KEYS, url_ttl=60, marked=False) as emu:
        emu.script("openai.generations", Fault(drop=True, times=None))
        env = emulator_env(
            emu,
            IMAGERELAY_GATEWAY__KEYS=keys_env({"node": {"hash": hash_key(key)}}),
            IMAGERELAY_RETRY__COOLDOWN="0",
        )
        with gateway(tmp_path / "gw", env, "--env", "development") as gw:
            proc = subprocess.run(
                [NODE, "--test", "--test-reporter=spec", "billed.test.mjs"],
                cwd=NODE_DIR,
                env={**os.environ, "GATEWAY_URL": gw.url, "GATEWAY_KEY": key},
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert proc.returncode == 0, proc.stdout + proc.stderr + gw.stderr()
            assert "fail 0" in proc.stdout, proc.stdout
        assert len(emu.requests_for("openai.generations")) == 2
