"""The CLI refuses bad input and configuration before spending: exit 2, one line on stderr that names
the problem and the fix, never a traceback. Also: the JSON of a dry run, `providers --json` and
`config show` with its keys masked.

Every refusal runs twice: in-process through Typer's CliRunner (the command's own handling), and as
a real `python -m imagerelay.cli` process (the console entry point: exit code, stderr, no traceback).
The processes run concurrently, once per module, so the whole file stays fast.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imagerelay.cli import app
from tests.images import EMPTY_BYTES, TEXT_BYTES, jpeg_bytes, truncated_jpeg_bytes
from tests.keys import ALL_KEY_VARS, outside_setting

FAKE_XAI_KEY = "xai-" + "FAKEFAKEFAKE0123456789abcdefWXYZ"


@dataclass(frozen=True)
class Case:
    """One bad invocation: its arguments ({ws} is the workspace), extra environment, and what the
    one line on stderr must contain (the problem, then the fix)."""

    id: str
    args: tuple[str, ...]
    expect: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    runner: bool = True  # False: only the console entry point formats this (a usage error)


SANDBOX_DRY = ("--env", "sandbox", "--dry-run")
CASES = [
    Case(
        "missing-reference",
        ("generate", "a fox", "-r", "{ws}/missing.jpg", *SANDBOX_DRY),
        ("missing.jpg' not found", "check the path"),
    ),
    Case(
        "text-file-reference",
        ("generate", "a fox", "-r", "{ws}/notes.txt", *SANDBOX_DRY),
        ("notes.txt' is not an image", "pass a JPEG, PNG"),
    ),
    Case(
        "truncated-jpeg",
        ("generate", "a fox", "-r", "{ws}/truncated.jpg", *SANDBOX_DRY),
        ("truncated.jpg' is truncated or corrupt", "re-export it"),
    ),
    Case(
        "empty-file",
        ("generate", "a fox", "-r", "{ws}/empty.jpg", *SANDBOX_DRY),
        ("empty.jpg' is empty (0 bytes)", "pass an image file"),
    ),
    Case("empty-prompt", ("generate", "", *SANDBOX_DRY), ("the prompt is empty", "say what the image")),
    Case("n-0", ("generate", "a fox", "-n", "0", *SANDBOX_DRY), ("between 1 and 10 (got 0)", "batch")),
    Case("n-1000", ("generate", "a fox", "-n", "1000", *SANDBOX_DRY), ("(got 1000)", "batch manifest")),
    Case(
        "size-banana",
        ("generate", "a fox", "--size", "banana", *SANDBOX_DRY),
        ("size 'banana' is not WIDTHxHEIGHT", "e.g. 1024x1024"),
    ),
    Case(
        "ratio-99:1",
        ("generate", "a fox", "--aspect-ratio", "99:1", *SANDBOX_DRY),
        ("aspect ratio '99:1' is out of range", "between 1:4 and 4:1"),
    ),
    Case(
        "size-and-ratio",
        ("generate", "a fox", "--size", "1024x1024", "--aspect-ratio", "1:1", *SANDBOX_DRY),
        ("give --size or --aspect-ratio, not both",),
    ),
    Case(
        "seed-negative",
        ("generate", "a fox", "--seed", "-1", *SANDBOX_DRY),
        ("seed: must be at least 0 (got -1)",),
    ),
    Case(
        "format-gif",
        ("generate", "a fox", "--format", "gif", *SANDBOX_DRY),
        ("output_format: must be one of png, jpeg, webp (got 'gif')",),
    ),
    Case(
        "max-cost-negative",
        ("generate", "a fox", "--max-cost", "-1", *SANDBOX_DRY),
        ("cost limit must be 0 or more", "--max-cost"),
    ),
    Case(
        "unknown-provider",
        ("generate", "a fox", "--provider", "stability", *SANDBOX_DRY),
        ("unknown provider 'stability'", "use one of auto, xai, openai, replicate"),
    ),
    Case(
        "unknown-model",
        ("generate", "a fox", "--provider", "xai:grok-9", *SANDBOX_DRY),
        ("unknown model 'grok-9'", "use one of grok-imagine-image"),
    ),
    Case(
        "retired-model",
        ("generate", "a fox", "--provider", "openai:dall-e-3", *SANDBOX_DRY),
        ("retired on 2026-05-12", "pin another model"),
    ),
    Case(
        "broken-toml",
        ("generate", "a fox", *SANDBOX_DRY),
        ("broken/imagerelay.sandbox.toml is not valid TOML", "fix the file"),
        env={"IMAGERELAY_CONFIG_DIR": "{ws}/broken"},
    ),
    Case(
        "unknown-config-key",
        ("generate", "a fox", *SANDBOX_DRY),
        ("typo/imagerelay.toml", "unknown setting 'retry.atempts'", "did you mean 'retry.attempts'?"),
        env={"IMAGERELAY_CONFIG_DIR": "{ws}/typo"},
    ),
    Case(
        "api-key-in-config",
        ("generate", "a fox", *SANDBOX_DRY),
        ("API keys are never read from config files", "set XAI_API_KEY"),
        env={"IMAGERELAY_CONFIG_DIR": "{ws}/withkey"},
    ),
    Case(
        "config-dir-missing",
        ("generate", "a fox", *SANDBOX_DRY),
        ("IMAGERELAY_CONFIG_DIR", "not a directory", "create it"),
        env={"IMAGERELAY_CONFIG_DIR": "{ws}/no-such-dir"},
    ),
    Case(
        "bad-env-value",
        ("generate", "a fox", *SANDBOX_DRY),
        ("environment variable IMAGERELAY_RETRY__ATTEMPTS", "fix the value"),
        env={"IMAGERELAY_RETRY__ATTEMPTS": "many"},
    ),
    Case(
        "env-list-not-json",
        ("generate", "a fox", *SANDBOX_DRY),
        ("environment variable IMAGERELAY_ROUTING__TEXT", "JSON"),
        env={"IMAGERELAY_ROUTING__TEXT": "xai:grok-imagine-image"},
    ),
    Case(
        "unknown-env",
        ("generate", "a fox", "--env", "staging", "--dry-run"),
        ("no configuration for environment 'staging'", "use default, development, production, sandbox"),
    ),
    Case(
        "out-is-a-file",
        ("generate", "a fox", "--env", "sandbox", "--out", "{ws}/notes.txt"),
        ("notes.txt' is a file, not a directory", "pass --out DIR"),
    ),
    Case(
        "out-not-writable",
        ("generate", "a fox", "--env", "sandbox", "--out", "{unwritable}"),
        ("{unwritable}", "pass --out with a writable directory"),
    ),
    Case(
        "plan-missing-reference",
        ("plan", "a fox", "-r", "{ws}/missing.jpg", "--env", "sandbox"),
        ("not found", "check the path"),
    ),
    Case(
        "extra-not-provider-field",
        ("generate", "a fox", "--extra", "go_fast=false", *SANDBOX_DRY),
        ("is not PROVIDER.FIELD=VALUE", "e.g. replicate.go_fast=false"),
    ),
    Case(
        "n-abc",
        ("generate", "a fox", "-n", "abc", *SANDBOX_DRY),
        ("Invalid value for '-n'", "--help"),
        runner=False,
    ),
    Case(
        "unknown-option",
        ("generate", "a fox", "--bogus", *SANDBOX_DRY),
        ("No such option: --bogus", "generate --help"),
        runner=False,
    ),
    Case("missing-prompt", ("generate",), ("Missing argument", "generate --help"), runner=False),
    Case(
        "empty-out",
        ("generate", "a fox", "-o", "", *SANDBOX_DRY),
        ("--out is empty", "leave --out out"),
        runner=False,
    ),
    Case(
        "empty-provider",
        ("generate", "a fox", "--provider", "", *SANDBOX_DRY),
        ("--provider is empty", "leave --provider out for the default"),
        runner=False,
    ),
    Case(
        "empty-env",
        ("generate", "a fox", "--env", "", "--dry-run"),
        ("--env is empty", "leave --env out for the default"),
        runner=False,
    ),
    Case(
        "bare-model-as-provider",
        ("generate", "a fox", "--provider", "gpt-image-2", *SANDBOX_DRY),
        ("'gpt-image-2': it is a model", "pass --provider openai:gpt-image-2"),
    ),
    Case(
        "misspelt-model",
        ("generate", "a fox", "--provider", "openai:gpt-imag-2", *SANDBOX_DRY),
        ("unknown model 'gpt-imag-2'", "did you mean openai:gpt-image-2?"),
    ),
    Case(
        "misspelt-provider",
        ("generate", "a fox", "--provider", "opnai", *SANDBOX_DRY),
        ("unknown provider 'opnai'", "did you mean 'openai'?"),
    ),
    Case("batch-directory", ("batch", "{ws}", "--env", "sandbox"), ("is a directory", "pass a .toml, .csv")),
]


def _unwritable_dir(base: Path) -> Path:
    """A directory the CLI cannot write into: chmod 0o500 — unless we run as root, who writes
    anyway; then a directory that cannot exist because its parent is a regular file."""
    d = base / "read-only"
    d.mkdir()
    d.chmod(0o500)
    try:
        with tempfile.NamedTemporaryFile(dir=d):
            pass
    except PermissionError:
        return d  # permissions are enforced: a real read-only directory
    d.chmod(0o700)
    return base / "notes.txt" / "out"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Files and config directories the bad invocations point at."""
    ws = tmp_path_factory.mktemp("cli-input")
    (ws / "notes.txt").write_bytes(TEXT_BYTES)
    (ws / "empty.jpg").write_bytes(EMPTY_BYTES)
    (ws / "truncated.jpg").write_bytes(truncated_jpeg_bytes())
    (ws / "fox.jpg").write_bytes(jpeg_bytes((96, 64)))
    for name, file, text in [
        ("broken", "imagerelay.sandbox.toml", "[retry\nattempts = 3\n"),
        ("typo", "imagerelay.toml", "[retry]\natempts = 5\n"),
        ("withkey", "imagerelay.toml", '[providers.xai]\napi_key = "xai-in-a-file"\n'),
    ]:
        (ws / name).mkdir()
        (ws / name / file).write_text(text)
    unwritable = _unwritable_dir(ws)
    yield ws
    if unwritable.is_dir():
        unwritable.chmod(0o700)


def _fill(text: str, ws: Path) -> str:
    read_only = ws / "read-only"
    still_read_only = read_only.stat().st_mode & 0o200 == 0  # as `_unwritable_dir` left it
    unwritable = read_only if still_read_only else ws / "notes.txt" / "out"
    return text.replace("{ws}", str(ws)).replace("{unwritable}", str(unwritable))


def _clean_env() -> dict[str, str]:
    """The current environment without IMAGERELAY_* variables or keys."""
    return {k: v for k, v in os.environ.items() if not outside_setting(k) and k not in ALL_KEY_VARS}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No outside IMAGERELAY_* variables or keys; an empty working directory; logging restored."""
    for var in list(os.environ):
        if outside_setting(var) or var in ALL_KEY_VARS:
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    logger = logging.getLogger("imagerelay")
    handlers, level = list(logger.handlers), logger.level
    yield
    logger.handlers[:] = handlers  # the CLI attaches a handler to the (captured) stderr of its run
    logger.setLevel(level)


@pytest.fixture(scope="module")
def processes(workspace: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """Every case run as `python -m imagerelay.cli …`, concurrently, in an empty directory."""
    cwd = workspace / "cwd"
    cwd.mkdir()

    def run(case: Case) -> subprocess.CompletedProcess[str]:
        env = _clean_env() | {k: _fill(v, workspace) for k, v in case.env.items()}
        args = [_fill(a, workspace) for a in case.args]
        return subprocess.run(
            [sys.executable, "-m", "imagerelay.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            timeout=60,
            check=False,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip([c.id for c in CASES], pool.map(run, CASES), strict=True))


def _assert_one_line(stderr: str, case: Case, ws: Path) -> None:
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("error: ")
    for part in case.expect:
        assert _fill(part, ws) in line, (part, line)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_console_refuses_with_exit_2_and_one_line(
    case: Case, processes: dict[str, subprocess.CompletedProcess[str]], workspace: Path
) -> None:
    """The console entry point exits 2 with one stderr line naming problem and fix; stdout stays empty."""
    proc = processes[case.id]
    assert proc.returncode == 2, proc.stderr
    _assert_one_line(proc.stderr, case, workspace)
    assert proc.stdout == ""


@pytest.mark.parametrize("case", [c for c in CASES if c.runner], ids=[c.id for c in CASES if c.runner])
def test_command_refuses_with_exit_2_and_one_line(case: Case, workspace: Path) -> None:
    """In-process, each command exits 2 with one stderr line naming problem and fix."""
    env = {k: _fill(v, workspace) for k, v in case.env.items()}
    result = CliRunner().invoke(app, [_fill(a, workspace) for a in case.args], env=env)
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    _assert_one_line(result.stderr, case, workspace)
    assert result.stdout == ""


def test_refused_out_file_is_left_intact(
    processes: dict[str, subprocess.CompletedProcess[str]], workspace: Path
) -> None:
    """An --out that is a regular file is refused and the file is not touched."""
    assert processes["out-is-a-file"].returncode == 2
    assert (workspace / "notes.txt").read_bytes() == TEXT_BYTES


def test_dry_run_json_is_one_object() -> None:
    """--dry-run --json prints exactly one JSON object with candidates, excluded and estimate_usd."""
    result = CliRunner().invoke(
        app, ["generate", "a fox", "--env", "sandbox", "--dry-run", "--json", "-n", "6"]
    )
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)  # the whole of stdout is one document
    assert isinstance(plan, dict)
    assert {"candidates", "excluded", "estimate_usd"} <= plan.keys()
    assert plan["candidates"][0]["model"] == "xai:grok-imagine-image"
    assert plan["estimate_usd"] == pytest.approx(6 * 0.02)
    schnell = next(c for c in plan["candidates"] if c["model"].endswith("flux-schnell"))
    assert schnell["calls"] == [4, 2]


def test_dry_run_json_lists_exclusions_with_reasons(workspace: Path) -> None:
    """A reference dry run's JSON names each left-out model and why."""
    result = CliRunner().invoke(
        app,
        ["plan", "a fox", "-r", str(workspace / "fox.jpg"), "--env", "sandbox", "--json"],
        env={"IMAGERELAY_ROUTING__ALLOW_UNLISTED": "true"},
    )
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    excluded = {e["model"]: e["reason"] for e in plan["excluded"]}
    assert excluded["replicate:black-forest-labs/flux-schnell"] == "cannot take reference images (text only)"
    assert excluded["openai:dall-e-3"] == "retired on 2026-05-12"
    assert "replicate:black-forest-labs/flux-schnell" not in [c["model"] for c in plan["candidates"]]


def test_dry_run_error_with_json_is_one_object() -> None:
    """With --json, a refusal still prints one JSON object on stdout (and exits 2)."""
    result = CliRunner().invoke(app, ["generate", "a fox", "-n", "0", *SANDBOX_DRY, "--json"])
    assert result.exit_code == 2
    payload = json.loads(result.stdout)
    assert payload["exit_code"] == 2
    assert payload["error_type"] == "InvalidRequest"


def test_providers_json_marks_retired_models_unplannable() -> None:
    """`providers --json` lists every model; the retired ones have plannable: false."""
    result = CliRunner().invoke(app, ["providers", "--json", "--env", "development"])
    assert result.exit_code == 0, result.stderr
    rows = {r["model"]: r for r in json.loads(result.stdout)}
    for ref in ("xai:grok-2-image", "openai:dall-e-2", "openai:dall-e-3", "openai:gpt-image-1"):
        assert rows[ref]["plannable"] is False
        assert rows[ref]["status"].startswith("retired")
    assert rows["xai:grok-imagine-image"]["plannable"] is True
    assert rows["xai:grok-imagine-image"]["key_set"] is False  # no key in this test's environment


def test_config_show_masks_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """`config show` says a key is set without printing it."""
    monkeypatch.setenv("XAI_API_KEY", FAKE_XAI_KEY)
    result = CliRunner().invoke(app, ["config", "show", "--env", "development", "--json"])
    assert result.exit_code == 0, result.stderr
    assert FAKE_XAI_KEY not in result.stdout + result.stderr
    assert "FAKEFAKE" not in result.stdout + result.stderr
    shown = json.loads(result.stdout)
    assert shown["keys"]["XAI_API_KEY"].startswith("set")
    assert shown["keys"]["OPENAI_API_KEY"] == "not set"
    assert shown["env"] == "development"


def test_config_show_reports_broken_config(workspace: Path) -> None:
    """`config show` with a broken user file exits 2 naming the file."""
    result = CliRunner().invoke(
        app, ["config", "show", "--env", "sandbox"], env={"IMAGERELAY_CONFIG_DIR": str(workspace / "broken")}
    )
    assert result.exit_code == 2
    assert "imagerelay.sandbox.toml is not valid TOML" in result.stderr


def test_config_show_lists_the_files_it_merged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`config show` names the settings files it read, in merge order, and not another program's."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "default.toml").write_text("[server]\nport = 1\n")
    (tmp_path / "imagerelay.toml").write_text("[retry]\nattempts = 6\n")
    result = CliRunner().invoke(app, ["config", "show", "--env", "production", "--json"])
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert [Path(f).name for f in shown["files"]] == ["default.toml", "production.toml", "imagerelay.toml"]
    assert Path(shown["files"][-1]) == tmp_path / "imagerelay.toml"
    assert shown["retry"]["attempts"] == 6


def test_env_option_reads_imagerelay_env() -> None:
    """IMAGERELAY_ENV chooses the environment when --env is not given."""
    result = CliRunner().invoke(app, ["config", "show", "--json"], env={"IMAGERELAY_ENV": "production"})
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["retry"]["attempts"] == 4


def test_config_show_never_shows_most_of_a_short_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A short key is reported as set without any of its characters (its tail would be most of it)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abcd")
    result = CliRunner().invoke(app, ["config", "show", "--env", "development", "--json"])
    assert result.exit_code == 0, result.stderr
    assert "abcd" not in result.stdout
    assert json.loads(result.stdout)["keys"]["OPENAI_API_KEY"] == "set"


def test_emulator_port_out_of_range_is_one_line_exit_2() -> None:
    """`emulator serve --port 99999` is refused as a bad option value, not an unexpected error."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "imagerelay.cli", "emulator", "serve", "--port", "99999"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "--port" in done.stderr
