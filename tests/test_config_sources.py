"""Configuration that used to fail quietly: `IMAGERELAY_*` variables in `./.env`, a misnamed
config file, a `base_url` that is no URL, a config file that is not UTF-8, an API key put in an
`IMAGERELAY_*` variable; `config show` names the key variable read; debug logging shows each
attempt. Every refusal is exit 2 and one line, before anything is sent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagerelay.emulator import Emulator
from tests.clikit import run_cli

DRY = ("generate", "x", "--env", "sandbox", "--dry-run", "-o", "o")


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_a_budget_cap_in_dotenv_applies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """IMAGERELAY_BUDGET__MAX_COST_PER_REQUEST in ./.env caps the request as the exported variable does."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("IMAGERELAY_BUDGET__MAX_COST_PER_REQUEST=0.001\n")
    code, _, err = run_cli(capsys, monkeypatch, *DRY)
    assert code == 1
    assert "no candidate fits the budget of $0.001" in one_line(err)
    monkeypatch.setenv("IMAGERELAY_BUDGET__MAX_COST_PER_REQUEST", "1")  # the environment wins
    code, _, err = run_cli(capsys, monkeypatch, *DRY)
    assert code == 0, err


def test_a_misspelt_variable_in_dotenv_is_refused_with_the_right_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A misspelt IMAGERELAY_* entry in ./.env is refused like the environment's, naming the file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("IMAGERELAY_BUDGET_MAX_COST_PER_REQUEST=0.001\n")
    code, _, err = run_cli(capsys, monkeypatch, *DRY)
    assert code == 2
    line = one_line(err)
    assert f"IMAGERELAY_BUDGET_MAX_COST_PER_REQUEST in {tmp_path / '.env'} names no setting" in line
    assert "did you mean IMAGERELAY_BUDGET__MAX_COST_PER_REQUEST?" in line


@pytest.mark.parametrize("var", ["IMAGERELAY_XAI_API_KEY", "IMAGERELAY_PROVIDERS__XAI__API_KEY"])
def test_a_key_in_an_imagerelay_variable_says_where_keys_go(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, var: str
) -> None:
    """An API key put in an IMAGERELAY_* variable is refused with the variable keys are read from."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(var, "not-a-real-key")
    code, _, err = run_cli(capsys, monkeypatch, *DRY)
    assert code == 2
    line = one_line(err)
    assert "API keys are read from XAI_API_KEY" in line
    assert "rename it to XAI_API_KEY" in line
    assert "not-a-real-key" not in line


@pytest.mark.parametrize(
    ("name", "fix"),
    [
        ("imagerelay.developement.toml", "imagerelay.development.toml"),
        ("imagerelay.Development.toml", "imagerelay.development.toml"),
        ("imagerelay.tml", "imagerelay.toml"),
        ("imagerelay.toml.txt", "imagerelay.toml"),
        ("imagerelay-config.toml", "imagerelay.toml"),
    ],
)
@pytest.mark.parametrize("where", [".", "config"])
def test_a_misnamed_config_file_is_refused_with_the_name_to_give_it(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    fix: str,
    where: str,
) -> None:
    """A near-miss of imagerelay.toml / imagerelay.<env>.toml (whose cap would be ignored) is exit 2
    naming the file and the name to give it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / where).mkdir(exist_ok=True)
    (tmp_path / where / name).write_text("[budget]\nmax_cost_per_request = 0.001\n")
    code, _, err = run_cli(capsys, monkeypatch, *DRY)
    assert code == 2
    line = one_line(err)
    assert name in line
    assert f"rename it to {fix}" in line


def test_own_environments_and_copies_kept_aside_are_not_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """imagerelay.staging.toml (an environment of the user's own), a .bak copy, a ledger and a
    manifest named imagerelay-… are none of the above."""
    monkeypatch.chdir(tmp_path)
    for name in (
        "imagerelay.staging.toml",
        "imagerelay.toml.bak",
        "imagerelay.sqlite3",
        "imagerelay-week.csv",
    ):
        (tmp_path / name).write_text("x = 1\n")
    code, _, err = run_cli(capsys, monkeypatch, *DRY)
    assert code == 0, err


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com/v1", "http://"])
def test_a_base_url_that_is_not_http_is_refused_at_load(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    url: str,
) -> None:
    """providers.xai.base_url that is no http(s) URL: exit 2 naming it and the file, nothing sent
    (it was retried as transient, then another provider was paid)."""
    monkeypatch.delenv("IMAGERELAY_PROVIDERS__XAI__BASE_URL")
    (tmp_path / "imagerelay.toml").write_text(f'[providers.xai]\nbase_url = "{url}"\n')
    code, _, err = run_cli(capsys, monkeypatch, "generate", "x", "-o", "o")
    assert code == 2
    assert one_line(err) == (
        f"error: providers.xai.base_url {url!r} is not an http(s) URL: fix {tmp_path / 'imagerelay.toml'}"
    )
    assert cli_emulator.requests == []


def test_a_config_file_that_is_not_utf8_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-UTF-8 imagerelay.toml is exit 2 naming the byte and the fix, not an unexpected error."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "imagerelay.toml").write_bytes(b"\xff\xfe garbage")
    code, _, err = run_cli(capsys, monkeypatch, *DRY)
    assert code == 2
    assert one_line(err) == (
        f"error: {tmp_path / 'imagerelay.toml'} is not UTF-8 text (byte 0xff at 0): save it as UTF-8"
    )


def test_config_show_names_the_key_variable_actually_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With only GOOGLE_API_KEY set, config show says GOOGLE_API_KEY is set, not GEMINI_API_KEY."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza" + "ZZTESTONLYGOOGLE0004")
    code, out, _ = run_cli(capsys, monkeypatch, "config", "show", "--json")
    assert code == 0
    keys = json.loads(out)["keys"]
    assert keys["GOOGLE_API_KEY"].startswith("set")
    assert "GEMINI_API_KEY" not in keys


def test_debug_logging_shows_each_attempt_and_no_key(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """IMAGERELAY_LOG_LEVEL=debug prints a line per attempt (model, outcome, status, time), no key."""
    import os

    monkeypatch.setenv("IMAGERELAY_LOG_LEVEL", "debug")
    code, _, err = run_cli(capsys, monkeypatch, "generate", "x", "-o", "o")
    assert code == 0, err
    assert "imagerelay: DEBUG: xai:grok-imagine-image: sending (1 image(s))" in err
    assert "imagerelay: DEBUG: xai:grok-imagine-image: success HTTP 200 in " in err
    assert os.environ["XAI_API_KEY"] not in err
