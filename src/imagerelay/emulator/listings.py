"""The providers' own model listings, as the emulator serves them — and as tests change them.

Each of a dialect's `listings` starts from what its provider lists today, as an attribute of the
name it gives (usually the dialect's own); a test scripts drift by editing it::

    xai.listed(emu, "grok-imagine-image")["image_price"] = 300_000_000
    emu.listings.openai = [m for m in emu.listings.openai if m["id"] != "gpt-image-2.6-flare"]
    replicate_schema.input_properties(emu, "black-forest-labs/flux-2-pro")["aspect_ratio"]

`reset()` (and `Emulator.reset()`) puts today's listings back. The listings describe the models;
they do not change how the emulator answers a generation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imagerelay.emulator.wire import Dialect

__all__ = ["Listings"]


class Listings:
    """Every dialect's listings, by the names they give: `emu.listings.<name>`."""

    def __init__(self, dialects: Iterable[Dialect]) -> None:
        self._defaults: dict[str, Callable[[], Any]] = {
            name: default for d in dialects for name, default in d.listings.items()
        }
        self.reset()

    def reset(self) -> None:
        for name, default in self._defaults.items():
            setattr(self, name, default())

    def __getattr__(self, name: str) -> Any:  # only for names no listing was set under
        if name.startswith("_"):
            raise AttributeError(name)
        raise AttributeError(f"no dialect lists models as {name!r}; these do: {tuple(self._defaults)}")
