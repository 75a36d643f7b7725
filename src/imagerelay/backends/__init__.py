"""Backends: one module per wire API. Which backend serves which provider is the registry's
(`imagerelay.plugins`): a provider names its backend class, loaded on first use (so `import
imagerelay` stays light and loads no SDK)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Backend

__all__ = ["backend_class"]


def backend_class(name: str) -> type[Backend]:
    """The backend class of the registered provider `name` (a provider TOML's `backend = …`)."""
    from ..plugins import provider

    return provider(name).backend_class()
