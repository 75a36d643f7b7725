"""The README's Python blocks run as written, in the sandbox, from an empty working directory.

The blocks of "Use it from any language" talk to a running `imagerelay serve`: they run against
one in tests/test_gateway_readme.py; every other block runs here, in-process.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

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
