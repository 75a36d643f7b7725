"""Providers as plugins: one registered `Provider` brings its catalog data, its backend, its
settings model and, optionally, its emulator dialect and its `catalog check`.

Providers are discovered through the entry-point group `imagerelay.providers`; the built-ins are
registered there too, from imagerelay's own `pyproject.toml` — the same way a third-party package
registers one. A `Provider` is plain data (import paths as strings): reading the registry imports
no SDK, and nothing is scanned before a catalog or settings are built (never for `--help`).

A provider that reuses another's wire API needs no plugin at all: a `providers/NAME.toml` in the
user's config directory with `backend = "openai"` is served by the registered `openai` provider's
backend, settings model and emulator dialect, under its own name.

`IMAGERELAY_LOAD_PLUGINS` (comma-separated names; empty for none) limits which third-party
providers are loaded; the built-ins always are.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import import_module
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import envvars
from .errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from .backends.base import Backend
    from .catalog_check.drift import Asking
    from .emulator.wire import Dialect
    from .settings import ProviderSettings

__all__ = [
    "GROUP",
    "Provider",
    "builtin",
    "builtin_names",
    "provider",
    "register_provider",
    "registry",
    "settings_model",
]

#: The entry-point group providers are registered in.
GROUP = "imagerelay.providers"
#: The distribution whose entry points are the built-in providers.
_SELF = "imagerelay"


@dataclass(frozen=True)
class Provider:
    """One provider, as a plugin registers it.

    `backend`, `settings` and `dialect` are import paths (`"package.module:Name"`), loaded only
    when first needed. `name` is also the wire-API name other catalog entries may reuse with
    `backend = "<name>"`.
    """

    #: The provider's name in the catalog, the CLI and receipts (its TOML's stem by convention).
    name: str
    #: A `Backend` subclass that speaks this wire API.
    backend: str
    #: The catalog file (TOML: base_url, key variables, models, prices); None for a backend only.
    catalog: Path | Traversable | None = None
    #: A `ProviderSettings` subclass (`extra="forbid"`) for the knobs only this backend has.
    settings: str | None = None
    #: An emulator `Dialect` (its routes included), for `--env sandbox` and the tests.
    dialect: str | None = None
    #: Where the provider sorts in the catalog (lower first; ties by name).
    order: int = 100
    #: `imagerelay catalog check` for this wire API: an `async (Asking) -> None` that asks the
    #: provider what it serves and records each drift (None: the provider publishes no listing).
    catalog_check: str | None = None

    def backend_class(self) -> type[Backend]:
        cls: type[Backend] = _load(self.backend, self.name, "backend")
        return cls

    def settings_model(self) -> type[ProviderSettings]:
        if self.settings is None:
            from .settings import CommonProviderSettings

            return CommonProviderSettings
        model: type[ProviderSettings] = _load(self.settings, self.name, "settings")
        return model

    def emulator_dialect(self) -> Dialect | None:
        if self.dialect is None:
            return None
        dialect: Dialect = _load(self.dialect, self.name, "dialect")
        return dialect

    def catalog_checker(self) -> Callable[[Asking], Awaitable[None]] | None:
        if self.catalog_check is None:
            return None
        checker: Callable[[Asking], Awaitable[None]] = _load(self.catalog_check, self.name, "catalog check")
        return checker


def builtin(
    name: str, backend: str, *, order: int, settings: str | None = None, catalog_check: str | None = None
) -> Provider:
    """One of imagerelay's own providers, where they are by convention: its backend class `backend`
    in `imagerelay.backends.<name>`, its catalog `providers/<name>.toml`, its dialect
    `imagerelay.emulator.<name>:DIALECT`."""
    from .paths import shipped_dir

    return Provider(
        name=name,
        backend=f"imagerelay.backends.{name}:{backend}",
        catalog=shipped_dir("providers") / f"{name}.toml",
        settings=settings,
        dialect=f"imagerelay.emulator.{name}:DIALECT",
        order=order,
        catalog_check=catalog_check,
    )


_REGISTERED: dict[str, Provider] = {}
_SCANNED: dict[str, dict[str, Provider]] = {}


def register_provider(provider: Provider) -> None:
    """Make `provider` available (in addition to those found through entry points), e.g. from a
    script or a test. A later registration of the same name replaces the earlier one."""
    if not isinstance(provider, Provider):
        raise TypeError(f"register_provider takes an imagerelay.Provider, not {type(provider).__name__}")
    _REGISTERED[provider.name] = provider
    _SCANNED.clear()


def registry() -> dict[str, Provider]:
    """Every provider: entry points (built-ins first) and registered ones, in catalog order."""
    wanted = os.environ.get(envvars.LOAD_PLUGINS)
    key = "\0" if wanted is None else wanted
    if key not in _SCANNED:
        found = _entry_points(None if wanted is None else {w.strip() for w in wanted.split(",") if w.strip()})
        if not found:
            raise ConfigError(
                f"no provider is registered in the entry-point group {GROUP}: imagerelay's installation "
                "is incomplete or stale: reinstall it (pip install -e . in a checkout)"
            )
        found.update(_REGISTERED)
        _SCANNED[key] = dict(sorted(found.items(), key=lambda kv: (kv[1].order, kv[0])))
    return _SCANNED[key]


def builtin_names() -> list[str]:
    """The providers imagerelay itself registers, in catalog order."""
    from importlib.metadata import entry_points

    own = {ep.name for ep in entry_points(group=GROUP) if ep.dist is not None and ep.dist.name == _SELF}
    return [name for name in registry() if name in own]


def provider(name: str) -> Provider:
    """The registered provider (or wire API) `name`."""
    try:
        return registry()[name]
    except KeyError:
        known = ", ".join(registry()) or "none"
        raise ConfigError(f"no provider backend named {name!r}: use one of {known}") from None


def settings_model(name: str) -> type[ProviderSettings]:
    """The settings model of provider `name`: its own, or that of the backend a provider declared
    as data reuses (read from its TOML without building the catalog)."""
    from .paths import read_toml, user_providers_dirs

    plugins = registry()
    if name in plugins:
        return plugins[name].settings_model()
    for d in reversed(user_providers_dirs()):
        path = d / f"{name}.toml"
        backend = read_toml(path).get("backend") if path.is_file() else None
        if isinstance(backend, str) and backend in plugins:
            return plugins[backend].settings_model()
    from .settings import CommonProviderSettings

    return CommonProviderSettings


def _entry_points(wanted: set[str] | None) -> dict[str, Provider]:
    from importlib.metadata import entry_points

    found: dict[str, Provider] = {}
    for ep in entry_points(group=GROUP):
        builtin = ep.dist is not None and ep.dist.name == _SELF
        if not builtin and wanted is not None and ep.name not in wanted:
            continue
        where = f"provider plugin {ep.name!r} ({ep.value}"
        where += f", from {ep.dist.name})" if ep.dist is not None else ")"
        try:
            value = ep.load()
        except Exception as exc:  # a broken third-party package must say which one it is
            raise ConfigError(
                f"{where} cannot be loaded ({type(exc).__name__}: {exc}): reinstall or uninstall it"
            ) from exc
        if callable(value) and not isinstance(value, Provider):
            value = value()
        if not isinstance(value, Provider):
            raise ConfigError(f"{where} is not an imagerelay.Provider: fix or uninstall it")
        found[value.name] = value
    return found


def _load(path: str, name: str, what: str) -> Any:
    module, _, attr = path.partition(":")
    try:
        return getattr(import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(
            f"provider {name!r}: its {what} {path!r} cannot be loaded ({type(exc).__name__}: {exc}): "
            "reinstall the package that provides it"
        ) from exc
