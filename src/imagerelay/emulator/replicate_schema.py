"""What Replicate publishes about the models the emulator runs: the OpenAPI schema of each model's
latest version, as Cog makes it from the same table that validates its inputs, and the model object
`GET /v1/models/{owner}/{name}` answers with."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from imagerelay.emulator.replicate_models import MODELS, ModelSpec

if TYPE_CHECKING:
    from imagerelay.emulator.server import Emulator

__all__ = ["Published", "default_listing", "input_properties", "openapi_schema"]

#: Models of other owners in the text-to-image collection (the emulator does not run them).
_OTHERS = ("ideogram-ai/ideogram-v3-turbo", "google/imagen-4-fast")


class Published(dict[str, dict[str, Any]]):
    """What Replicate publishes: owner/name → the model object (`GET /v1/models/{owner}/{name}`),
    and `collections`, slug → a curated collection with its models (`GET /v1/collections/{slug}`).
    A test scripts either: `emu.listings.replicate.collections["text-to-image"]["models"].append(…)`."""

    def __init__(self, models: dict[str, dict[str, Any]], collections: dict[str, dict[str, Any]]) -> None:
        super().__init__(models)
        self.collections = collections


def openapi_schema(spec: ModelSpec) -> dict[str, Any]:
    """The model version's `openapi_schema`, as Cog publishes it (inputs and output)."""
    components: dict[str, Any] = {}
    properties = {name: i.schema(name, n, components) for n, (name, i) in enumerate(spec.inputs.items())}
    output: dict[str, Any] = (
        {"type": "string", "format": "uri", "title": "Output"}
        if spec.single
        else {"type": "array", "items": {"type": "string", "format": "uri"}, "title": "Output"}
    )
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.1.0"},
        "paths": {},
        "components": {
            "schemas": {
                "Input": {
                    "type": "object",
                    "title": "Input",
                    "required": list(spec.required),
                    "properties": properties,
                },
                "Output": output,
                **components,
            }
        },
    }


def input_properties(emu: Emulator, model: str) -> dict[str, Any]:
    """The `Input` properties of a Replicate model's schema (`emu.listings.replicate`), to edit in place."""
    schema = emu.listings.replicate[model]["latest_version"]["openapi_schema"]
    properties: dict[str, Any] = schema["components"]["schemas"]["Input"]["properties"]
    return properties


def default_listing() -> Published:
    """The model objects of every model the emulator runs, and the `text-to-image` collection:
    the FLUX models that make an image from a prompt (Kontext, an editor, is not in it), after
    models of other owners, as Replicate's curated collection mixes them."""
    out: dict[str, dict[str, Any]] = {}
    for path, spec in MODELS.items():
        owner, name = path.split("/")
        version = hashlib.sha256(path.encode()).hexdigest()
        out[path] = {
            "url": f"https://replicate.com/{path}",
            "owner": owner,
            "name": name,
            "description": spec.description or f"{name} by {owner}",
            "visibility": "public",
            "is_official": True,
            "run_count": 1_000_000,
            "latest_version": {
                "id": version,
                "created_at": "2026-11-20T00:00:00.000000Z",
                "cog_version": "0.16.9",
                "openapi_schema": openapi_schema(spec),
            },
        }
    others = [
        {"url": f"https://replicate.com/{p}", "owner": p.split("/")[0], "name": p.split("/")[1]}
        for p in _OTHERS
    ]
    flux = [
        {k: v for k, v in model.items() if k != "latest_version"}
        for path, model in out.items()
        if MODELS[path].sizing != "kontext"
    ]
    text_to_image = {
        "name": "Generate images",
        "slug": "text-to-image",
        "description": "Models that generate images from text prompts",
        "models": [*others, *flux],
    }
    return Published(out, {"text-to-image": text_to_image})
