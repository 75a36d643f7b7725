"""The providers' own model listings, as the emulator serves them — and as tests change them.

Each list starts as what the provider serves today; a test scripts drift by editing it::

    emu.listings.xai_model("grok-imagine-image")["image_price"] = 300_000_000
    emu.listings.drop_openai("gpt-image-2.6-flare")
    emu.listings.replicate_input("black-forest-labs/flux-2-pro")["aspect_ratio"]["enum"].remove("4:5")
    emu.listings.replicate_collections["text-to-image"]["models"].append({"owner": …, "name": …})

`reset()` (and `Emulator.reset()`) puts today's listings back. The listings describe the models;
they do not change how the emulator answers a generation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Listings"]


def _xai() -> list[dict[str, Any]]:
    from imagerelay.emulator import xai

    return xai.default_listing()


def _openai() -> list[dict[str, Any]]:
    from imagerelay.emulator import openai

    return openai.default_listing()


def _gemini() -> list[dict[str, Any]]:
    from imagerelay.emulator import gemini

    return gemini.default_listing()


def _replicate() -> dict[str, dict[str, Any]]:
    from imagerelay.emulator import replicate_schema

    return replicate_schema.default_listing()


def _collections() -> dict[str, dict[str, Any]]:
    from imagerelay.emulator import replicate_schema

    return replicate_schema.default_collections()


@dataclass
class Listings:
    """xAI `GET /v1/image-generation-models`, OpenAI `GET /v1/models`, Replicate
    `GET /v1/models/{o}/{n}` and `GET /v1/collections/{slug}`, Gemini `GET /v1beta/models`."""

    xai: list[dict[str, Any]] = field(default_factory=_xai)
    openai: list[dict[str, Any]] = field(default_factory=_openai)
    #: owner/name → the model object, `latest_version.openapi_schema` included.
    replicate: dict[str, dict[str, Any]] = field(default_factory=_replicate)
    #: Gemini `GET /v1beta/models`: `Model` resources named `models/<id>`.
    gemini: list[dict[str, Any]] = field(default_factory=_gemini)
    #: Replicate `GET /v1/collections/{slug}`: slug → the collection, its `models` included.
    replicate_collections: dict[str, dict[str, Any]] = field(default_factory=_collections)

    def reset(self) -> None:
        self.xai, self.openai, self.replicate = _xai(), _openai(), _replicate()
        self.gemini, self.replicate_collections = _gemini(), _collections()

    def xai_model(self, model_id: str) -> dict[str, Any]:
        """The xAI listing entry of `model_id`, to edit in place."""
        return next(m for m in self.xai if m["id"] == model_id)

    def drop_openai(self, model_id: str) -> None:
        self.openai = [m for m in self.openai if m["id"] != model_id]

    def replicate_input(self, model: str) -> dict[str, Any]:
        """The `Input` properties of a Replicate model's schema, to edit in place."""
        schema = self.replicate[model]["latest_version"]["openapi_schema"]
        properties: dict[str, Any] = schema["components"]["schemas"]["Input"]["properties"]
        return properties
