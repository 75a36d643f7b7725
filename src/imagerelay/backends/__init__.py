"""Backends: one module per provider wire API, registered by name.

The built-in backends register themselves the same way a third-party one would: a loader
callable that imports the module only when the backend is first used (so `import imagerelay`
stays light and loads no SDK).
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from .base import Backend

__all__ = ["backend_class", "register", "registered"]

_LOADERS: dict[str, Callable[[], type[Backend]]] = {}


def register(name: str, loader: Callable[[], type[Backend]]) -> None:
    """Make backend `name` available; `loader` returns the class and is called on first use."""
    _LOADERS[name] = loader


def registered() -> list[str]:
    return list(_LOADERS)


def backend_class(name: str) -> type[Backend]:
    """The backend class registered as `name` (a provider TOML's `backend = …`)."""
    try:
        loader = _LOADERS[name]
    except KeyError:
        known = ", ".join(_LOADERS)
        raise ConfigError(f"no backend named {name!r}: the catalog must use one of {known}") from None
    return loader()


def _builtin(module: str, cls: str) -> Callable[[], type[Backend]]:
    def load() -> type[Backend]:
        backend: type[Backend] = getattr(import_module(f"{__name__}.{module}"), cls)
        return backend

    return load


register("xai", _builtin("xai", "XAIBackend"))
register("openai", _builtin("openai", "OpenAIBackend"))
register("replicate", _builtin("replicate", "ReplicateBackend"))
register("gemini", _builtin("gemini", "GeminiBackend"))
