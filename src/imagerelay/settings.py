"""Settings: CLI flag > environment (`IMAGERELAY_…`) > the user's files > the shipped files.

The shipped `config/default.toml` and `config/<env>.toml` are read first; the user's own
`imagerelay.toml` and `imagerelay.<env>.toml` (in `$IMAGERELAY_CONFIG_DIR`, `./config`, then the
working directory) are merged over them key by key. Misspelt keys, sections, providers and
`IMAGERELAY_*` variables are refused with a did-you-mean. API keys are *never* read from config
files: only from the variables the catalog names (`XAI_API_KEY`, …, `GEMINI_API_KEY` or
`GOOGLE_API_KEY`) or a `.env`.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
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

from . import envvars
from .errors import ConfigError
from .gateway.config import GatewaySettings
from .paths import provider_names, read_toml, shipped_dir, user_environments, user_settings_files

__all__ = [
    "BudgetSettings",
    "CommonProviderSettings",
    "ProviderSettings",
    "RetrySettings",
    "RoutingSettings",
    "Settings",
    "config_files",
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
    """The chat model that describes a reference for the `describe` fallback."""

    provider: str = "xai"
    model: str = "grok-4.6"
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
        # CLI flags (init) > IMAGERELAY_* variables > the user's files > the shipped files.
        # No dotenv source: `.env` is read for API keys only (see `load_keys`).
        return (
            init_settings,
            env_settings,
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


def _describe(
    exc: ValidationError, layers: list[tuple[Path, dict[str, Any]]], at: tuple[str, ...] = ()
) -> str:
    err = exc.errors()[0]
    loc = [*at, *(str(p) for p in err["loc"])]
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
                f"set {_key_variables()} in the environment or .env"
            )
        close = _close(loc[-1], _keys_at(loc[:-1], provider_names()) or ())
        if close is not None:
            return f"{where}: unknown setting {dotted!r}: did you mean {'.'.join([*loc[:-1], close])!r}?"
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
    names = {k.upper(): k for k in os.environ if k.upper().startswith(envvars.PREFIX)}
    for i in range(len(loc), 0, -1):
        var = names.get(envvars.PREFIX + "__".join(p.upper() for p in loc[:i]))
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
        return dict(_LAYERS.get())[Path(file_path)]


#: The files to merge, each already read (in merge order): set by `load_settings`.
_LAYERS: ContextVar[tuple[tuple[Path, dict[str, Any]], ...]] = ContextVar(
    "imagerelay_config_layers", default=()
)


def load_settings(env: str | None = None, **overrides: Any) -> Settings:
    """The settings of `env` (else `$IMAGERELAY_ENV`, else `development`), with CLI overrides."""
    env = env or os.environ.get(envvars.ENV) or "development"
    if not env.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"environment name {env!r} is not a plain name: use {ENVIRONMENTS_HINT}")
    _check_variables()
    files = config_files(env)
    if env != "default" and not any(p.stem in (env, f"imagerelay.{env}") for p in files):
        close = _close(env, _environments())
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
    _check_providers(settings, layers)
    return settings


def _build(env: str, layers: list[tuple[Path, dict[str, Any]]], overrides: dict[str, Any]) -> Settings:
    token = _LAYERS.set(tuple(layers))
    try:
        return Settings(env=env, **overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, layers)) from exc
    except SettingsError as exc:  # a list or table in an IMAGERELAY_* variable that is not JSON
        raise ConfigError(_describe_unparsable_env()) from exc
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


# -- what is a setting: derived from the models above, never listed by hand ---------------------

#: Tables keyed by provider name: a key there must be a provider of the catalog.
_PROVIDER_TABLES = {("providers",)}


def _keys_at(path: Iterable[str], providers: set[str]) -> list[str] | None:
    """The names valid directly under the table at `path` (`()`: the top level); None when `path`
    names no table. A table keyed by provider takes the catalog's providers; another free-form
    table takes any key (an empty list)."""
    ann: Any = Settings
    seen: list[str] = []
    for part in path:
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            field = ann.model_fields.get(part)
            if field is None:
                return None
            ann = field.annotation
        elif get_origin(ann) is dict:
            if tuple(seen) in _PROVIDER_TABLES:
                if part not in providers:
                    return None
                from .plugins import settings_model

                ann = settings_model(part)  # the provider's own knobs are settings there too
            else:
                ann = get_args(ann)[1]
        else:
            return None
        seen.append(part)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return list(ann.model_fields)
    if get_origin(ann) is dict:
        return sorted(providers) if tuple(seen) in _PROVIDER_TABLES else []
    return None


def _is_setting(path: list[str], providers: set[str]) -> bool:
    """Whether `path` names a setting or a table of them."""
    if not path or not all(path):
        return False
    under = _keys_at(path[:-1], providers)
    if under is None:
        return False
    return path[-1] in under or (under == [] and tuple(path[:-1]) not in _PROVIDER_TABLES)


def _setting_paths(providers: set[str], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every setting and table of settings, as paths (providers' tables once per provider)."""
    for key in _keys_at(path, providers) or ():
        yield (*path, key)
        yield from _setting_paths(providers, (*path, key))


def _close(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The choice `word` most likely misspells: the same but for `_` and case, else a near one."""
    options = list(choices)
    squashed = {c.replace("_", "").lower(): c for c in options}
    exact = squashed.get(word.replace("_", "").lower())
    if exact is not None:
        return exact
    near = difflib.get_close_matches(word, options, n=1, cutoff=cutoff)
    return near[0] if near else None


def _check_variables() -> None:
    """Refuse every `IMAGERELAY_*` variable that is neither a setting nor one of `NOT_SETTINGS`."""
    providers = provider_names()
    unknown = sorted(
        var
        for var in os.environ
        if var.upper().startswith(envvars.PREFIX)
        and var.upper() not in envvars.NOT_SETTINGS
        and not _is_setting(var[len(envvars.PREFIX) :].lower().split("__"), providers)
    )
    if not unknown:
        return
    problems = []
    for var in unknown:
        close = _suggest(var[len(envvars.PREFIX) :].lower().split("__"), providers)
        problems.append(
            f"environment variable {var} names no setting: "
            + (f"did you mean {envvars.PREFIX}{close}?" if close else "unset it or check its spelling")
        )
    hint = (
        ""
        if all("did you mean" in p for p in problems)
        else " (a setting is IMAGERELAY_<SECTION>__<KEY>, e.g. IMAGERELAY_RETRY__ATTEMPTS: "
        "see `imagerelay config show`)"
    )
    raise ConfigError("; ".join(problems) + hint)


def _suggest(path: list[str], providers: set[str]) -> str | None:
    """The variable (without its prefix) that `path` most likely misspells: looked for under the
    deepest table `path` does name (`PROVIDERS__XIA__…` among the providers' settings), and only
    then among every variable there is, more strictly (they all look alike at the top)."""
    for depth in range(len(path) - 1, -1, -1):
        table = tuple(path[:depth])
        if depth and not _keys_at(table, providers):
            continue
        paths = [p[depth:] for p in _setting_paths(providers, table)]
        if not depth:
            paths += [(v[len(envvars.PREFIX) :].lower(),) for v in sorted(envvars.NOT_SETTINGS)]
        close = _close(
            "__".join(path[depth:]).upper(),
            ["__".join(p).upper() for p in paths],
            cutoff=0.6 if depth else 0.75,
        )
        if close is not None:
            return "__".join([*(t.upper() for t in table), close])
        if depth:  # the table was right: a guess from elsewhere would only mislead
            return None
    return None


def _check_providers(settings: Settings, layers: list[tuple[Path, dict[str, Any]]]) -> None:
    """A `[providers.NAME]` table must name a provider of the catalog (a typo would be ignored),
    and hold only settings that provider's own model knows (checked and typed by it here)."""
    from .plugins import settings_model

    providers = provider_names()
    for name, table in list(settings.providers.items()):
        if name in providers:
            model = settings_model(name)
            try:
                settings.providers[name] = model.model_validate(table.model_dump(exclude_unset=True))
            except ValidationError as exc:
                raise ConfigError(_describe(exc, layers, ("providers", name))) from exc
            continue
        where = next(
            (str(path) for path, data in reversed(layers) if _lookup(data, ["providers", name]) is not None),
            "the settings",
        )
        close = _close(name, providers)
        hint = f"did you mean {close!r}?" if close else f"use one of {', '.join(sorted(providers))}"
        raise ConfigError(f"{where}: unknown provider {name!r} in [providers.{name}]: {hint}")


def _key_variables() -> str:
    """The variables API keys are read from, as a list in words (from the catalog)."""
    try:
        from .catalog import load_catalog

        names = [p.key_env for p in load_catalog().providers.values()]
    except ConfigError:
        names = []
    return (
        (", ".join(names[:-1]) + " or " + names[-1])
        if len(names) > 1
        else (names or ["each provider's key variable"])[0]
    )


def _describe_unparsable_env() -> str:
    culprits = sorted(
        var
        for var, value in os.environ.items()
        if var.upper().startswith(envvars.PREFIX)
        and _wants_json(var[len(envvars.PREFIX) :].lower().split("__"))
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


def load_keys(
    key_envs: Mapping[str, str | Sequence[str]], dotenv_path: Path | None = None
) -> dict[str, SecretStr]:
    """API keys by provider, from the environment or a `.env` file (environment wins).

    A provider may name several variables (`catalog.key_envs()`): the first one set is used.
    """
    from dotenv import dotenv_values

    path = dotenv_path or Path.cwd() / ".env"
    dotenv = {k: v for k, v in dotenv_values(path).items() if v} if path.is_file() else {}
    keys: dict[str, SecretStr] = {}
    for provider, names in key_envs.items():
        for var in [names] if isinstance(names, str) else names:
            value = os.environ.get(var) or dotenv.get(var)
            if value and value.strip():
                keys[provider] = SecretStr(value.strip())
                break
    return keys
