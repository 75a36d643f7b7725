"""Where the shipped data lives, where the user's overrides live, and how they merge."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from . import envvars
from .errors import ConfigError

__all__ = [
    "deep_merge",
    "env_config_dir",
    "provider_names",
    "read_toml",
    "shipped_dir",
    "user_config_dirs",
    "user_environments",
    "user_providers_dirs",
    "user_settings_files",
]

#: The user's own settings files are `imagerelay.toml` and `imagerelay.<env>.toml`.
USER_FILE = "imagerelay"

_PKG = Path(__file__).resolve().parent


def shipped_dir(kind: str) -> Path:
    """`providers` or `config` as shipped: inside the wheel, or at the top of a source checkout."""
    packaged = _PKG / "_data" / kind
    if packaged.is_dir():
        return packaged
    return _PKG.parents[1] / kind  # editable install: src/imagerelay → repository root


def env_config_dir() -> Path | None:
    """The directory `$IMAGERELAY_CONFIG_DIR` names, or None when it is not set.

    A variable naming no directory is a ConfigError: a typo must not silently mean "no overrides".
    """
    value = os.environ.get(envvars.CONFIG_DIR)
    if not value:
        return None
    path = Path(value).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"{envvars.CONFIG_DIR} is '{value}', which is not a directory: create it or fix the variable"
        )
    return path


def user_config_dirs() -> list[Path]:
    """Where the user's own `imagerelay.toml` / `imagerelay.<env>.toml` are looked for, lowest
    precedence first: `$IMAGERELAY_CONFIG_DIR`, `./config`, the working directory.

    Only files named `imagerelay*.toml` are read there, so another program's `./config/default.toml`
    is none of imagerelay's business.
    """
    dirs: list[Path] = []
    for d in (env_config_dir(), Path.cwd() / "config", Path.cwd()):
        if d is not None and d.is_dir() and all(d.resolve() != seen.resolve() for seen in dirs):
            dirs.append(d)
    return dirs


def _holds_user_files(directory: Path) -> bool:
    return (directory / f"{USER_FILE}.toml").is_file() or any(directory.glob(f"{USER_FILE}.*.toml"))


def user_settings_files(env: str) -> list[Path]:
    """The user's own settings files of `env` that exist, lowest precedence first: in each of
    `user_config_dirs()`, `imagerelay.toml` then `imagerelay.<env>.toml`."""
    own = env_config_dir()
    if own is not None and own.resolve() != shipped_dir("config").resolve():
        # The one directory that is imagerelay's by name: a settings file there under the shipped
        # names would otherwise be ignored without a word (and a budget cap in it with it).
        for old, new in (("default.toml", f"{USER_FILE}.toml"), (f"{env}.toml", f"{USER_FILE}.{env}.toml")):
            if (own / old).is_file():
                raise ConfigError(
                    f"{own / old}: imagerelay reads only files named {USER_FILE}.toml and "
                    f"{USER_FILE}.<env>.toml: rename it to {new}"
                )
    files: list[Path] = []
    for d in user_config_dirs():
        _refuse_misnamed(d, env)
        names = [f"{USER_FILE}.toml"] + ([f"{USER_FILE}.{env}.toml"] if env != "default" else [])
        files.extend(d / name for name in names if (d / name).is_file())
    return files


#: Copies kept aside on purpose: never mistaken for a misnamed settings file.
_ASIDE = ("~", ".bak", ".orig", ".old", ".example", ".sample", ".dist")


def _refuse_misnamed(directory: Path, env: str) -> None:
    """A file in `directory` that looks meant for imagerelay but would not be read is refused with
    the name to give it: a budget cap in `imagerelay.developement.toml`, `imagerelay.tml` or
    `imagerelay.toml.txt` would otherwise be ignored without a word."""
    # Near-misses of the shipped environments only: a user's own `imagerelay.staging.toml` must
    # not be taken for a typo of the environment asked for (`--env stagin` is the typo there).
    known = sorted(p.stem for p in shipped_dir("config").glob("*.toml"))
    for path in directory.iterdir():
        name, lowered = path.name, path.name.lower()
        if not lowered.startswith(USER_FILE) or name == f"{USER_FILE}.toml" or lowered.endswith(_ASIDE):
            continue
        if "toml" not in lowered and not re.search(r"\.tml\b", lowered):
            continue  # a ledger, a manifest, a log: not a settings file
        middle = name[len(USER_FILE) + 1 : -len(".toml")] if name.endswith(".toml") else ""
        if name.startswith(f"{USER_FILE}.") and middle and "." not in middle:
            if middle in known or middle == env:
                continue
            near = _near_env(middle, known)
            if near is None:
                continue  # the user's own environment (`imagerelay.staging.toml`), read with --env
            fix = f"{USER_FILE}.{near}.toml"
        else:  # imagerelay.tml, imagerelay.toml.txt, imagerelay-config.toml, Imagerelay.toml …
            envs = [e for e in known if e != "default" and e in lowered]
            fix = f"{USER_FILE}.{envs[0]}.toml" if envs else f"{USER_FILE}.toml"
        if not path.is_file():
            continue
        raise ConfigError(
            f"{path}: imagerelay reads only {USER_FILE}.toml and {USER_FILE}.<env>.toml, so this file "
            f"would be ignored: rename it to {fix}"
        )


def _near_env(word: str, known: list[str]) -> str | None:
    """The known environment `word` misspells (another case, a letter or two off), or None."""
    import difflib

    near = difflib.get_close_matches(word.lower(), known, n=1, cutoff=0.8)
    return near[0] if near and near[0] != word else None


def user_environments() -> set[str]:
    """The environments the user's own files define (`imagerelay.<env>.toml`)."""
    return {
        p.name[len(USER_FILE) + 1 : -len(".toml")]
        for d in user_config_dirs()
        for p in d.glob(f"{USER_FILE}.*.toml")
    }


def user_providers_dirs() -> list[Path]:
    """The user's catalog overrides: `providers/` in `$IMAGERELAY_CONFIG_DIR`, and in `./config`
    when it holds imagerelay's own files (so another program's `./config/providers/` is ignored)."""
    dirs: list[Path] = []
    own = env_config_dir()
    if own is not None:
        dirs.append(own / "providers")
    local = Path.cwd() / "config"
    if _holds_user_files(local) and (own is None or own.resolve() != local.resolve()):
        dirs.append(local / "providers")
    shipped = shipped_dir("providers").resolve()
    return [d for d in dirs if d.is_dir() and d.resolve() != shipped]


def provider_names() -> set[str]:
    """Every provider the catalog has, without parsing it: the registered ones, and those the
    user declares as data (`providers/<name>.toml`)."""
    from .plugins import registry

    return set(registry()) | {p.stem for d in user_providers_dirs() for p in d.glob("*.toml")}


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """A new dict: `over` merged into `base` key by key; nested tables merge, other values replace."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; a broken or unreadable file is a ConfigError naming it."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}): fix the file") from exc
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        raise ConfigError(
            f"{path} is not UTF-8 text (byte 0x{byte:02x} at {exc.start}): save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read ({exc.strerror}): check its permissions") from exc
