"""The README's "Use it from any language" examples run as written against `imagerelay serve
--env sandbox`: the Python one with the openai package, the TypeScript one with node."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.keys import outside_setting

from . import images
from .gatewaykit import GatewayProcess, gateway
from .test_gateway_node import NODE, NODE_DIR, _installed

README = Path(__file__).parents[1] / "README.md"
_DEFAULT_URL = "http://127.0.0.1:8080"


def _block(language: str) -> str:
    text = README.read_text()
    section = text.split("## Use it from any language", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(rf"```{language}\n(.*?)```", section, re.S)
    assert _DEFAULT_URL in code
    return code


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """`imagerelay serve --env sandbox` (its own emulator inside), no gateway key."""
    env = {k: v for k, v in os.environ.items() if not outside_setting(k)}
    with gateway(tmp_path_factory.mktemp("readme-gw"), env, "--env", "sandbox") as proc:
        yield proc


def test_readme_python_example_runs(sandbox: GatewayProcess, tmp_path: Path) -> None:
    """The README's Python example edits fox.jpg through the gateway and writes the result."""
    images.write(tmp_path, "fox.jpg", images.jpeg_bytes((64, 64)))
    script = tmp_path / "example.py"
    script.write_text(_block("python").replace(_DEFAULT_URL, sandbox.url))
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    [written] = tmp_path.glob("fox-watercolour.*")
    assert images.decode(written.read_bytes()).width > 0
    receipt_id, cost = proc.stdout.split()
    assert re.fullmatch(r"[0-9a-f]{32}", receipt_id)
    assert float(cost) == 0.0  # sandbox output costs nothing


@pytest.mark.skipif(
    NODE is None, reason="node is not installed on this machine (the TypeScript example needs it)"
)
def test_readme_typescript_example_runs(sandbox: GatewayProcess, tmp_path: Path) -> None:
    """The README's TypeScript example (valid JavaScript too) generates and writes fox.<format>."""
    assert NODE is not None
    _installed()
    (tmp_path / "node_modules").symlink_to(NODE_DIR / "node_modules", target_is_directory=True)
    script = tmp_path / "example.mjs"
    script.write_text(_block("ts").replace(_DEFAULT_URL, sandbox.url))
    proc = subprocess.run(
        [NODE, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    [written] = tmp_path.glob("fox.*")
    made = images.decode(written.read_bytes())
    assert made.width > made.height  # 1536x1024, as the model closest to it could make it
