"""Prompts become file names: always safe, short, ASCII, and inside the output directory.

Prompts that look like paths (`../`, `/etc/passwd`, `C:\\…`), hold separators, Windows reserved
names, 300-character words, emoji, right-to-left text or control characters are generated in the
sandbox through the real entry point; every saved path (image, receipt, failure receipt) must
resolve inside `--out`, with an ASCII name of bounded length, and nothing may be written anywhere
else. A NUL byte cannot be part of a prompt: it is refused with exit 2.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import imagerelay
from imagerelay.emulator import Emulator, Fault
from imagerelay.errors import GenerationFailed, InvalidRequest
from imagerelay.hooks import RunHooks
from imagerelay.imaging import probe
from imagerelay.store import slugify
from tests.clikit import run_cli
from tests.relaykit import make_relay

#: A saved name: ASCII letters, digits, dashes and dots only, never starting with a dot or a dash.
SAFE_NAME = re.compile(r"[a-z0-9][a-z0-9.-]*")
MAX_NAME = 100
WINDOWS_RESERVED = re.compile(r"(con|prn|aux|nul|com[1-9]|lpt[1-9])(\..*)?", re.IGNORECASE)

PROMPTS = [
    pytest.param("../../../../etc/passwd", id="dot-dot-slash"),
    pytest.param("..", id="dot-dot"),
    pytest.param(".", id="dot"),
    pytest.param("/etc/passwd", id="absolute-posix"),
    pytest.param("/", id="root"),
    pytest.param("C:\\Windows\\System32\\config", id="absolute-windows"),
    pytest.param("..\\..\\boot.ini", id="backslash-traversal"),
    pytest.param("\\\\server\\share\\x", id="unc-path"),
    pytest.param("~/.ssh/authorized_keys", id="home"),
    pytest.param("．．／．．／etc／passwd", id="fullwidth-traversal"),  # NFKD turns these into ../
    pytest.param("CON", id="windows-con"),
    pytest.param("nul.txt", id="windows-nul-txt"),
    pytest.param("LPT1", id="windows-lpt1"),
    pytest.param("w" * 300, id="300-char-word"),
    pytest.param(" ".join(["supercalifragilistic" * 15] * 3), id="three-300-char-words"),
    pytest.param("🦊🔥🌊", id="emoji-only"),
    pytest.param("a fox 🦊 in snow", id="emoji-mixed"),
    pytest.param("مرحبا بالعالم", id="rtl-arabic"),
    pytest.param("שלום עולם", id="rtl-hebrew"),
    pytest.param("evil\u202egpj.exe", id="rtl-override"),
    pytest.param("line one\nline two\r\n\ttabbed", id="control-whitespace"),
    pytest.param("\x1b[31mred\x1b[0m text", id="terminal-escape"),
    pytest.param("x:y*z?<a>|b\"c'", id="reserved-punctuation"),
    pytest.param("-rf --out /tmp", id="leading-dashes"),
]


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def assert_safe(path: Path, out: Path) -> None:
    """`path` is a file directly inside `out`, with a short, ASCII-safe, non-reserved name."""
    assert path.resolve().parent == out.resolve(), path
    assert path.is_file()
    name = path.name
    assert name.isascii()
    assert SAFE_NAME.fullmatch(name), name
    assert len(name) <= MAX_NAME, name
    assert not WINDOWS_RESERVED.fullmatch(name.split(".", 1)[0]), name


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory inside tmp_path; the output goes to tmp_path/out."""
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.mark.parametrize("prompt", PROMPTS)
def test_prompt_gives_a_safe_name_inside_out(
    prompt: str,
    cwd: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever the prompt, the image and its receipt land inside --out under a short ASCII name."""
    out = tmp_path / "out"
    # `--` ends the options, so a prompt that starts with a dash is still the prompt.
    code, stdout, err = run_cli(
        capsys,
        monkeypatch,
        "generate",
        "--env",
        "sandbox",
        "--out",
        str(out),
        "-n",
        "2",
        "--json",
        "--",
        prompt,
    )
    assert code == 0, err
    receipt = json.loads(stdout)
    assert receipt["prompt"] == prompt  # the prompt itself is kept as given
    saved = [Path(i["path"]) for i in receipt["images"]]
    assert len(saved) == 2
    for image in receipt["images"]:
        path = Path(image["path"])
        assert_safe(path, out)
        assert_safe(Path(image["receipt_path"]), out)
        probe(path.read_bytes())
    # Nothing was written anywhere but the output directory.
    assert files_under(tmp_path) - files_under(out) == set()
    assert files_under(cwd) == set()
    for path in files_under(out):
        assert_safe(path, out)


@pytest.mark.parametrize(
    "prompt", ["a\x00b", "\x00", "../\x00/etc/passwd", "fox\x00.jpg"], ids=["middle", "only", "path", "ext"]
)
def test_nul_in_prompt_is_refused(
    prompt: str,
    cwd: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A NUL byte cannot be in a prompt: exit 2, one line naming it, nothing written."""
    out = tmp_path / "out"
    code, stdout, err = run_cli(
        capsys, monkeypatch, "generate", prompt, "--env", "sandbox", "--out", str(out)
    )
    assert code == 2
    assert stdout == ""
    assert err == "error: the prompt contains a NUL byte: remove it\n"
    assert files_under(tmp_path) == set()


def test_nul_in_prompt_is_refused_by_the_library(tmp_path: Path) -> None:
    """The Python API refuses a NUL in the prompt as InvalidRequest before anything is sent."""
    with pytest.raises(InvalidRequest, match="NUL"):
        imagerelay.generate("a\x00b", env="sandbox", out_dir=tmp_path / "out")
    assert files_under(tmp_path) == set()


async def test_failure_receipt_name_is_safe_too(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """A request that made nothing keeps its failure receipt inside the output directory, safely named."""
    emulator.script("xai.generations", Fault(blocked=True))
    async with make_relay(emulator, tmp_path, test_keys) as relay:
        with pytest.raises(GenerationFailed):
            await relay.generate("../../" + "🦊" * 10 + "/" + "z" * 400)
    out = tmp_path / "out"
    failed = list(out.glob("*-failed.json"))
    assert len(failed) == 1
    assert_safe(failed[0], out)
    assert files_under(tmp_path) - files_under(out) == set()


async def test_item_name_is_slugged_like_a_prompt(
    emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """A name given in place of the prompt (a batch item's) cannot steer the file out of the directory."""
    async with make_relay(emulator, tmp_path, test_keys) as relay:
        receipt = await relay.generate("a fox", hooks=RunHooks(name="../../../tmp/evil\\..\\x"))
    out = tmp_path / "out"
    for image in receipt.images:
        assert_safe(Path(image.path), out)
        assert "evil" in Path(image.path).name
    assert files_under(tmp_path) - files_under(out) == set()


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("../../etc/passwd", "etc-passwd"),
        ("..", "image"),
        ("", "image"),
        ("🦊", "image"),
        ("Café Noir", "cafe-noir"),
        ("C:\\Windows", "c-windows"),
        ("．．／etc", "etc"),
    ],
)
def test_slugify(text: str, slug: str) -> None:
    """The slug keeps ASCII letters and digits, joins the rest with dashes, and is never empty."""
    assert slugify(text) == slug


def test_slug_length_is_bounded() -> None:
    """However long the prompt, its slug is at most 48 characters and never ends with a dash."""
    for text in ["a" * 1000, "ab " * 500, "word-" * 200, "é" * 1000]:
        slug = slugify(text)
        assert 1 <= len(slug) <= 48
        assert not slug.endswith("-")
        assert not slug.startswith("-")
