"""Settings: CLI flag > environment (`IMAGERELAY_…`) > the user's files > the shipped files.

The shipped `config/default.toml` and `config/<env>.toml` are read first; the user's own
`imagerelay.toml` and `imagerelay.<env>.toml` (in `$IMAGERELAY_CONFIG_DIR`, `./config`, then the
working directory) are merged over them key by key. Misspelt keys, sections, providers and
`IMAGERELAY_*` variables are refused with a did-you-mean (see `settings_check`). API keys are
*never* read from config files: only from the variables the catalog names (`XAI_API_KEY`, …,
`GEMINI_API_KEY` or `GOOGLE_API_KEY`) or a `.env`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)
from pydantic_settings.sources.utils import parse_env_vars

from . import envvars
from .errors import ConfigError
from .gateway.config import GatewaySettings
from .paths import read_toml, shipped_dir, user_environments, user_settings_files
from .settings_check import (
    check_providers,
    check_variables,
    close_match,
    describe,
    describe_unparsable_env,
    variables,
)

__all__ = [
    "BudgetSettings",
    "CommonProviderSettings",
    "ProviderSettings",
    "RetrySettings",
    "RoutingSettings",
    "Settings",
    "config_files",
    "key_sources",
    "load_keys",
    "load_settings",
]

ENVIRONMENTS_HINT = (
    "default, development, production, sandbox, or one of your own in an imagerelay.<env>.toml"
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderSettings(BaseModel):
    """Connection settings of one provider (the catalog says what its models can do).

    A `[providers.NAME]` table is read as this, then checked by its provider's own settings model
    (a subclass with `extra="forbid"` holding the knobs only that backend has); so this base lets
    unknown keys through, and `CommonProviderSettings` is the model of a provider with none.
    """

    model_config = ConfigDict(extra="allow")

    enabled: bool = True
    base_url: str | None = None  # None: the catalog's documented API root
    connect_timeout: float = Field(default=10.0, gt=0)
    #: Read timeout of a generation call. High-quality GPT-image renders take over two minutes.
    timeout: float = Field(default=300.0, gt=0)
    download_timeout: float = Field(default=60.0, gt=0)
    max_requests_per_minute: float | None = Field(default=None, gt=0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        # A URL httpx cannot send to would fail as a "transient" error on every attempt, and the
        # request would fall back to (and pay) another provider.
        if v is None:
            return v
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(v.strip())
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise PydanticCustomError("http_url", "{value} is not an http(s) URL", {"value": repr(v)})
        return v.strip()


class CommonProviderSettings(ProviderSettings):
    """The settings of a provider that has no knobs of its own."""

    model_config = ConfigDict(extra="forbid")


class RoutingSettings(_Section):
    """Which models are tried, in which order, and what happens on a refusal."""

    text: list[str] = Field(default_factory=list)
    reference: list[str] = Field(default_factory=list)
    allow_unlisted: bool = False
    reference_fallback: Literal["none", "describe"] = "none"
    on_content_blocked: Literal["stop", "fallback"] = "stop"
    #: Models past their shutdown date are never planned; deprecated ones are, with a note.
    allow_deprecated: bool = True


class RetrySettings(_Section):
    """The one retry loop: attempts and a deadline both bound it."""

    attempts: int = Field(default=3, ge=1, le=20)
    backoff_initial: float = Field(default=0.5, ge=0)
    backoff_max: float = Field(default=8.0, ge=0)
    jitter: float = Field(default=0.25, ge=0, le=1)
    retry_after_cap: float = Field(default=60.0, ge=0)
    deadline: float = Field(default=900.0, gt=0)
    empty_retries: int = Field(default=1, ge=0, le=5)
    cooldown: float = Field(default=300.0, ge=0)


class BudgetSettings(_Section):
    """Spending limits in USD (estimates are checked before anything is sent)."""

    max_cost_per_request: float | None = Field(default=None, ge=0)
    max_cost_per_batch: float | None = Field(default=None, ge=0)


class OutputSettings(_Section):
    dir: Path = Path("generated")
    embed_metadata: bool = True


class ReferenceSettings(_Section):
    allow_private_urls: bool = False
    max_download_bytes: int = Field(default=50 * 1024 * 1024, gt=0)


class VisionSettings(_Section):
    """The chat model that describes a reference for the `describe` fallback. Unset: the first
    provider of the catalog that names a `vision_model`, and that model."""

    provider: str | None = None
    model: str | None = None
    max_words: int = Field(default=120, gt=0)


class Settings(BaseSettings):
    """The effective settings of one environment."""

    model_config = SettingsConfigDict(
        env_prefix=envvars.PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    env: str = "development"
    #: Run the built-in emulator in-process and send every call to it (no key, no network).
    sandbox: bool = False
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    output: OutputSettings = Field(default_factory=OutputSettings)
    references: ReferenceSettings = Field(default_factory=ReferenceSettings)
    vision: VisionSettings = Field(default_factory=VisionSettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    log_level: Literal["debug", "info", "warning", "error"] = "warning"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # CLI flags (init) > IMAGERELAY_* variables (the environment's, then ./.env's) > the user's
        # files > the shipped files. The rest of .env is read for API keys only (see `load_keys`).
        return (
            init_settings,
            _Variables(settings_cls),
            _TomlLayers(settings_cls, toml_file=[p for p, _ in _LAYERS.get()], deep_merge=True),
        )

    def provider(self, name: str) -> ProviderSettings:
        from .plugins import settings_model

        return self.providers.get(name) or settings_model(name)()


def config_files(env: str) -> list[Path]:
    """The settings files of `env` that exist, in the order they are merged (later wins)."""
    shipped = shipped_dir("config")
    files = [shipped / "default.toml"] + ([shipped / f"{env}.toml"] if env != "default" else [])
    return [p for p in files if p.is_file()] + user_settings_files(env)


def _environments() -> list[str]:
    """Every environment there is a file for, shipped or the user's."""
    return sorted({p.stem for p in shipped_dir("config").glob("*.toml")} | user_environments())


class _Variables(EnvSettingsSource):
    """The `IMAGERELAY_*` variables: the environment's, and those of `./.env` it does not set."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        values = {var: value for var, (value, _) in variables().items()}
        return parse_env_vars(values, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


class _TomlLayers(TomlConfigSettingsSource):
    """The config files, shipped first then the user's, merged key by key."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        return dict(_LAYERS.get())[Path(file_path)]


#: The files to merge, each already read (in merge order): set by `load_settings`.
_LAYERS: ContextVar[tuple[tuple[Path, dict[str, Any]], ...]] = ContextVar(
    "imagerelay_config_layers", default=()
)


def load_settings(env: str | None = None, **overrides: Any) -> Settings:
    """The settings of `env` (else `$IMAGERELAY_ENV`, else `development`), with CLI overrides."""
    env = env or variables().get(envvars.ENV, ("", ""))[0] or "development"
    if not env.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"environment name {env!r} is not a plain name: use {ENVIRONMENTS_HINT}")
    check_variables()
    files = config_files(env)
    if env != "default" and not any(p.stem in (env, f"imagerelay.{env}") for p in files):
        close = close_match(env, _environments())
        hint = f"did you mean {close!r}?" if close else f"use {ENVIRONMENTS_HINT}"
        raise ConfigError(f"no configuration for environment {env!r}: {hint}")
    # Read each layer once up front: a broken file is reported by name, before anything else.
    layers = [(p, read_toml(p)) for p in files]
    given = {k: v for k, v in overrides.items() if v is not None}
    settings = _build(env, layers, given)
    if settings.sandbox:
        # The shipped per-provider rate limits are the real APIs' limits, which the emulator does
        # not have: a sandbox batch is never paced at 60 a minute. A limit set anywhere else
        # (sandbox.toml, the user's files, a variable, a flag) still applies.
        shipped = shipped_dir("config") / "default.toml"
        layers = [(p, _without_rate_limits(d) if p == shipped else d) for p, d in layers]
        settings = _build(env, layers, given)
    check_providers(settings, layers)
    return settings


def _build(env: str, layers: list[tuple[Path, dict[str, Any]]], overrides: dict[str, Any]) -> Settings:
    token = _LAYERS.set(tuple(layers))
    try:
        return Settings(env=env, **overrides)
    except ValidationError as exc:
        raise ConfigError(describe(exc, layers)) from exc
    except SettingsError as exc:  # a list or table in an IMAGERELAY_* variable that is not JSON
        raise ConfigError(describe_unparsable_env()) from exc
    finally:
        _LAYERS.reset(token)


def _without_rate_limits(data: dict[str, Any]) -> dict[str, Any]:
    providers = data.get("providers")
    if not isinstance(providers, dict):
        return data
    stripped = {
        name: {k: v for k, v in table.items() if k != "max_requests_per_minute"}
        if isinstance(table, dict)
        else table
        for name, table in providers.items()
    }
    return {**data, "providers": stripped}


def load_keys(
    key_envs: Mapping[str, str | Sequence[str]], dotenv_path: Path | None = None
) -> dict[str, SecretStr]:
    """API keys by provider, from the environment or a `.env` file (environment wins).

    A provider may name several variables (`catalog.key_envs()`): the first one set is used.
    """
    return {provider: key for provider, (_, key) in key_sources(key_envs, dotenv_path).items()}


def key_sources(
    key_envs: Mapping[str, str | Sequence[str]], dotenv_path: Path | None = None
) -> dict[str, tuple[str, SecretStr]]:
    """Provider → (the variable its key was read from, the key), for the providers with one."""
    from dotenv import dotenv_values

    path = dotenv_path or Path.cwd() / ".env"
    dotenv = {k: v for k, v in dotenv_values(path).items() if v} if path.is_file() else {}
    found: dict[str, tuple[str, SecretStr]] = {}
    for provider, names in key_envs.items():
        for var in [names] if isinstance(names, str) else names:
            value = os.environ.get(var) or dotenv.get(var)
            if value and value.strip():
                found[provider] = (var, SecretStr(value.strip()))
                break
    return found
