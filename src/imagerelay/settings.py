"""Settings: CLI flag > environment (`IMAGERELAY_…`) > config/<env>.toml > config/default.toml.

The shipped `config/` is read first; a user's own directory (`$IMAGERELAY_CONFIG_DIR`, or `./config`)
is merged over it key by key. API keys are *never* read from config files: only from the
variables the catalog names (`XAI_API_KEY`, `OPENAI_API_KEY`, `REPLICATE_API_TOKEN`) or a `.env`.
"""

from __future__ import annotations

import json
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from .errors import ConfigError
from .paths import read_toml, shipped_dir, user_config_dir

__all__ = [
    "BudgetSettings",
    "ProviderSettings",
    "RetrySettings",
    "RoutingSettings",
    "Settings",
    "load_keys",
    "load_settings",
]

ENVIRONMENTS_HINT = (
    "default, development, production, sandbox, or a file of your own in IMAGERELAY_CONFIG_DIR"
)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderSettings(_Section):
    """Connection settings of one provider (the catalog says what its models can do)."""

    enabled: bool = True
    base_url: str | None = None  # None: the catalog's documented API root
    connect_timeout: float = Field(default=10.0, gt=0)
    #: Read timeout of a generation call. High-quality GPT-image renders take over two minutes.
    timeout: float = Field(default=300.0, gt=0)
    download_timeout: float = Field(default=60.0, gt=0)
    max_requests_per_minute: float | None = Field(default=None, gt=0)
    poll_interval: float = Field(default=1.0, gt=0)
    #: Replicate: a prediction still unfinished after this long is cancelled.
    prediction_deadline: float = Field(default=600.0, gt=0)


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
    """The chat model that describes a reference for the `describe` fallback."""

    provider: str = "xai"
    model: str = "grok-4.6"
    max_words: int = Field(default=120, gt=0)


class Settings(BaseSettings):
    """The effective settings of one environment."""

    model_config = SettingsConfigDict(
        env_prefix="IMAGERELAY_",
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
        # CLI flags (init) > IMAGERELAY_* variables > config/<env>.toml > config/default.toml.
        # No dotenv source: `.env` is read for API keys only (see `load_keys`).
        return (
            init_settings,
            env_settings,
            _TomlLayers(settings_cls, toml_file=list(_FILES.get()), deep_merge=True),
        )

    def provider(self, name: str) -> ProviderSettings:
        return self.providers.get(name) or ProviderSettings()


def _config_files(env: str) -> list[Path]:
    dirs = [shipped_dir("config")]
    user = user_config_dir()
    if user is not None:
        dirs.append(user)
    files: list[Path] = []
    for d in dirs:
        files.append(d / "default.toml")
        if env != "default":
            files.append(d / f"{env}.toml")
    return files


def _describe(exc: ValidationError, layers: list[tuple[Path, dict[str, Any]]]) -> str:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    dotted = ".".join(loc)
    where = "the settings"
    var = _env_culprit(loc)
    if var is not None:  # the environment overrides every file, so it is the culprit
        where = f"environment variable {var}"
    else:
        for path, data in reversed(layers):
            if _lookup(data, loc) is not None:
                where = str(path)
                break
    if err["type"] == "extra_forbidden":
        if loc[-1].lower() in {"api_key", "key", "token", "api_token"}:
            return (
                f"{where}: API keys are never read from config files ({dotted}): "
                "set XAI_API_KEY, OPENAI_API_KEY or REPLICATE_API_TOKEN in the environment or .env"
            )
        return f"{where}: unknown setting {dotted!r}: remove it or check its spelling"
    return f"{where}: {dotted}: {err['msg']}: fix the value"


def _lookup(node: Any, parts: list[str]) -> Any:
    """The value at `parts` (table keys, list indices) inside `node`, or None."""
    for part in parts:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _env_culprit(loc: list[str]) -> str | None:
    """The IMAGERELAY_* variable that set the value at `loc`: the variable for that very setting,
    or one for an enclosing list or table (`IMAGERELAY_ROUTING__TEXT='[1]'`) whose JSON holds it."""
    names = {k.upper(): k for k in os.environ if k.upper().startswith("IMAGERELAY_")}
    for i in range(len(loc), 0, -1):
        var = names.get("IMAGERELAY_" + "__".join(p.upper() for p in loc[:i]))
        if var is None:
            continue
        if i == len(loc):
            return var
        try:
            value = json.loads(os.environ[var])
        except ValueError:
            continue
        if _lookup(value, loc[i:]) is not None:
            return var
    return None


class _TomlLayers(TomlConfigSettingsSource):
    """The config files, shipped first then the user's, merged key by key."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        return read_toml(Path(file_path))


_FILES: ContextVar[tuple[Path, ...]] = ContextVar("imagerelay_config_files", default=())


def load_settings(env: str | None = None, **overrides: Any) -> Settings:
    """The settings of `env` (else `$IMAGERELAY_ENV`, else `development`), with CLI overrides."""
    env = env or os.environ.get("IMAGERELAY_ENV") or "development"
    if not env.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"environment name {env!r} is not a plain name: use {ENVIRONMENTS_HINT}")
    files = [p for p in _config_files(env) if p.is_file()]
    if env != "default" and not any(p.stem == env for p in files):
        raise ConfigError(f"no configuration for environment {env!r}: use {ENVIRONMENTS_HINT}")
    # Read each layer once up front: a broken file is reported by name, before anything else.
    layers = [(p, read_toml(p)) for p in files]
    token = _FILES.set(tuple(files))
    try:
        return Settings(env=env, **{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(_describe(exc, layers)) from exc
    except SettingsError as exc:  # a list or table in an IMAGERELAY_* variable that is not JSON
        raise ConfigError(_describe_unparsable_env()) from exc
    finally:
        _FILES.reset(token)


def _describe_unparsable_env() -> str:
    culprits = sorted(
        var
        for var, value in os.environ.items()
        if var.upper().startswith("IMAGERELAY_")
        and _wants_json(var[len("IMAGERELAY_") :].lower().split("__"))
        and not _is_json(value)
    )
    where = "environment variable " + " or ".join(culprits) if culprits else "an IMAGERELAY_* variable"
    return (
        f"{where}: a list or table must be written as JSON, "
        """e.g. IMAGERELAY_ROUTING__TEXT='["openai:gpt-image-2"]': fix the value"""
    )


def _wants_json(path: list[str]) -> bool:
    """Whether the setting at `path` (as an IMAGERELAY_* variable names it) is a list or a table."""
    ann: Any = Settings
    for part in path:
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            field = ann.model_fields.get(part)
            if field is None:
                return False
            ann = field.annotation
        elif get_origin(ann) is dict:
            ann = get_args(ann)[1]
        else:
            return False
    return get_origin(ann) in (list, dict) or (isinstance(ann, type) and issubclass(ann, BaseModel))


def _is_json(value: str) -> bool:
    try:
        json.loads(value)
    except ValueError:
        return False
    return True


def load_keys(key_envs: dict[str, str], dotenv_path: Path | None = None) -> dict[str, SecretStr]:
    """API keys by provider, from the environment or a `.env` file (environment wins)."""
    from dotenv import dotenv_values

    path = dotenv_path or Path.cwd() / ".env"
    dotenv = {k: v for k, v in dotenv_values(path).items() if v} if path.is_file() else {}
    keys: dict[str, SecretStr] = {}
    for provider, var in key_envs.items():
        value = os.environ.get(var) or dotenv.get(var)
        if value and value.strip():
            keys[provider] = SecretStr(value.strip())
    return keys
