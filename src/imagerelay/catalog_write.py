"""`catalog check --write`: the provider's figures as an override file, never the shipped catalog.

The file is `providers/<provider>.toml` in the user's own config directory — the layering the
catalog already reads (`$IMAGERELAY_CONFIG_DIR/providers/`, or `./config/providers/` when
`./config/` holds imagerelay's files) — merged into what is there, key by key, so a user's own
overrides stay. Every model the provider answered about records `checked` and `source`.
"""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path
from typing import Any

from .catalog_check import ProviderCheck
from .errors import ConfigError
from .paths import USER_FILE, deep_merge, env_config_dir, read_toml
from .store import atomic_write

__all__ = ["dump_toml", "override_dir", "write_overrides"]


def override_dir() -> Path:
    """Where overrides are written: a directory the catalog reads, or a ConfigError naming the fix."""
    own = env_config_dir()
    if own is not None:
        return own / "providers"
    local = Path.cwd() / "config"
    if (local / f"{USER_FILE}.toml").is_file() or any(local.glob(f"{USER_FILE}.*.toml")):
        return local / "providers"
    raise ConfigError(
        "--write needs your config directory: set IMAGERELAY_CONFIG_DIR to one, or create "
        f"./config/{USER_FILE}.toml (overrides then go in ./config/providers/)"
    )


def write_overrides(checks: list[ProviderCheck], today: date) -> list[Path]:
    """Write each checked provider's figures; returns the files written."""
    target = override_dir()
    written: list[Path] = []
    for check in checks:
        if not check.asked:
            continue
        models: dict[str, dict[str, Any]] = {}
        for ref in check.checked:
            models.setdefault(ref.partition(":")[2], {})
        for drift in check.drifts:
            if drift.fix is not None:
                models.setdefault(drift.model.partition(":")[2], {}).update(drift.fix)
        if not models:
            continue
        for table in models.values():
            table.update({"checked": today, "source": f"{check.url} (imagerelay catalog check)"})
        path = target / f"{check.provider}.toml"
        existing = read_toml(path) if path.is_file() else {}
        merged = deep_merge(existing, {"models": models})
        target.mkdir(parents=True, exist_ok=True)
        atomic_write(path, dump_toml(merged).encode())
        written.append(path)
    return written


def dump_toml(data: dict[str, Any]) -> str:
    """TOML for a catalog override: top-level keys, then one `[models."id"]` table per model
    (nested tables inline), in the order given."""
    lines = ["# Written by `imagerelay catalog check --write`; edit freely, it is merged key by key."]
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    for key, value in data.items():
        if key not in tables:
            lines.append(f"{_key(key)} = {_value(value)}")
    for name, table in tables.items():
        nested = all(isinstance(v, dict) for v in table.values()) and table
        if name == "models" or nested:
            for sub, inner in table.items():
                lines.append("")
                lines.append(f"[{_key(name)}.{_key(sub)}]")
                lines.extend(f"{_key(k)} = {_value(v)}" for k, v in inner.items())
        else:
            lines.append("")
            lines.append(f"[{_key(name)}]")
            lines.extend(f"{_key(k)} = {_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value} in TOML")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} in TOML")
