"""The `IMAGERELAY_*` variables imagerelay reads that are not settings: the one list of them.

Every other `IMAGERELAY_*` variable must name a setting (`IMAGERELAY_RETRY__ATTEMPTS`, …); one that
names none is refused, so a misspelt budget cap is never silently ignored. A new switch that is
not a setting is added here, or it will be refused as unknown.
"""

from __future__ import annotations

__all__ = ["CONFIG_DIR", "DEBUG", "ENV", "LOAD_PLUGINS", "NOT_SETTINGS", "PREFIX"]

PREFIX = "IMAGERELAY_"
#: The environment to use (the `--env` option wins over it).
ENV = "IMAGERELAY_ENV"
#: A directory of the user's own imagerelay files (`imagerelay.toml`, `providers/`).
CONFIG_DIR = "IMAGERELAY_CONFIG_DIR"
#: Set (to anything) to see the traceback of an unexpected error instead of one line.
DEBUG = "IMAGERELAY_DEBUG"
#: Which third-party provider plugins to load, comma-separated ("" for none); unset: all of them.
LOAD_PLUGINS = "IMAGERELAY_LOAD_PLUGINS"

NOT_SETTINGS: frozenset[str] = frozenset({ENV, CONFIG_DIR, DEBUG, LOAD_PLUGINS})
