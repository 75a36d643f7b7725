"""A catalogue of bad input through the `imagerelay` entry point: exit 2, one line, no traceback.

Every refusal runs in-process through `imagerelay.cli.main` (the console entry point itself, with
`sys.argv` set), and a handful also as a real `python -m imagerelay.cli` process, to prove that
nothing but the one line reaches a terminal. The convertible references (EXIF-rotated, CMYK, 16-bit,
animated GIF, WebP, HEIC) are converted, not refused, and the receipt says what was converted.
A decompression bomb is refused as a reference and, from a provider's answer, ends that attempt as
a typed outcome with nothing saved.

The tests run as root here, where `chmod` does not make a directory read-only; the read-only output
cases therefore use directories no permission bit is involved in: `/proc/self` (a directory even
root cannot create files in), `/sys/…` (a read-only file system) and a path whose parent is a
regular file. A `chmod 0o500` case runs as well when the tests do not run as root.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from imagerelay.emulator import Emulator, Fault
from imagerelay.errors import GenerationFailed
from imagerelay.imaging import MAX_PIXELS, probe
from imagerelay.receipt import Receipt
from imagerelay.references import MAX_REFERENCE_FILE_BYTES
from tests.clikit import run_cli
from tests.images import (
    EMPTY_BYTES,
    TEXT_BYTES,
    animated_gif_bytes,
    bomb_png_bytes,
    cmyk_jpeg_bytes,
    exif_rotated_jpeg_bytes,
    heic_bytes,
    png16_bytes,
    rgba_png_bytes,
    truncated_jpeg_bytes,
    webp_bytes,
)
from tests.keys import ALL_KEY_VARS, KEY_VARS, outside_setting
from tests.relaykit import Sleeps, make_relay

REPO = Path(__file__).resolve().parents[1]
SANDBOX = ("--env", "sandbox")
#: Private reference URLs are refused outside the sandbox (which allows them for its own emulator).
DEV = ("--env", "development")


def _make_workspace(ws: Path) -> Path:
    """Files every case can refer to as {ws}/name."""
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "empty.jpg").write_bytes(EMPTY_BYTES)
    (ws / "notes.txt").write_bytes(TEXT_BYTES)
    (ws / "truncated.jpg").write_bytes(truncated_jpeg_bytes())
    (ws / "bomb.png").write_bytes(bomb_png_bytes())
    (ws / "good.png").write_bytes(rgba_png_bytes())
    (ws / "folder.jpg").mkdir(exist_ok=True)
    (ws / "a-file").write_text("not a directory\n")
    with (ws / "huge.jpg").open("wb") as f:  # sparse: over the limit without writing 100 MiB
        f.truncate(MAX_REFERENCE_FILE_BYTES + 10)
    cfg = ws / "config"
    cfg.mkdir(exist_ok=True)
    (cfg / "imagerelay.broken.toml").write_text("[routing\ntext = [\n")
    (cfg / "imagerelay.typo.toml").write_text('[routing]\ntexts = ["xai:grok-imagine-image"]\n')
    (cfg / "imagerelay.xia.toml").write_text("[providers.xia]\ntimeout = 30\n")
    (cfg / "imagerelay.keyed.toml").write_text('[providers.xai]\napi_key = "xai-in-a-file"\n')
    return ws


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with the bad files, no API keys set, and nothing else configured."""
    monkeypatch.chdir(tmp_path)
    for var in ALL_KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    for var in list(os.environ):
        if outside_setting(var):
            monkeypatch.delenv(var)
    return _make_workspace(tmp_path / "ws")


@dataclass(frozen=True)
class Case:
    """One bad invocation ({ws} is the workspace) and what its one stderr line must say."""

    id: str
    args: tuple[str, ...]
    expect: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


def _over_limit_message() -> str:
    return f"{MAX_REFERENCE_FILE_BYTES + 10:,} bytes, over the {MAX_REFERENCE_FILE_BYTES:,} bytes limit"


CASES = [
    # References
    Case("reference-missing", ("generate", "a fox", "-r", "{ws}/missing.jpg", *SANDBOX),
         ("missing.jpg' not found", "check the path")),
    Case("reference-empty", ("generate", "a fox", "-r", "{ws}/empty.jpg", *SANDBOX),
         ("empty.jpg' is empty (0 bytes)", "pass an image file")),
    Case("reference-truncated", ("generate", "a fox", "-r", "{ws}/truncated.jpg", *SANDBOX),
         ("truncated.jpg' is truncated or corrupt", "re-export it")),
    Case("reference-not-an-image", ("generate", "a fox", "-r", "{ws}/notes.txt", *SANDBOX),
         ("notes.txt' is not an image", "pass a JPEG, PNG, WebP, GIF or HEIC file")),
    Case("reference-huge", ("generate", "a fox", "-r", "{ws}/huge.jpg", *SANDBOX),
         (_over_limit_message(), "downscale or recompress it first")),
    Case("reference-bomb", ("generate", "a fox", "-r", "{ws}/bomb.png", *SANDBOX),
         ("bomb.png' has 200000x200000 pixels", f"over the {MAX_PIXELS / 1e6:g}-megapixel limit",
          "downscale it first")),
    Case("reference-directory", ("generate", "a fox", "-r", "{ws}/folder.jpg", *SANDBOX),
         ("folder.jpg' is a directory", "pass the path of an image file")),
    Case("mask-bomb", ("generate", "a fox", "-r", "{ws}/good.png", "--mask", "{ws}/bomb.png", *SANDBOX),
         ("mask '{ws}/bomb.png' has 200000x200000 pixels", "downscale it first")),
    Case("reference-empty-string", ("generate", "a fox", "-r", "", *SANDBOX),
         ("reference 1 is an empty string", "pass the path of an image file or a URL")),
    Case("reference-device", ("generate", "a fox", "-r", "/dev/zero", *SANDBOX),
         ("'/dev/zero' is not a regular file", "pass the path of an image file")),
    Case("reference-file-url", ("generate", "a fox", "-r", "file:///etc/passwd", *SANDBOX),
         ("must be an https URL, not file", "pass an https URL or a file path")),
    Case("mask-empty-string", ("generate", "a fox", "-r", "{ws}/good.png", "--mask", "", *SANDBOX),
         ("the mask is an empty string", "leave --mask out")),
    Case("reference-url-private", ("generate", "a fox", "-r", "http://10.0.0.5/a.jpg", *DEV),
         ("'http://10.0.0.5/a.jpg' points to a private address", "use a public https URL")),
    Case("reference-url-metadata", ("generate", "a fox", "-r", "https://169.254.169.254/x.jpg", *DEV),
         ("points to a cloud metadata address (169.254.169.254)", "use a public https URL")),
    Case("reference-url-loopback", ("generate", "a fox", "-r", "http://127.0.0.1:1/a.jpg", *DEV),
         ("points to a loopback address (127.0.0.1)", "use a public https URL")),
    # The request
    Case("prompt-empty", ("generate", "", *SANDBOX),
         ("the prompt is empty", "say what the image should show")),
    Case("prompt-blank", ("generate", "  \n\t ", *SANDBOX), ("the prompt is empty",)),
    Case("prompt-100000-chars", ("generate", "x" * 100_000, *SANDBOX),
         ("100,000 characters, over the 32,000 limit", "shorten it")),
    Case("size-nonsense", ("generate", "a fox", "--size", "banana", *SANDBOX),
         ("size 'banana' is not WIDTHxHEIGHT", "e.g. 1024x1024")),
    Case("size-zero", ("generate", "a fox", "--size", "0x0", *SANDBOX), ("size '0x0' is out of range",)),
    Case("aspect-ratio-nonsense", ("generate", "a fox", "--aspect-ratio", "wide", *SANDBOX),
         ("aspect ratio 'wide' is not W:H", "e.g. 16:9")),
    Case("aspect-ratio-zero", ("generate", "a fox", "--aspect-ratio", "0:1", *SANDBOX),
         ("aspect ratio '0:1' is out of range", "between 1:4 and 4:1")),
    Case("n-0", ("generate", "a fox", "-n", "0", *SANDBOX), ("n must be between 1 and 10 (got 0)",)),
    Case("n-1000", ("generate", "a fox", "-n", "1000", *SANDBOX),
         ("n must be between 1 and 10 (got 1000)", "use a batch manifest")),
    Case("n-not-a-number", ("generate", "a fox", "-n", "many", *SANDBOX),
         ("Invalid value for '-n'", "--help")),
    Case("provider-unknown", ("generate", "a fox", "--provider", "midjourney", *SANDBOX),
         ("unknown provider 'midjourney'", "use one of auto, xai, openai, replicate")),
    Case("model-unknown", ("generate", "a fox", "--provider", "xai:grok-9", *SANDBOX),
         ("unknown model 'grok-9' for xai", "use one of grok-imagine-image")),
    Case("model-retired", ("generate", "a fox", "--provider", "openai:dall-e-3", *SANDBOX),
         ("openai:dall-e-3 cannot serve this request (retired on 2026-05-12)", "pin another model")),
    # Configuration
    Case("config-broken-toml", ("generate", "a fox", "--env", "broken"),
         ("imagerelay.broken.toml is not valid TOML", "fix the file"),
         env={"IMAGERELAY_CONFIG_DIR": "{ws}/config"}),
    Case("config-unknown-key", ("generate", "a fox", "--env", "typo"),
         ("imagerelay.typo.toml: unknown setting 'routing.texts'", "did you mean 'routing.text'?"),
         env={"IMAGERELAY_CONFIG_DIR": "{ws}/config"}),
    Case("config-key-in-file", ("generate", "a fox", "--env", "keyed"),
         ("API keys are never read from config files", "XAI_API_KEY"),
         env={"IMAGERELAY_CONFIG_DIR": "{ws}/config"}),
    Case("env-unknown", ("generate", "a fox", "--env", "staging"),
         ("no configuration for environment 'staging'",)),
    Case("env-var-bad-number", ("generate", "a fox", *SANDBOX),
         ("environment variable IMAGERELAY_RETRY__ATTEMPTS", "fix the value"),
         env={"IMAGERELAY_RETRY__ATTEMPTS": "lots"}),
    Case("env-var-bad-list", ("generate", "a fox", *SANDBOX),
         ("environment variable IMAGERELAY_ROUTING__TEXT", "must be written as JSON"),
         env={"IMAGERELAY_ROUTING__TEXT": "xai:grok-imagine-image"}),
    Case("env-var-misspelt-budget", ("generate", "a fox", *SANDBOX),
         ("environment variable IMAGERELAY_BUDGET_MAX_COST_PER_REQUEST names no setting",
          "did you mean IMAGERELAY_BUDGET__MAX_COST_PER_REQUEST?"),
         env={"IMAGERELAY_BUDGET_MAX_COST_PER_REQUEST": "0.001"}),
    Case("env-misspelt", ("generate", "a fox", "--env", "prodution"),
         ("no configuration for environment 'prodution'", "did you mean 'production'?")),
    Case("config-unknown-provider", ("generate", "a fox", "--env", "xia"),
         ("imagerelay.xia.toml: unknown provider 'xia' in [providers.xia]", "did you mean 'xai'?"),
         env={"IMAGERELAY_CONFIG_DIR": "{ws}/config"}),
    Case("env-var-bad-choice", ("generate", "a fox", *SANDBOX),
         ("environment variable IMAGERELAY_ROUTING__ON_CONTENT_BLOCKED", "fix the value"),
         env={"IMAGERELAY_ROUTING__ON_CONTENT_BLOCKED": "shrug"}),
    # The output directory
    Case("out-is-a-file", ("generate", "a fox", "--out", "{ws}/a-file", *SANDBOX),
         ("a-file' is a file, not a directory", "pass --out")),
    Case("out-parent-is-a-file", ("generate", "a fox", "--out", "{ws}/a-file/images", *SANDBOX),
         ("a-file/images", "Not a directory", "pass --out with a writable directory")),
    Case("out-read-only-proc", ("generate", "a fox", "--out", "/proc/self", *SANDBOX),
         ("/proc/self", "pass --out with a writable directory")),
    Case("out-read-only-file-system", ("generate", "a fox", "--out", "/sys/imagerelay-out", *SANDBOX),
         ("/sys/imagerelay-out", "pass --out with a writable directory")),
]  # fmt: skip

#: Run again as real processes: each kind of refusal once.
SUBPROCESS_CASES = (
    "reference-missing",
    "reference-bomb",
    "reference-url-metadata",
    "n-1000",
    "n-not-a-number",
    "config-broken-toml",
    "env-var-misspelt-budget",
    "out-parent-is-a-file",
)


def _fill(value: str, ws: Path) -> str:
    return value.replace("{ws}", str(ws))


def _assert_one_line_refusal(code: int, out: str, err: str, case: Case, ws: Path) -> None:
    assert code == 2, err
    assert out == ""
    assert "Traceback" not in err
    assert err.endswith("\n")
    assert err.count("\n") == 1, err
    assert err.startswith("error: ")
    for fragment in case.expect:
        assert _fill(fragment, ws) in err, err


def _linux_only(case: Case) -> bool:
    return any(a.startswith(("/proc", "/sys")) for a in case.args)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_refused_with_exit_2_and_one_line(
    case: Case, workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bad input or configuration exits 2 with one stderr line naming the problem and the fix."""
    if _linux_only(case) and not Path("/proc/self").is_dir():
        pytest.skip("needs Linux /proc and /sys")
    for name, value in case.env.items():
        monkeypatch.setenv(name, _fill(value, workspace))
    args = [_fill(a, workspace) for a in case.args]
    if "--out" not in args:
        args += ["--out", str(workspace / "out")]
    code, out, err = run_cli(capsys, monkeypatch, *args)
    _assert_one_line_refusal(code, out, err, case, workspace)
    images = [p for p in (workspace / "out").glob("*") if p.suffix not in (".json", ".sqlite3")]
    assert images == []


def test_catalogue_is_large_enough() -> None:
    """The catalogue holds at least 25 distinct refusals."""
    assert len({c.id for c in CASES}) == len(CASES) >= 25


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permission bits")
def test_read_only_directory_by_permission(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An output directory without write permission is refused with exit 2 and one line."""
    locked = workspace / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, out, err = run_cli(capsys, monkeypatch, "generate", "a fox", "--out", str(locked), *SANDBOX)
    finally:
        locked.chmod(0o700)
    case = Case("locked", (), ("locked", "pass --out with a writable directory"))
    _assert_one_line_refusal(code, out, err, case, workspace)


def test_refusals_reach_a_real_terminal_as_one_line(tmp_path: Path) -> None:
    """As real processes, the refusals print one line and exit 2: no traceback reaches the terminal."""
    ws = _make_workspace(tmp_path / "ws")
    env = {k: v for k, v in os.environ.items() if k not in ALL_KEY_VARS and not outside_setting(k)}
    env["PYTHONPATH"] = str(REPO / "src")
    by_id = {c.id: c for c in CASES}

    def one(case_id: str) -> tuple[Case, subprocess.CompletedProcess[str]]:
        case = by_id[case_id]
        args = [_fill(a, ws) for a in case.args]
        if "--out" not in args:
            args += ["--out", str(ws / f"out-{case_id}")]
        proc_env = env | {k: _fill(v, ws) for k, v in case.env.items()}
        proc = subprocess.run(
            [sys.executable, "-m", "imagerelay.cli", *args],
            capture_output=True,
            text=True,
            env=proc_env,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
        return case, proc

    with ThreadPoolExecutor(max_workers=len(SUBPROCESS_CASES)) as pool:
        results = list(pool.map(one, SUBPROCESS_CASES))
    for case, proc in results:
        _assert_one_line_refusal(proc.returncode, proc.stdout, proc.stderr, case, ws)


# ---------------------------------------------------------------------------------------------
# Convertible references are converted, not refused.

CONVERTIBLE = [
    pytest.param("rotated.jpg", exif_rotated_jpeg_bytes, "EXIF rotation applied", id="exif-rotated"),
    pytest.param("cmyk.jpg", cmyk_jpeg_bytes, "CMYK converted to RGB", id="cmyk"),
    pytest.param("deep.png", png16_bytes, "16-bit converted to 8-bit", id="16-bit"),
    pytest.param("moving.gif", animated_gif_bytes, "animated GIF, first frame of 12 used", id="animated-gif"),
    pytest.param("phone.heic", heic_bytes, "HEIC converted to JPEG", id="heic"),
]


def test_webp_reference_goes_to_grok_as_it_is(
    workspace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """xAI takes WebP references (PNG, JPG, WebP): one is sent unchanged, with no conversion note."""
    ref = workspace / "leaf.webp"
    ref.write_bytes(webp_bytes())
    code, out, err = run_cli(
        capsys, monkeypatch, "generate", "the same", "-r", str(ref), "--out", str(workspace / "out"),
        "--provider", "xai", "--json", *SANDBOX,
    )  # fmt: skip
    assert code == 0, err
    receipt = json.loads(out)
    assert receipt["provider"] == "xai"
    assert not any("converted" in n for n in receipt["notes"]), receipt["notes"]


@pytest.mark.parametrize(("name", "make", "note"), CONVERTIBLE)
def test_convertible_reference_is_converted_and_noted(
    name: str,
    make: object,
    note: str,
    workspace: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reference the provider cannot take as it is gets converted (exit 0) and the receipt says how."""
    assert callable(make)
    ref = workspace / name
    ref.write_bytes(make())
    out_dir = workspace / "out"
    code, out, err = run_cli(
        capsys, monkeypatch, "generate", "the same, at night", "-r", str(ref), "--out", str(out_dir),
        "--json", *SANDBOX,
    )  # fmt: skip
    assert code == 0, err
    receipt = json.loads(out)
    assert any(note in n for n in receipt["notes"]), receipt["notes"]
    assert receipt["references"][0]["source"] == str(ref)
    for image in receipt["images"]:
        probe(Path(image["path"]).read_bytes())
    sent = receipt["attempts"][-1]["sent"]
    assert "image/jpeg" in json.dumps(sent) or "data URI" in json.dumps(sent)


# ---------------------------------------------------------------------------------------------
# Decompression bombs in providers' answers: a typed outcome, never a crash, nothing saved.

BOMB = bomb_png_bytes()


def _bomb_script(provider: str, emulator: Emulator) -> str:
    """Script `provider` to answer every generation with a bomb; returns the generation route."""
    if provider == "openai":
        body = {"created": 1, "data": [{"b64_json": base64.b64encode(BOMB).decode()}], "output_format": "png"}
        emulator.script("openai.generations", Fault(body=body, times=None))
        return "openai.generations"
    if provider == "xai":
        uri = "data:image/png;base64," + base64.b64encode(BOMB).decode()
        body = {"created": 1, "block_reason": None, "data": [{"b64_json": uri, "mime_type": "image/png"}]}
        emulator.script("xai.generations", Fault(body=body, times=None))
        return "xai.generations"
    emulator.script("files", Fault(body=BOMB, times=None))  # the prediction's output URL serves it
    return "replicate.create"


PRIMARY = {
    "xai": "xai:grok-imagine-image",
    "openai": "openai:gpt-image-2",
    "replicate": "replicate:black-forest-labs/flux-schnell",
}


@pytest.mark.parametrize("provider", list(PRIMARY))
async def test_bomb_from_a_provider_is_a_typed_failure(
    provider: str, emulator: Emulator, tmp_path: Path, test_keys: dict[str, str]
) -> None:
    """A provider answering with a decompression bomb fails that attempt (typed), and nothing is saved."""
    route = _bomb_script(provider, emulator)
    routing = {"text": [PRIMARY[provider]]}
    async with make_relay(emulator, tmp_path, test_keys, sleep=Sleeps(), routing=routing) as relay:
        with pytest.raises(GenerationFailed) as info:
            await relay.generate("a lighthouse")
    receipt = info.value.receipt
    assert isinstance(receipt, Receipt)
    expected = "DownloadFailed" if provider == "replicate" else "MalformedResponse"
    assert {a.error_type for a in receipt.attempts} == {expected}
    assert all("megapixel" in (a.error or "") for a in receipt.attempts)
    assert len(emulator.requests_for(route)) == 1  # billed work is never re-sent to that model
    out = tmp_path / "out"
    assert [p.name for p in out.iterdir() if p.suffix not in (".json", ".sqlite3")] == []


def test_bomb_from_a_provider_through_the_cli_falls_back(
    emulator: Emulator,
    workspace: Path,
    test_keys: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through the CLI, a bomb from OpenAI is one failed attempt; the fallback's image is saved, exit 0."""
    _bomb_script("openai", emulator)
    for p, var in KEY_VARS.items():
        monkeypatch.setenv(f"IMAGERELAY_PROVIDERS__{p.upper()}__BASE_URL", emulator.base_url(p))
        monkeypatch.setenv(var, test_keys[p])
    monkeypatch.setenv("IMAGERELAY_RETRY__ATTEMPTS", "1")
    monkeypatch.setenv("IMAGERELAY_ROUTING__TEXT", json.dumps([PRIMARY["openai"], PRIMARY["xai"]]))
    code, out, err = run_cli(
        capsys, monkeypatch, "generate", "a lighthouse", "--out", str(workspace / "o"), "--json"
    )
    assert code == 0, err
    assert "Traceback" not in err
    receipt = json.loads(out)
    assert [(a["provider"], a["error_type"]) for a in receipt["attempts"]] == [
        ("openai", "MalformedResponse"),
        ("xai", None),
    ]
    assert [i["provider"] for i in receipt["images"]] == ["xai"]
    assert len(list((workspace / "o").glob("*.jpg"))) == 1
    assert not list((workspace / "o").glob("*.png"))
