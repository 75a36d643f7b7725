"""API keys never leak: not to stdout, stderr, logs, receipts, the ledger, image metadata or reprs.

Realistic-looking fake keys (`xai-` + 40, `sk-proj-` + 48, `r8_` + 37, `AIza` + 35 characters) go
through every
path that reports something — success, a refused key, 429, 5xx, content blocked, every model down,
bad input, `config show`, `providers --json`, `generate --dry-run --json` — once from the
environment and once from a `.env` file in the working directory. After each run, neither a key
nor any 12-character piece of one may appear in what was printed, in any log record (every logger
at DEBUG), or in any byte of any file in the output directory (images with their metadata, receipts,
failure receipts, the ledger and its journal). In-process, the same holds for `str()`/`repr()` of the
raised errors (their causes and the whole traceback included), of the relay, its backends and the
settings.
"""

from __future__ import annotations

import json
import logging
import random
import string
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagerelay.emulator import Emulator, Fault
from imagerelay.errors import GenerationFailed
from imagerelay.imaging import read_metadata
from imagerelay.receipt import Receipt
from imagerelay.relay import Relay
from tests.clikit import run_cli
from tests.keys import GENERATE_ROUTE, KEY_VARS
from tests.relaykit import Sleeps, emulator_settings

_ALNUM = string.ascii_letters + string.digits


def _fake(prefix: str, length: int, seed: int) -> str:
    return prefix + "".join(random.Random(seed).choices(_ALNUM, k=length))


#: Fake, but shaped like the real thing. Each is accepted by the emulator fixture below.
KEYS = {
    "xai": _fake("xai-", 40, 1),
    "openai": _fake("sk-proj-", 48, 2),
    "replicate": _fake("r8_", 37, 3),
    "gemini": _fake("AIza", 35, 9),
}
#: Refused by the emulator, equally secret.
WRONG = {
    "xai": _fake("xai-", 40, 4),
    "openai": _fake("sk-proj-", 48, 5),
    "replicate": _fake("r8_", 37, 6),
    "gemini": _fake("AIza", 35, 10),
}
ROUTES = GENERATE_ROUTE
TEXT_ROUTING = [
    "xai:grok-imagine-image",
    "openai:gpt-image-2",
    "replicate:black-forest-labs/flux-schnell",
    "gemini:gemini-nano-banana-2.1",
]
WINDOW = 12


def test_fake_keys_look_real() -> None:
    """The fake keys have the shapes of real ones, so a leak check on them means something."""
    assert KEYS["xai"].startswith("xai-")
    assert len(KEYS["xai"]) == 4 + 40
    assert KEYS["openai"].startswith("sk-proj-")
    assert len(KEYS["openai"]) == 8 + 48
    assert KEYS["replicate"].startswith("r8_")
    assert len(KEYS["replicate"]) == 3 + 37
    assert KEYS["gemini"].startswith("AIza")
    assert len(KEYS["gemini"]) == 4 + 35
    assert all(len(WRONG[p]) == len(KEYS[p]) for p in KEYS)


def test_the_leak_check_finds_a_piece_of_a_key() -> None:
    """The check is not vacuous: 12 characters from the middle of a key are caught, 11 are not."""
    with pytest.raises(AssertionError, match="leaked"):
        assert_no_secret("…" + KEYS["openai"][20:32] + "…", "a test string")
    assert_no_secret(KEYS["openai"][20:31], "a test string")


def _pieces() -> list[str]:
    """Every 12-character piece of every key (the good and the wrong ones)."""
    return sorted(
        {k[i : i + WINDOW] for k in [*KEYS.values(), *WRONG.values()] for i in range(len(k) - WINDOW + 1)}
    )


PIECES = _pieces()


def assert_no_secret(text: str | bytes, where: str) -> None:
    """Neither a key nor any 12-character piece of one is in `text`."""
    haystack = text.decode("latin-1") if isinstance(text, bytes) else text
    leaked = [p for p in PIECES if p in haystack]
    assert not leaked, f"a key leaked into {where}: {leaked[0]!r}"


def assert_dir_clean(directory: Path) -> int:
    """No key in any byte of any file under `directory`; returns how many files were checked."""
    files = [p for p in directory.rglob("*") if p.is_file()] if directory.exists() else []
    for path in files:
        data = path.read_bytes()
        assert_no_secret(data, str(path))
        if path.suffix in (".jpg", ".png", ".webp"):
            assert_no_secret(json.dumps(read_metadata(data)), f"metadata of {path}")
    return len(files)


@pytest.fixture
def emu() -> Iterator[Emulator]:
    """An emulator that accepts the realistic fake keys (and refuses the wrong ones)."""
    emulator = Emulator(keys=KEYS, url_ttl=60, marked=False).start()
    try:
        yield emulator
    finally:
        emulator.stop()
    assert not emulator.errors


@pytest.fixture
def cli(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> Emulator:
    """The CLI pointed at `emu` with the keys in the environment, logging everything at DEBUG."""
    monkeypatch.chdir(tmp_path)
    for p, var in KEY_VARS.items():
        monkeypatch.setenv(var, KEYS[p])
        prefix = f"IMAGERELAY_PROVIDERS__{p.upper()}__"
        monkeypatch.setenv(prefix + "BASE_URL", emu.base_url(p))
        monkeypatch.setenv(prefix + "MAX_REQUESTS_PER_MINUTE", "6000")
    monkeypatch.setenv("IMAGERELAY_PROVIDERS__REPLICATE__POLL_INTERVAL", "0.05")
    monkeypatch.setenv("IMAGERELAY_RETRY__BACKOFF_INITIAL", "0.01")
    monkeypatch.setenv("IMAGERELAY_RETRY__BACKOFF_MAX", "0.02")
    monkeypatch.setenv("IMAGERELAY_LOG_LEVEL", "debug")
    monkeypatch.setenv("IMAGERELAY_ROUTING__TEXT", json.dumps(TEXT_ROUTING))
    caplog.set_level(logging.DEBUG)  # every logger: ours and the SDKs' and httpx's
    return emu


def _script(emu: Emulator, monkeypatch: pytest.MonkeyPatch, path: str, *, dotenv: bool) -> None:
    """Set up the failure of one path (keys from .env are written by the caller)."""
    if dotenv and path in ("bad-key", "every-key-refused"):
        return
    if path == "bad-key":
        monkeypatch.setenv("XAI_API_KEY", WRONG["xai"])
    elif path == "gemini-bad-key":
        monkeypatch.setenv("IMAGERELAY_ROUTING__TEXT", json.dumps(TEXT_ROUTING[::-1]))
        monkeypatch.setenv("GEMINI_API_KEY", WRONG["gemini"])
    elif path == "gemini-key-in-google-api-key":
        monkeypatch.setenv("IMAGERELAY_ROUTING__TEXT", json.dumps(TEXT_ROUTING[::-1]))
        monkeypatch.delenv("GEMINI_API_KEY")
        monkeypatch.setenv("GOOGLE_API_KEY", KEYS["gemini"])
    elif path == "every-key-refused":
        for p, var in KEY_VARS.items():
            monkeypatch.setenv(var, WRONG[p])
    elif path == "429":
        emu.script("xai.generations", Fault(status=429, headers={"retry-after": "0"}, times=None))
    elif path == "5xx":
        emu.script("xai.generations", Fault(status=500, times=None))
        emu.script("openai.generations", Fault(status=502, times=None))
    elif path == "gemini-429-then-blocked":
        monkeypatch.setenv("IMAGERELAY_ROUTING__TEXT", json.dumps(TEXT_ROUTING[::-1]))
        emu.script("gemini.generate", Fault(status=429, seconds=0), Fault(blocked=True))
    elif path == "content-blocked":
        emu.script("xai.generations", Fault(blocked=True))
    elif path == "all-down":
        for route in ROUTES.values():
            emu.script(route, Fault(status=503, times=None))


#: (path, command line, expected exit code). {out} is the output directory.
PATHS = [
    ("success", ("generate", "a fox", "--out", "{out}"), 0),
    ("bad-key", ("generate", "a fox", "--out", "{out}", "--json"), 0),
    ("gemini-bad-key", ("generate", "a fox", "--out", "{out}", "--json"), 0),
    ("gemini-key-in-google-api-key", ("generate", "a fox", "--out", "{out}", "--json"), 0),
    ("gemini-429-then-blocked", ("generate", "a fox", "--out", "{out}", "--json"), 1),
    ("every-key-refused", ("generate", "a fox", "--out", "{out}"), 1),
    ("429", ("generate", "a fox", "--out", "{out}"), 0),
    ("5xx", ("generate", "a fox", "--out", "{out}", "--json"), 0),
    ("content-blocked", ("generate", "a fox", "--out", "{out}", "--json"), 1),
    ("all-down", ("generate", "a fox", "--out", "{out}"), 1),
    ("bad-input", ("generate", "a fox", "-r", "{out}/missing.jpg", "--out", "{out}"), 2),
    ("config-show", ("config", "show"), 0),
    ("config-show-json", ("config", "show", "--json"), 0),
    ("providers-json", ("providers", "--json"), 0),
    ("providers", ("providers",), 0),
    ("dry-run-json", ("generate", "a fox", "-n", "3", "--dry-run", "--json"), 0),
]


def _run_path(
    path: str,
    args: tuple[str, ...],
    code: int,
    emu: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    *,
    dotenv: bool = False,
) -> None:
    out_dir = tmp_path / "out"
    _script(emu, monkeypatch, path, dotenv=dotenv)
    got, out, err = run_cli(capsys, monkeypatch, *[a.replace("{out}", str(out_dir)) for a in args])
    assert got == code, err
    assert_no_secret(out, "stdout")
    assert_no_secret(err, "stderr")
    for record in caplog.records:
        assert_no_secret(record.getMessage(), f"log record from {record.name}")
        if record.exc_info and record.exc_info[1] is not None:
            assert_no_secret("".join(traceback.format_exception(record.exc_info[1])), "a logged traceback")
    assert_no_secret(caplog.text, "the log")
    if args[0] == "generate" and "--dry-run" not in args and path != "bad-input":
        assert any(r.name.startswith("httpcore") for r in caplog.records)  # DEBUG really was on
    if path == "bad-key":
        assert any(r.name == "imagerelay" and "XAI_API_KEY" in r.getMessage() for r in caplog.records)
    if path == "gemini-bad-key":
        assert any(r.name == "imagerelay" and "GEMINI_API_KEY" in r.getMessage() for r in caplog.records)
    if path.startswith("gemini"):
        assert emu.requests_for("gemini.generate")  # the Gemini key really was sent
    files = assert_dir_clean(out_dir)
    if path in ("success", "bad-key", "429", "5xx", "gemini-bad-key", "gemini-key-in-google-api-key"):
        assert any(
            p.suffix in (".jpg", ".png", ".webp") for p in out_dir.iterdir()
        )  # there were images to check
    if path in ("every-key-refused", "content-blocked", "all-down", "gemini-429-then-blocked"):
        assert list(out_dir.glob("*-failed.json"))  # and failure receipts
    if args[0] == "generate" and "--dry-run" not in args:
        assert (out_dir / "imagerelay.sqlite3").is_file()  # and the ledger
        assert files >= 1


@pytest.mark.parametrize(("path", "args", "code"), PATHS, ids=[p[0] for p in PATHS])
def test_no_key_leaks_from_the_environment(
    path: str,
    args: tuple[str, ...],
    code: int,
    cli: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With keys in the environment, no key shows in any output, log, file or ledger on this path."""
    _run_path(path, args, code, cli, tmp_path, capsys, monkeypatch, caplog)


DOTENV_PATHS = [p for p in PATHS if p[0] in ("success", "bad-key", "all-down", "config-show", "dry-run-json")]


@pytest.mark.parametrize(("path", "args", "code"), DOTENV_PATHS, ids=[p[0] for p in DOTENV_PATHS])
def test_no_key_leaks_from_a_dotenv_file(
    path: str,
    args: tuple[str, ...],
    code: int,
    cli: Emulator,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With keys only in ./.env, they are used (the run works) and still show nowhere."""
    keys = dict(KEYS, xai=WRONG["xai"]) if path == "bad-key" else KEYS
    (tmp_path / ".env").write_text("".join(f"{KEY_VARS[p]}={keys[p]}\n" for p in KEY_VARS))
    for var in KEY_VARS.values():
        monkeypatch.delenv(var)
    _run_path(path, args, code, cli, tmp_path, capsys, monkeypatch, caplog, dotenv=True)
    if args[0] == "generate" and "--dry-run" not in args:
        # The keys from .env really were sent (the emulator accepted them, or refused the wrong one).
        sent = cli.requests_for("xai.generations")
        assert sent
        assert sent[0].key_ok == (path != "bad-key")


async def test_no_key_in_errors_reprs_or_tracebacks(emu: Emulator, tmp_path: Path) -> None:
    """Errors (with their causes and full traceback), the relay, backends and settings never show a key."""
    for route in ROUTES.values():
        emu.script(route, Fault(status=429, headers={"retry-after": "0"}))
    keys = dict(WRONG)  # every key refused: each backend's auth error is in the failures
    settings = emulator_settings(emu, routing={"text": TEXT_ROUTING}, retry={"attempts": 2})
    relay = Relay(settings, keys=keys, out_dir=tmp_path / "out", sleep=Sleeps())
    async with relay:
        with pytest.raises(GenerationFailed) as info:
            await relay.generate("a fox")
        backends = list(relay._backends.values())
        assert len(backends) == 4
        for backend in backends:
            assert_no_secret(repr(backend), "repr(backend)")
            assert_no_secret(str(backend), "str(backend)")
            assert_no_secret(repr(vars(backend)), "the backend's attributes")
    exc = info.value
    assert {type(f).__name__ for f in exc.failures} >= {"AuthenticationFailed", "RateLimited"}
    assert_no_secret(str(exc), "str(GenerationFailed)")
    assert_no_secret(repr(exc), "repr(GenerationFailed)")
    assert_no_secret("".join(traceback.format_exception(exc)), "the traceback of GenerationFailed")
    for failure in exc.failures:
        assert_no_secret(str(failure), f"str({type(failure).__name__})")
        assert_no_secret(repr(failure), f"repr({type(failure).__name__})")
        assert_no_secret("".join(traceback.format_exception(failure)), "a failure's traceback")
        cause = failure.__cause__
        while cause is not None:
            assert_no_secret(str(cause), f"str of the cause {type(cause).__name__}")
            assert_no_secret(repr(cause), f"repr of the cause {type(cause).__name__}")
            cause = cause.__cause__ or cause.__context__
    assert_no_secret(repr(relay), "repr(Relay)")
    assert_no_secret(str(relay), "str(Relay)")
    assert_no_secret(repr(relay.settings), "repr(Settings)")
    assert_no_secret(str(relay.settings), "str(Settings)")
    assert_no_secret(relay.settings.model_dump_json(), "the settings as JSON")
    assert_no_secret(repr(relay._keys), "repr of the relay's key table")
    assert isinstance(exc.receipt, Receipt)
    assert_no_secret(exc.receipt.model_dump_json(), "the failure's receipt")
    assert_dir_clean(tmp_path / "out")


URL_PASSWORD = "pw-" + "".join(random.Random(7).choices(_ALNUM, k=24))
URL_TOKEN = "sig-" + "".join(random.Random(8).choices(_ALNUM, k=32))


@pytest.mark.parametrize(
    "host", ["10.0.0.5", "169.254.169.254", "127.0.0.1:1", "[fd00::1]:8443"], ids=lambda h: h
)
def test_credentials_in_a_reference_url_never_shown(
    host: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A refused reference URL is named in the error without its user:password@ part or query token."""
    monkeypatch.chdir(tmp_path)
    url = f"https://reader:{URL_PASSWORD}@{host}/photo.jpg?X-Amz-Signature={URL_TOKEN}"
    code, out, err = run_cli(
        capsys, monkeypatch, "generate", "a fox", "-r", url, "--out", str(tmp_path / "o")
    )
    assert code == 2
    assert "photo.jpg" in err  # the URL is still recognisable …
    assert f"…@{host}" in err
    for secret in (URL_PASSWORD, URL_TOKEN, "reader:"):
        assert secret not in out + err  # … without what authenticates it
    assert_dir_clean(tmp_path / "o")


async def test_credentials_in_a_reference_url_stay_out_of_the_receipt(emu: Emulator, tmp_path: Path) -> None:
    """A reference fetched from a URL with credentials and a signed query leaves neither in the receipt."""
    from tests.images import jpeg_bytes

    hosted = emu.host_file("xai", jpeg_bytes(), "image/jpeg", "photo.jpg")
    url = hosted.replace("http://", f"http://reader:{URL_PASSWORD}@") + f"?sig={URL_TOKEN}"
    settings = emulator_settings(
        emu, routing={"reference": ["xai:grok-imagine-image"]}, references={"allow_private_urls": True}
    )
    async with Relay(settings, keys=KEYS, out_dir=tmp_path / "out") as relay:
        receipt = await relay.generate("the same, at night", references=(url,))
    assert receipt.images
    for secret in (URL_PASSWORD, URL_TOKEN):
        assert secret not in receipt.model_dump_json()
        for path in (tmp_path / "out").rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path


def test_key_pasted_into_routing_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key set by mistake as a routing entry is refused without printing it back."""
    from imagerelay.catalog import load_catalog
    from imagerelay.errors import ConfigError
    from imagerelay.planner import plan_request
    from imagerelay.request import ImageRequest
    from imagerelay.settings import load_settings

    key = "xai-" + "Q7" * 20
    monkeypatch.setenv("IMAGERELAY_ROUTING__TEXT", f'["{key}"]')
    settings = load_settings("development")
    with pytest.raises(ConfigError) as info:
        plan_request(ImageRequest(prompt="x"), settings, load_catalog(), keys={"xai"})
    assert key[:12] not in str(info.value)
