"""The README's Python blocks run as written, in the sandbox, from an empty working directory.

The blocks of "Use it from any language" talk to a running `imagerelay serve`: they run against
one in tests/test_gateway_readme.py; every other block runs here, in-process.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest

from imagerelay.emulator import Emulator
from imagerelay.ledger import Ledger
from tests.keys import outside_setting

README = Path(__file__).resolve().parents[1] / "README.md"
#: Sections whose blocks another test runs (against the gateway).
ELSEWHERE = ("Use it from any language",)


def _blocks() -> list[str]:
    """The ```python blocks of every README section not in ELSEWHERE."""
    sections = re.split(r"^## ", README.read_text(encoding="utf-8"), flags=re.M)
    return [
        block
        for section in sections
        if not section.startswith(ELSEWHERE)
        for block in re.findall(r"^```python\n(.*?)^```$", section, flags=re.M | re.S)
    ]


BLOCKS = _blocks()
KEY_VARS = ("XAI_API_KEY", "OPENAI_API_KEY", "REPLICATE_API_TOKEN")


def test_the_readme_has_python_blocks() -> None:
    """The README shows at least the script and the async use of the library."""
    assert len(BLOCKS) >= 2
    assert any("imagerelay.generate(" in b for b in BLOCKS)
    assert any("await imagerelay.agenerate(" in b and "async with imagerelay.Relay(" in b for b in BLOCKS)


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"block-{i + 1}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs(
    index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each ```python block of the README runs as a script without a key, and what it generated
    is in ./generated and its ledger."""
    monkeypatch.chdir(tmp_path)
    for var in list(os.environ):
        if var in KEY_VARS or outside_setting(var):
            monkeypatch.delenv(var)
    code = compile(BLOCKS[index], f"README.md python block {index + 1}", "exec")
    exec(code, {"__name__": "__main__"})
    printed = capsys.readouterr().out.split()
    generated = tmp_path / "generated"
    images = [p for p in generated.iterdir() if p.suffix in (".jpg", ".png", ".webp")]
    assert images
    shown = {tmp_path / word for word in printed if word.endswith((".jpg", ".png", ".webp"))}
    assert shown
    assert shown <= set(images)
    with Ledger.open(generated, create=False) as ledger:
        assert sum(g.images for g in ledger.generations()) == len(images)


def test_the_readme_reference_example_goes_where_its_comment_says(
    cli_emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The README's several-references `generate` line, planned in the environment used when none
    is named, goes to Nano Banana as its comment says; three references go to Grok there."""
    from tests.clikit import run_cli
    from tests.images import jpeg_bytes

    [line] = [x for x in README.read_text(encoding="utf-8").splitlines() if "our mug on a desk" in x]
    args = shlex.split(line.split("#", 1)[0])[2:]  # after `imagerelay generate`
    assert "Nano Banana" in line.split("#", 1)[1]
    for i, arg in enumerate(args):
        if i and args[i - 1] == "-r":
            (tmp_path / arg).write_bytes(jpeg_bytes())
    monkeypatch.delenv("IMAGERELAY_ENV", raising=False)
    code, out, err = run_cli(capsys, monkeypatch, "plan", *args, "--json")
    assert code == 0, err
    assert json.loads(out)["candidates"][0]["model"] == "gemini:gemini-nano-banana-2.1"
    code, out, err = run_cli(capsys, monkeypatch, "plan", *args[:-2], "--json")
    assert json.loads(out)["candidates"][0]["model"].startswith("xai:")
