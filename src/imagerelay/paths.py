"""Where the shipped data lives, where the user's overrides live, and how they merge."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["deep_merge", "shipped_dir", "user_config_dir"]

_PKG = Path(__file__).resolve().parent


def shipped_dir(kind: str) -> Path:
    """`providers` or `config` as shipped: inside the wheel, or at the top of a source checkout."""
    packaged = _PKG / "_data" / kind
    if packaged.is_dir():
        return packaged
    return _PKG.parents[1] / kind  # editable install: src/imagerelay → repository root


def user_config_dir() -> Path | None:
    """The user's own config directory: `$IMAGERELAY_CONFIG_DIR`, else `./config` when present."""
    env = os.environ.get("IMAGERELAY_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
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
