"""What is a setting, and how a refused one is told: one plain line naming where it came from.

Which names are settings is derived from the models in `settings`, never listed by hand; a
misspelt key, section, provider or `IMAGERELAY_*` variable gets a did-you-mean.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from . import envvars
from .errors import ConfigError
from .paths import provider_names
from .validation import plain

if TYPE_CHECKING:
    from .settings import Settings


def describe(
    exc: ValidationError, layers: list[tuple[Path, dict[str, Any]]], at: tuple[str, ...] = ()
) -> str:
    errors = exc.errors()
    # A misspelt required field is two errors, "unknown `model`" and "`models` missing": the first
    # is the one with the fix in it.
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = [*at, *(str(p) for p in err["loc"])]
    dotted = ".".join(loc)
    where = "the settings"
    var = _env_culprit(loc)
    if var is not None:  # the environment (and .env) overrides every file, so it is the culprit
        where = var
    else:
        # A missing field is not in any file: the table that lacks it is.
        held = loc[:-1] if err["type"] == "missing" else loc
        for path, data in reversed(layers):
            if _lookup(data, held) is not None:
                where = str(path)
                break
    if err["type"] == "extra_forbidden":
        if loc[-1].lower() in {"api_key", "key", "token", "api_token"}:
            return (
                f"{where}: API keys are never read from config files ({dotted}): "
                f"set {_key_variables()} in the environment or .env"
            )
        close = close_match(loc[-1], _keys_at(loc[:-1], provider_names()) or ())
        if close is not None:
            return f"{where}: unknown setting {dotted!r}: did you mean {'.'.join([*loc[:-1], close])!r}?"
        return f"{where}: unknown setting {dotted!r}: remove it or check its spelling"
    if err["type"] == "http_url":  # "providers.xai.base_url 'not a url' is not an http(s) URL"
        return f"{dotted} {err['msg']}: fix {where}"
    return f"{where}: {dotted}: {plain(err)}: fix the value"


def source_of(env: str, loc: list[str]) -> str:
    """Where the setting at `loc` was given: its IMAGERELAY_* variable, else the last config file
    of `env` that holds it (a check made after loading names the file as loading would)."""
    from .paths import read_toml
    from .settings import config_files

    var = _env_culprit(loc)
    if var is not None:
        return var
    for path in reversed(config_files(env)):
        if _lookup(read_toml(path), loc) is not None:
            return str(path)
    return "the settings"


def dotenv_path() -> Path:
    """The `.env` read for keys and `IMAGERELAY_*` variables: the working directory's."""
    return Path.cwd() / ".env"


def variables() -> dict[str, tuple[str, str]]:
    """Every `IMAGERELAY_*` variable → (its value, where it was set): the environment's, and
    those of `./.env` the environment does not set (the environment wins, as it does for keys)."""
    found: dict[str, tuple[str, str]] = {}
    path = dotenv_path()
    if path.is_file():
        from dotenv import dotenv_values

        for var, value in dotenv_values(path).items():
            if var.upper().startswith(envvars.PREFIX) and value is not None:
                found[var] = (value, f"{var} in {path}")
    for var, value in os.environ.items():
        if var.upper().startswith(envvars.PREFIX):
            found[var] = (value, f"environment variable {var}")
    return found


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
    found = variables()
    names = {k.upper(): k for k in found}
    for i in range(len(loc), 0, -1):
        var = names.get(envvars.PREFIX + "__".join(p.upper() for p in loc[:i]))
        if var is None:
            continue
        if i == len(loc):
            return found[var][1]
        try:
            value = json.loads(found[var][0])
        except ValueError:
            continue
        if _lookup(value, loc[i:]) is not None:
            return found[var][1]
    return None


# -- what is a setting: derived from the models above, never listed by hand ---------------------

#: Tables keyed by provider name: a key there must be a provider of the catalog.
_PROVIDER_TABLES = {("providers",)}


def _annotation_at(path: Iterable[str], providers: set[str] | None) -> Any:
    """The type of the setting at `path` (`()`: `Settings`), or None when `path` names none. Under a
    table keyed by provider, a key must be one of `providers` (None: any) and is typed by that
    provider's own settings model (its own knobs are settings there too)."""
    from .settings import Settings

    ann: Any = Settings
    seen: list[str] = []
    for part in path:
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            field = ann.model_fields.get(part)
            if field is None:
                return None
            ann = field.annotation
        elif get_origin(ann) is dict:
            if providers is not None and tuple(seen) in _PROVIDER_TABLES:
                if part not in providers:
                    return None
                from .plugins import settings_model

                ann = settings_model(part)
            else:
                ann = get_args(ann)[1]
        else:
            return None
        seen.append(part)
    return ann


def _keys_at(path: Iterable[str], providers: set[str]) -> list[str] | None:
    """The names valid directly under the table at `path` (`()`: the top level); None when `path`
    names no table. A table keyed by provider takes the catalog's providers; another free-form
    table takes any key (an empty list)."""
    path = tuple(path)
    ann = _annotation_at(path, providers)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return list(ann.model_fields)
    if get_origin(ann) is dict:
        return sorted(providers) if path in _PROVIDER_TABLES else []
    return None


def _is_setting(path: list[str], providers: set[str]) -> bool:
    """Whether `path` names a setting or a table of them."""
    if not path or not all(path):
        return False
    under = _keys_at(path[:-1], providers)
    if under is None:
        return False
    return path[-1] in under or (under == [] and tuple(path[:-1]) not in _PROVIDER_TABLES)


def setting_paths(providers: set[str], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every setting and table of settings, as paths (providers' tables once per provider)."""
    for key in _keys_at(path, providers) or ():
        yield (*path, key)
        yield from setting_paths(providers, (*path, key))


def close_match(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The choice `word` most likely misspells: the same but for `_` and case, else a near one."""
    options = list(choices)
    squashed = {c.replace("_", "").lower(): c for c in options}
    exact = squashed.get(word.replace("_", "").lower())
    if exact is not None:
        return exact
    near = difflib.get_close_matches(word, options, n=1, cutoff=cutoff)
    return near[0] if near else None


def check_variables() -> None:
    """Refuse every `IMAGERELAY_*` variable that is neither a setting nor one of `NOT_SETTINGS`."""
    providers = provider_names()
    found = variables()
    unknown = sorted(
        var
        for var in found
        if var.upper() not in envvars.NOT_SETTINGS
        and not _is_setting(var[len(envvars.PREFIX) :].lower().split("__"), providers)
    )
    # The switches that are not settings act from the environment only (they are read before,
    # or apart from, the settings): in .env they would do nothing.
    aside = sorted(
        var
        for var, (_, where) in found.items()
        if var.upper() in envvars.NOT_SETTINGS - {envvars.ENV} and not where.startswith("environment")
    )
    if aside:
        var = aside[0]
        raise ConfigError(f"{found[var][1]} is not read from .env: export {var} in the environment instead")
    if not unknown:
        return
    problems = []
    for var in unknown:
        path = var[len(envvars.PREFIX) :].lower().split("__")
        key = _key_variable(path, providers)
        if key is not None:
            problems.append(
                f"{found[var][1]} names no setting: API keys are read from {key} (in the environment "
                f"or .env), never from an {envvars.PREFIX}* variable: rename it to {key}"
            )
            continue
        close = _suggest(path, providers)
        problems.append(
            f"{found[var][1]} names no setting: "
            + (f"did you mean {envvars.PREFIX}{close}?" if close else "unset it or check its spelling")
        )
    hint = (
        ""
        if all("did you mean" in p or "rename it to" in p for p in problems)
        else " (a setting is IMAGERELAY_<SECTION>__<KEY>, e.g. IMAGERELAY_RETRY__ATTEMPTS: "
        "see `imagerelay config show`)"
    )
    raise ConfigError("; ".join(problems) + hint)


def _key_variable(path: list[str], providers: set[str]) -> str | None:
    """For a variable that looks like an API key (`PROVIDERS__XAI__API_KEY`, `XAI_API_KEY`): the
    variable that key is read from, or None when it does not look like one."""
    words = [w for part in path for w in part.split("_") if w]
    if not words or words[-1] not in {"key", "token"}:
        return None
    named = [p for p in sorted(providers) if p in words]
    try:
        from .catalog import load_catalog

        catalog = load_catalog()
    except ConfigError:
        return None
    if named and named[0] in catalog.providers:
        return catalog.providers[named[0]].key_env
    return _key_variables()


def _suggest(path: list[str], providers: set[str]) -> str | None:
    """The variable (without its prefix) that `path` most likely misspells: looked for under the
    deepest table `path` does name (`PROVIDERS__XIA__…` among the providers' settings), and only
    then among every variable there is, more strictly (they all look alike at the top)."""
    for depth in range(len(path) - 1, -1, -1):
        table = tuple(path[:depth])
        if depth and not _keys_at(table, providers):
            continue
        paths = [p[depth:] for p in setting_paths(providers, table)]
        if not depth:
            paths += [(v[len(envvars.PREFIX) :].lower(),) for v in sorted(envvars.NOT_SETTINGS)]
        close = close_match(
            "__".join(path[depth:]).upper(),
            ["__".join(p).upper() for p in paths],
            cutoff=0.6 if depth else 0.75,
        )
        if close is not None:
            return "__".join([*(t.upper() for t in table), close])
        if depth:  # the table was right: a guess from elsewhere would only mislead
            return None
    return None


def check_providers(settings: Settings, layers: list[tuple[Path, dict[str, Any]]]) -> None:
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
                raise ConfigError(describe(exc, layers, ("providers", name))) from exc
            continue
        where = next(
            (str(path) for path, data in reversed(layers) if _lookup(data, ["providers", name]) is not None),
            "the settings",
        )
        close = close_match(name, providers)
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


def describe_unparsable_env() -> str:
    culprits = sorted(
        where
        for var, (value, where) in variables().items()
        if _wants_json(var[len(envvars.PREFIX) :].lower().split("__")) and not _is_json(value)
    )
    where = " or ".join(culprits) if culprits else "an IMAGERELAY_* variable"
    return (
        f"{where}: a list or table must be written as JSON, "
        """e.g. IMAGERELAY_ROUTING__TEXT='["openai:gpt-image-2"]': fix the value"""
    )


def _wants_json(path: list[str]) -> bool:
    """Whether the setting at `path` (as an IMAGERELAY_* variable names it) is a list or a table."""
    ann = _annotation_at(path, None)
    return get_origin(ann) in (list, dict) or (isinstance(ann, type) and issubclass(ann, BaseModel))


def _is_json(value: str) -> bool:
    try:
        json.loads(value)
    except ValueError:
        return False
    return True
