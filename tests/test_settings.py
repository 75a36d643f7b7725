"""Settings: the layers and their order, the user's own directory, every error by name, and keys."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from imagerelay import envvars
from imagerelay.catalog import load_catalog
from imagerelay.errors import ConfigError
from imagerelay.paths import provider_names
from imagerelay.settings import config_files, load_keys, load_settings
from imagerelay.settings_check import setting_paths
from tests.keys import ALL_KEY_VARS, KEY_VARS, outside_setting

FAKE_XAI_KEY = "xai-" + "FAKEFAKEFAKE1234567890abcdef"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No IMAGERELAY_* variable or key from the outside, and a working directory without config/."""
    for var in list(os.environ):
        if outside_setting(var) or var in ALL_KEY_VARS:
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty user config directory, named by IMAGERELAY_CONFIG_DIR."""
    d = tmp_path / "my-config"
    d.mkdir()
    monkeypatch.setenv("IMAGERELAY_CONFIG_DIR", str(d))
    return d


# -- environments ------------------------------------------------------------------------------


def test_default_environment_is_development() -> None:
    """With no argument and no IMAGERELAY_ENV the environment is development, with its $0.50 cap."""
    settings = load_settings()
    assert settings.env == "development"
    assert settings.budget.max_cost_per_request == 0.50
    assert settings.sandbox is False


def test_environment_from_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """IMAGERELAY_ENV picks the environment: production has 4 attempts and a 600 s cooldown."""
    monkeypatch.setenv("IMAGERELAY_ENV", "production")
    settings = load_settings()
    assert settings.env == "production"
    assert (settings.retry.attempts, settings.retry.cooldown) == (4, 600.0)


def test_argument_beats_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit environment argument wins over IMAGERELAY_ENV."""
    monkeypatch.setenv("IMAGERELAY_ENV", "production")
    settings = load_settings("sandbox")
    assert settings.env == "sandbox"
    assert settings.sandbox is True


def test_precedence_cli_over_env_over_env_file_over_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """retry.attempts: default.toml 3 < production.toml 4 < IMAGERELAY_RETRY__ATTEMPTS 5 < CLI 9."""
    assert load_settings("default").retry.attempts == 3
    assert load_settings("production").retry.attempts == 4
    monkeypatch.setenv("IMAGERELAY_RETRY__ATTEMPTS", "5")
    assert load_settings("production").retry.attempts == 5
    settings = load_settings("production", retry={"attempts": 9})
    assert settings.retry.attempts == 9
    assert settings.retry.cooldown == 600.0  # a CLI override of one key keeps the file's siblings


def test_env_file_keeps_default_siblings() -> None:
    """production.toml overrides some retry keys; the rest still come from default.toml."""
    retry = load_settings("production").retry
    assert (retry.attempts, retry.cooldown) == (4, 600.0)
    assert (retry.backoff_initial, retry.deadline) == (0.5, 900.0)


def test_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """`__` nests: a provider's base URL and a routing list come from IMAGERELAY_* variables."""
    monkeypatch.setenv("IMAGERELAY_PROVIDERS__XAI__BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("IMAGERELAY_ROUTING__TEXT", '["openai:gpt-image-2"]')
    settings = load_settings()
    xai = settings.provider("xai")
    assert xai.base_url == "http://127.0.0.1:9/v1"
    assert (xai.timeout, xai.max_requests_per_minute) == (300.0, 60)  # siblings from default.toml
    assert settings.routing.text == ["openai:gpt-image-2"]
    assert settings.routing.reference[0] == "xai:grok-imagine-image"  # development.toml untouched


def test_cli_override_of_one_key_keeps_the_rest() -> None:
    """A CLI override of output.dir keeps output.embed_metadata from the files."""
    settings = load_settings(output={"dir": "elsewhere"})
    assert settings.output.dir == Path("elsewhere")
    assert settings.output.embed_metadata is True


# -- the user's own directory -------------------------------------------------------------------


def test_user_dir_overrides_one_key_and_keeps_siblings(user_dir: Path) -> None:
    """A user imagerelay.development.toml setting retry.attempts changes only that key of the section."""
    (user_dir / "imagerelay.development.toml").write_text(
        "[retry]\nattempts = 7\n\n[providers.xai]\ntimeout = 30\n"
    )
    settings = load_settings()
    assert settings.retry.attempts == 7
    assert (settings.retry.cooldown, settings.retry.backoff_initial) == (300.0, 0.5)
    assert settings.provider("xai").timeout == 30
    assert settings.provider("xai").max_requests_per_minute == 60
    assert settings.routing.text[0] == "xai:grok-imagine-image"  # shipped development.toml kept
    assert settings.budget.max_cost_per_request == 0.50


def test_local_config_dir_holds_the_users_files(tmp_path: Path) -> None:
    """Without IMAGERELAY_CONFIG_DIR, ./config/imagerelay.toml is merged over the shipped files."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "imagerelay.toml").write_text("[budget]\nmax_cost_per_batch = 1.25\n")
    assert load_settings("production").budget.max_cost_per_batch == 1.25


def test_working_directory_holds_the_users_files(tmp_path: Path) -> None:
    """./imagerelay.toml and ./imagerelay.<env>.toml are read; the environment's file wins."""
    (tmp_path / "imagerelay.toml").write_text("[retry]\nattempts = 6\ncooldown = 10\n")
    (tmp_path / "imagerelay.production.toml").write_text("[retry]\nattempts = 8\n")
    production = load_settings("production").retry
    assert (production.attempts, production.cooldown) == (8, 10.0)
    assert load_settings("development").retry.attempts == 6


def test_another_programs_config_dir_is_ignored(tmp_path: Path) -> None:
    """./config/default.toml, ./config/<env>.toml and ./config/providers/ of another program are not read."""
    config = tmp_path / "config"
    (config / "providers").mkdir(parents=True)
    (config / "default.toml").write_text('[server]\nport = 8080\n[database]\nurl = "postgres://x"\n')
    (config / "development.toml").write_text("[retry]\nattempts = 1\n")
    (config / "providers" / "aws.toml").write_text('region = "eu-west-1"\n')
    settings = load_settings()
    assert settings.retry.attempts == 3
    assert "aws" not in load_catalog().providers


def test_nearer_files_win(tmp_path: Path, user_dir: Path) -> None:
    """$IMAGERELAY_CONFIG_DIR < ./config < the working directory, each merged key by key."""
    (user_dir / "imagerelay.toml").write_text("[retry]\nattempts = 5\ncooldown = 1\njitter = 0.5\n")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "imagerelay.toml").write_text("[retry]\nattempts = 6\ncooldown = 2\n")
    (tmp_path / "imagerelay.toml").write_text("[retry]\nattempts = 7\n")
    retry = load_settings().retry
    assert (retry.attempts, retry.cooldown, retry.jitter) == (7, 2.0, 0.5)
    assert config_files("development")[-3:] == [
        user_dir / "imagerelay.toml",
        tmp_path / "config" / "imagerelay.toml",
        tmp_path / "imagerelay.toml",
    ]


@pytest.mark.parametrize(
    ("old", "new"), [("default.toml", "imagerelay.toml"), ("staging.toml", "imagerelay.staging.toml")]
)
def test_shipped_name_in_the_config_dir_is_refused(user_dir: Path, old: str, new: str) -> None:
    """A file under a shipped name in $IMAGERELAY_CONFIG_DIR is refused with its new name, not ignored."""
    (user_dir / "imagerelay.staging.toml").write_text("")
    (user_dir / old).write_text("[budget]\nmax_cost_per_request = 0.01\n")
    with pytest.raises(ConfigError) as info:
        load_settings("staging")
    assert str(info.value) == (
        f"{user_dir / old}: imagerelay reads only files named imagerelay.toml and "
        f"imagerelay.<env>.toml: rename it to {new}"
    )


def test_user_provider_overrides_beside_the_users_files(tmp_path: Path) -> None:
    """./config/providers/xai.toml overrides a price when ./config holds imagerelay's own files."""
    providers = tmp_path / "config" / "providers"
    providers.mkdir(parents=True)
    (providers / "xai.toml").write_text('[models."grok-imagine-image".price]\nper_image = 0.03\n')
    assert load_catalog().model("xai:grok-imagine-image").price.per_image == 0.02
    (tmp_path / "config" / "imagerelay.toml").write_text("")
    assert load_catalog().model("xai:grok-imagine-image").price.per_image == 0.03


def test_user_dir_can_add_an_environment(user_dir: Path) -> None:
    """An environment of one's own (imagerelay.staging.toml) is merged over the shipped default.toml."""
    (user_dir / "imagerelay.staging.toml").write_text(
        '[routing]\ntext = ["replicate:black-forest-labs/flux-schnell"]\n'
    )
    settings = load_settings("staging")
    assert settings.env == "staging"
    assert settings.routing.text == ["replicate:black-forest-labs/flux-schnell"]
    assert settings.retry.attempts == 3


# -- errors ------------------------------------------------------------------------------------


def test_unknown_environment_names_the_choices() -> None:
    """An environment with no file is a ConfigError that lists the environments there are."""
    with pytest.raises(ConfigError) as info:
        load_settings("staging")
    message = str(info.value)
    assert "'staging'" in message
    for name in ("development", "production", "sandbox"):
        assert name in message


def test_misspelt_environment_gets_a_did_you_mean(user_dir: Path) -> None:
    """--env prodution is refused with 'did you mean production?'; one's own environments count too."""
    with pytest.raises(
        ConfigError, match=r"^no configuration for environment 'prodution': did you mean 'production'\?$"
    ):
        load_settings("prodution")
    (user_dir / "imagerelay.staging.toml").write_text("")
    with pytest.raises(ConfigError, match="did you mean 'staging'"):
        load_settings("stagin")


def test_environment_name_with_a_path_is_refused() -> None:
    """An environment name cannot reach outside the config directory."""
    with pytest.raises(ConfigError, match="not a plain name"):
        load_settings("../etc/passwd")


def test_broken_toml_names_the_file(user_dir: Path) -> None:
    """Broken TOML in the user's directory is a ConfigError naming that file."""
    path = user_dir / "imagerelay.development.toml"
    path.write_text("[retry\nattempts = 3\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(path) in str(info.value)
    assert "not valid TOML" in str(info.value)


def test_unknown_key_names_key_and_file(user_dir: Path) -> None:
    """A misspelt key is a ConfigError naming the key and the file it is in."""
    path = user_dir / "imagerelay.toml"
    path.write_text("[retry]\natempts = 5\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == f"{path}: unknown setting 'retry.atempts': did you mean 'retry.attempts'?"


def test_unknown_section_names_it(user_dir: Path) -> None:
    """A misspelt section is a ConfigError too, not silently ignored."""
    (user_dir / "imagerelay.development.toml").write_text("[retyr]\nattempts = 5\n")
    with pytest.raises(ConfigError, match="unknown setting 'retyr': did you mean 'retry'"):
        load_settings()


def test_misspelt_provider_table_is_refused(user_dir: Path) -> None:
    """[providers.xia] names no provider of the catalog: refused with a did-you-mean, not ignored."""
    path = user_dir / "imagerelay.toml"
    path.write_text("[providers.xia]\nmax_requests_per_minute = 1\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == f"{path}: unknown provider 'xia' in [providers.xia]: did you mean 'xai'?"


def test_provider_of_a_users_catalog_file_takes_settings(user_dir: Path) -> None:
    """A provider added in $IMAGERELAY_CONFIG_DIR/providers/ is a provider its settings may name."""
    (user_dir / "providers").mkdir()
    (user_dir / "providers" / "acme.toml").write_text("")
    (user_dir / "imagerelay.toml").write_text("[providers.acme]\ntimeout = 5\n")
    assert load_settings().provider("acme").timeout == 5


def test_bad_value_in_file_names_setting_and_file(user_dir: Path) -> None:
    """A value of the wrong type in a file names the setting and the file."""
    path = user_dir / "imagerelay.toml"
    path.write_text("[providers.xai]\ntimeout = -1\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "providers.xai.timeout" in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "toml",
    ['[providers.xai]\napi_key = "xai-in-a-file"\n', 'api_key = "xai-in-a-file"\n'],
    ids=["provider-section", "top-level"],
)
def test_api_key_in_config_is_refused(user_dir: Path, toml: str) -> None:
    """An api_key in a config file is refused: keys come only from the environment or .env."""
    (user_dir / "imagerelay.development.toml").write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "never read from config files" in message
    assert "XAI_API_KEY" in message
    assert "xai-in-a-file" not in message


def test_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """IMAGERELAY_RETRY__ATTEMPTS=many is a ConfigError naming that variable."""
    monkeypatch.setenv("IMAGERELAY_RETRY__ATTEMPTS", "many")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "environment variable IMAGERELAY_RETRY__ATTEMPTS" in str(info.value)


@pytest.mark.parametrize(
    ("var", "meant"),
    [
        ("IMAGERELAY_RETRY__ATEMPTS", "IMAGERELAY_RETRY__ATTEMPTS"),
        ("IMAGERELAY_BUDGET_MAX_COST_PER_REQUEST", "IMAGERELAY_BUDGET__MAX_COST_PER_REQUEST"),
        ("IMAGERELAY_PROVIDERS__XIA__TIMEOUT", "IMAGERELAY_PROVIDERS__XAI__TIMEOUT"),
        ("IMAGERELAY_PROVIDERS_OPENAI_BASE_URL", "IMAGERELAY_PROVIDERS__OPENAI__BASE_URL"),
        ("IMAGERELAY_CONFIGDIR", "IMAGERELAY_CONFIG_DIR"),
        ("imagerelay_log_levl", "IMAGERELAY_LOG_LEVEL"),
        ("IMAGERELAY_RETRY__ATTEMPTS__MAX", "IMAGERELAY_RETRY__ATTEMPTS"),
        ("IMAGERELAY_GATEWAY__DRAIN_SECOND", "IMAGERELAY_GATEWAY__DRAIN_SECONDS"),
        ("IMAGERELAY_GATEWAY__KEYS__APP__BUDGET_USD", "IMAGERELAY_GATEWAY__KEYS__APP__BUDGET_PER_DAY"),
    ],
)
def test_unknown_variable_is_refused_with_a_did_you_mean(
    monkeypatch: pytest.MonkeyPatch, var: str, meant: str
) -> None:
    """An IMAGERELAY_* variable that names no setting is refused by name, with the one it misspells."""
    monkeypatch.setenv(var, "0.001")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == f"environment variable {var} names no setting: did you mean {meant}?"


def test_variable_inside_a_named_table_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable for a field of one entry of a table keyed by name (a gateway key) is a setting:
    it reaches the settings' own checks instead of being refused as unknown."""
    monkeypatch.setenv("IMAGERELAY_GATEWAY__KEYS__APP__MODELS", '["xai"]')
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "names no setting" not in str(info.value)
    assert "gateway.keys.app.hash" in str(info.value)


def test_unknown_variables_are_all_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every stray IMAGERELAY_* variable is named at once; one like no setting gets the naming rule."""
    monkeypatch.setenv("IMAGERELAY_FOO", "1")
    monkeypatch.setenv("IMAGERELAY_RETRY_ATTEMPTS", "5")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == (
        "environment variable IMAGERELAY_FOO names no setting: unset it or check its spelling; "
        "environment variable IMAGERELAY_RETRY_ATTEMPTS names no setting: did you mean "
        "IMAGERELAY_RETRY__ATTEMPTS? (a setting is IMAGERELAY_<SECTION>__<KEY>, e.g. "
        "IMAGERELAY_RETRY__ATTEMPTS: see `imagerelay config show`)"
    )


def test_every_setting_and_switch_variable_is_accepted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each variable imagerelay reads that is not a setting, and a variable for every setting and
    table (derived from the settings model), passes the check."""
    monkeypatch.setenv(envvars.DEBUG, "1")
    monkeypatch.setenv(envvars.CONFIG_DIR, str(tmp_path))
    monkeypatch.setenv(envvars.ENV, "sandbox")
    defaults = load_settings().model_dump(mode="json")
    paths = list(setting_paths(provider_names()))
    assert ("budget", "max_cost_per_request") in paths
    assert ("providers", "replicate", "poll_interval") in paths
    for path in paths:
        value: Any = defaults
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if value is None:
            continue
        var = "IMAGERELAY_" + "__".join(path).upper()
        monkeypatch.setenv(var, value if isinstance(value, str) else json.dumps(value))
        load_settings()
        monkeypatch.delenv(var)


def test_list_variable_that_is_not_json_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """IMAGERELAY_ROUTING__TEXT without JSON brackets is a ConfigError naming it, with an example."""
    monkeypatch.setenv("IMAGERELAY_PROVIDERS__XAI__BASE_URL", "http://127.0.0.1:9/v1")  # fine, not JSON
    monkeypatch.setenv("IMAGERELAY_ROUTING__TEXT", "xai:grok-imagine-image")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith("environment variable IMAGERELAY_ROUTING__TEXT:")
    assert "JSON" in message
    assert "BASE_URL" not in message


# -- keys --------------------------------------------------------------------------------------


def test_keys_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """load_keys reads each provider's key from the variable the catalog names."""
    monkeypatch.setenv("XAI_API_KEY", FAKE_XAI_KEY)
    keys = load_keys(KEY_VARS)
    assert set(keys) == {"xai"}
    assert keys["xai"].get_secret_value() == FAKE_XAI_KEY


def test_keys_from_dotenv_and_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A .env in the working directory supplies keys; a variable in the environment beats it."""
    (tmp_path / ".env").write_text(
        "XAI_API_KEY=xai-from-dotenv\nOPENAI_API_KEY=sk-from-dotenv\nREPLICATE_API_TOKEN=\n"
    )
    monkeypatch.setenv("XAI_API_KEY", "xai-from-environment")
    keys = load_keys(KEY_VARS)
    assert keys["xai"].get_secret_value() == "xai-from-environment"
    assert keys["openai"].get_secret_value() == "sk-from-dotenv"
    assert "replicate" not in keys  # an empty value is no key


def test_blank_key_is_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key variable holding only spaces counts as unset; surrounding spaces are trimmed."""
    monkeypatch.setenv("XAI_API_KEY", "   ")
    monkeypatch.setenv("OPENAI_API_KEY", "  sk-padded  ")
    keys = load_keys(KEY_VARS)
    assert "xai" not in keys
    assert keys["openai"].get_secret_value() == "sk-padded"


def test_keys_never_show(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither the settings' repr nor a key's repr/str shows the key."""
    monkeypatch.setenv("XAI_API_KEY", FAKE_XAI_KEY)
    settings = load_settings()
    keys = load_keys(KEY_VARS)
    assert isinstance(keys["xai"], SecretStr)
    for text in (repr(settings), str(settings), repr(keys), str(keys["xai"]), settings.model_dump_json()):
        assert FAKE_XAI_KEY not in text
        assert "FAKEFAKE" not in text


def test_config_dir_that_is_not_a_directory_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """IMAGERELAY_CONFIG_DIR naming no directory is a ConfigError, not silently no overrides."""
    monkeypatch.setenv("IMAGERELAY_CONFIG_DIR", str(tmp_path / "my-confg"))
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "IMAGERELAY_CONFIG_DIR" in str(info.value)
    assert "my-confg" in str(info.value)


def test_bad_list_item_in_file_names_the_file(user_dir: Path) -> None:
    """A wrong item inside a list (routing.text = [1]) names the file that holds it."""
    path = user_dir / "imagerelay.toml"
    path.write_text("[routing]\ntext = [1]\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(f"{path}: routing.text.0")


@pytest.mark.parametrize(
    ("var", "value"),
    [("IMAGERELAY_ROUTING__TEXT", "[1]"), ("IMAGERELAY_ROUTING", '{"text": [1]}')],
)
def test_bad_list_item_in_variable_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str
) -> None:
    """A wrong item inside a list set by a variable (or its enclosing table) names that variable."""
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(f"environment variable {var}: routing.text.0")


def test_gemini_key_from_either_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Gemini's key comes from GEMINI_API_KEY, else GOOGLE_API_KEY (as its SDK reads it, in .env too);
    with both set, GEMINI_API_KEY wins."""
    from imagerelay.catalog import load_catalog

    envs = load_catalog().key_envs()
    assert envs["gemini"] == ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    (tmp_path / ".env").write_text("GOOGLE_API_KEY=AIza-from-dotenv\n")
    assert load_keys(envs)["gemini"].get_secret_value() == "AIza-from-dotenv"
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza-google")
    assert load_keys(envs)["gemini"].get_secret_value() == "AIza-google"
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-gemini")
    assert load_keys(envs)["gemini"].get_secret_value() == "AIza-gemini"


def test_a_bad_value_reads_as_a_request_s_does(user_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A setting of the wrong kind or outside its list is one line from the same formatter as a
    request's: where, the setting, what it must be (the allowed values), what was given."""
    (user_dir / "imagerelay.toml").write_text('[retry]\nattempts = "lots"\n')
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == (
        f"{user_dir / 'imagerelay.toml'}: retry.attempts: must be a whole number (got 'lots'): fix the value"
    )
    (user_dir / "imagerelay.toml").write_text("")
    monkeypatch.setenv("IMAGERELAY_ROUTING__ON_CONTENT_BLOCKED", "shrug")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value) == (
        "environment variable IMAGERELAY_ROUTING__ON_CONTENT_BLOCKED: routing.on_content_blocked: "
        "must be one of stop, fallback (got 'shrug'): fix the value"
    )


def test_a_bad_catalog_value_reads_as_a_request_s_does(user_dir: Path) -> None:
    """A provider file's value of the wrong kind is named with the same words as a request's."""
    (user_dir / "providers").mkdir()
    (user_dir / "providers" / "xai.toml").write_text('[models."grok-imagine-image"]\nmax_n = "many"\n')
    with pytest.raises(
        ConfigError, match=r"max_n: must be a whole number \(got 'many'\): fix the catalog entry"
    ):
        load_catalog()
