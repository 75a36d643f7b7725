"""`--env sandbox`: the emulator in-process, every provider pointed at it, placeholder keys.

Each provider is served by its own emulator dialect, or — declared as data, reusing another's wire
API (`backend = "openai"`) — by that backend's dialect under its own name and base URL. A provider
with neither is left out of the sandbox (disabled there), never sent to its real API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import SecretStr

if TYPE_CHECKING:
    from .catalog import Catalog
    from .emulator import Emulator
    from .settings import Settings

__all__ = ["EMULATOR_MARKER", "from_emulator", "start_sandbox"]

#: What every image the emulator makes carries (its EXIF `Software` tag), however it is reached —
#: `--env sandbox`, or `imagerelay emulator serve` behind base-URL variables: an image carrying it
#: is sandbox output ($0, never a real item done), whatever environment the relay runs in.
EMULATOR_MARKER = "imagerelay-emulator (sandbox output, never billed)"
_MARKER_BYTES = EMULATOR_MARKER.encode()


def from_emulator(data: bytes) -> bool:
    """Whether delivered image bytes were made by the imagerelay emulator."""
    return _MARKER_BYTES in data


def start_sandbox(catalog: Catalog, settings: Settings) -> tuple[Emulator, Settings, dict[str, SecretStr]]:
    """Start an emulator for `catalog`: (it, `settings` pointed at it, the placeholder keys)."""
    from .emulator import Emulator
    from .plugins import registry

    plugins = registry()
    has_dialect = {name for name, p in plugins.items() if p.dialect is not None}
    mounts: dict[str, str] = {}
    served: list[str] = []
    for spec in catalog.providers.values():
        if spec.name in has_dialect:
            served.append(spec.name)
        elif spec.backend in has_dialect:
            mounts[spec.name] = spec.backend
            served.append(spec.name)
    emu = Emulator(keys=None, mounts=mounts)
    emu.start(port=0)
    providers = {
        name: settings.provider(name).model_copy(
            update={"base_url": emu.base_url(name)} if name in served else {"enabled": False}
        )
        for name in catalog.providers
    }
    # Reference URLs keep the environment's rules: the sandbox is offline, not a licence to
    # fetch private addresses. Never send real keys to the stand-in: each gets a placeholder.
    keys = {name: SecretStr(f"sandbox-{name}") for name in served}
    return emu, settings.model_copy(update={"providers": providers}), keys
