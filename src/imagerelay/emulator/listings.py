"""The providers' own model listings, as the emulator serves them — and as tests change them.

Each dialect with a `listing` starts from what its provider lists today, as an attribute named for
the dialect; a test scripts drift by editing it::

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
    """Each dialect's listing, by dialect name: `emu.listings.<dialect>`."""

    def __init__(self, dialects: Iterable[Dialect]) -> None:
        self._defaults: dict[str, Callable[[], Any]] = {
            d.name: d.listing for d in dialects if d.listing is not None
        }
        self.reset()

    def reset(self) -> None:
        for name, default in self._defaults.items():
            setattr(self, name, default())

    def __getattr__(self, name: str) -> Any:  # only for names no listing was set under
        if name.startswith("_"):
            raise AttributeError(name)
        raise AttributeError(f"no dialect lists models as {name!r}; these do: {tuple(self._defaults)}")
