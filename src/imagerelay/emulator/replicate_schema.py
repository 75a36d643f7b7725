"""What Replicate publishes about the models the emulator runs: the OpenAPI schema of each model's
latest version, as Cog makes it from the same table that validates its inputs, and the model object
`GET /v1/models/{owner}/{name}` answers with."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from imagerelay.emulator.replicate_models import MODELS, ModelSpec

if TYPE_CHECKING:
    from imagerelay.emulator.server import Emulator

__all__ = ["default_listing", "input_properties", "openapi_schema"]


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


def default_listing() -> dict[str, dict[str, Any]]:
    """owner/name → the model object `GET /v1/models/{owner}/{name}` answers with."""
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
    return out
