"""Where the shipped data lives, where the user's overrides live, and how they merge."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["deep_merge", "read_toml", "shipped_dir", "user_config_dir"]

_PKG = Path(__file__).resolve().parent


def shipped_dir(kind: str) -> Path:
    """`providers` or `config` as shipped: inside the wheel, or at the top of a source checkout."""
    packaged = _PKG / "_data" / kind
    if packaged.is_dir():
        return packaged
    return _PKG.parents[1] / kind  # editable install: src/imagerelay → repository root


def user_config_dir() -> Path | None:
    """The user's own config directory: `$IMAGERELAY_CONFIG_DIR`, else `./config` when present.

    A variable naming no directory is a ConfigError: a typo must not silently mean "no overrides".
    """
    env = os.environ.get("IMAGERELAY_CONFIG_DIR")
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise ConfigError(
                f"IMAGERELAY_CONFIG_DIR is '{env}', which is not a directory: create it or fix the variable"
            )
        return path
    local = Path.cwd() / "config"
    if local.is_dir() and local.resolve() != shipped_dir("config").resolve():
        return local
    return None


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
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read ({exc.strerror}): check its permissions") from exc
