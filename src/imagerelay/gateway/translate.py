"""OpenAI image request bodies → an `ImageRequest` (the answers are built in `answers`).

The standard fields are those of OpenAI's `CreateImageRequest`, `CreateImageEditRequest` and
`EditImageBodyJsonParam`; imagerelay's own ride in one object, `imagerelay`, which the SDKs
send through `extra_body` (JSON) or as `imagerelay[field]` form fields (multipart). A client
that cannot add body fields (the Vercel AI SDK) sends the same object as JSON in an
`x-imagerelay` header; fields in the body win.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from ..request import ImageRequest, problem_of
from ..settings import RoutingSettings
from .errors import GatewayError, gateway_terms
from .images import image_url, own_references, uploaded, url_or_data
from .inputs import form_fields
from .wire import check_standard, check_value

if TYPE_CHECKING:
    from starlette.datastructures import FormData

    from ..catalog import Catalog
    from ..references import Reference
    from .config import GatewaySettings

__all__ = [
    "Parsed",
    "merge_header",
    "parse_edit_form",
    "parse_edit_json",
    "parse_generation",
    "resolve_model",
]

_STANDARD = {
    "prompt",
    "model",
    "n",
    "size",
    "quality",
    "response_format",
    "output_format",
    "output_compression",
    "background",
    "moderation",
    "style",
    "user",
    "safety_identifier",
    "stream",
    "partial_images",
}
_EDIT = {"image", "images", "mask", "input_fidelity"}
#: Standard fields that are provider extras in imagerelay, sent to the models that declare them.
_EXTRAS = ("background", "moderation", "output_compression", "user", "safety_identifier", "input_fidelity")
_OWN = {"aspect_ratio", "resolution", "seed", "references", "max_cost", "metadata", "name", "extras"}
#: OpenAI's qualities that name no level of their own; every other is passed on as it is.
_QUALITY = {"auto": None, "standard": None, "hd": "high"}
#: imagerelay's own fields that are scalars, as OpenAI's schema would type them.
_OWN_RULES: dict[str, dict[str, Any]] = {
    "max_cost": {"type": "number", "minimum": 0},
    "seed": {"type": "integer"},
    "aspect_ratio": {"type": "string"},
    "resolution": {"type": "string"},
    "name": {"type": "string"},
}
_PARAM_OF = {
    "prompt": "prompt",
    "n": "n",
    "size": "size",
    "quality": "quality",
    "output_format": "output_format",
    "aspect_ratio": "imagerelay.aspect_ratio",
    "resolution": "imagerelay.resolution",
    "seed": "imagerelay.seed",
    "references": "image",
    "mask": "mask",
    "metadata": "imagerelay.metadata",
    "extras": "imagerelay.extras",
}


@dataclass
class Parsed:
    """One OpenAI request, translated."""

    request: ImageRequest
    model: str  # as asked for: auto, a route name, a provider, or PROVIDER:MODEL
    routing: RoutingSettings | None
    response_format: Literal["b64_json", "url"]
    max_cost: float | None
    name: str | None
    loaded: dict[str, Reference] = field(default_factory=dict)


def resolve_model(value: Any, catalog: Catalog, gateway: GatewaySettings) -> str:
    """`model` as imagerelay reads it: auto, a route, a provider, PROVIDER:MODEL, or a bare model id
    that exactly one provider has (e.g. "gpt-image-2" → "openai:gpt-image-2")."""
    if value is None or value == "" or value == "auto":
        return "auto"
    if not isinstance(value, str):
        raise GatewayError(400, "model must be a string", param="model")
    if value in gateway.routes or value in catalog.providers:
        return value
    provider, sep, _ = value.partition(":")
    if sep and provider in catalog.providers:
        return value
    owners = [p.name for p in catalog.providers.values() if value in p.models]
    if len(owners) == 1:
        return f"{owners[0]}:{value}"
    choices = ", ".join(["auto", *catalog.providers, *gateway.routes])
    raise GatewayError(
        400,
        f"unknown model {value[:80]!r}: use {choices}, or PROVIDER:MODEL (GET /v1/models lists them)",
        param="model",
        code="model_not_found",
    )


def merge_header(body: dict[str, Any], header: str | None) -> dict[str, Any]:
    """The body with the `x-imagerelay` header's fields under `imagerelay` (the body's win)."""
    if not header:
        return body
    import json

    try:
        given = json.loads(header)
    except ValueError:
        raise GatewayError(
            400, "the x-imagerelay header must be a JSON object", param="x-imagerelay"
        ) from None
    if not isinstance(given, dict):
        raise GatewayError(400, "the x-imagerelay header must be a JSON object", param="x-imagerelay")
    own = _own_fields(body.get("imagerelay"))
    return {**body, "imagerelay": {**given, **own}}


def _route_of(model: str, gateway: GatewaySettings, base: RoutingSettings) -> RoutingSettings | None:
    route = gateway.routes.get(model)
    if route is None:
        return None
    return base.model_copy(update={"text": list(route.models), "reference": list(route.models)})


def _own_fields(value: Any, *, form: bool = False) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):  # a multipart field holding JSON
        import json

        try:
            value = json.loads(value)
        except ValueError:
            raise GatewayError(400, "imagerelay must be a JSON object", param="imagerelay") from None
    if not isinstance(value, dict):
        raise GatewayError(400, "imagerelay must be an object", param="imagerelay")
    unknown = sorted(set(value) - _OWN)
    if unknown:
        raise GatewayError(
            400,
            f"unknown imagerelay field {unknown[0]!r}: use {', '.join(sorted(_OWN))}",
            param=f"imagerelay.{unknown[0]}",
        )
    return {
        k: check_value(k, v, _OWN_RULES[k], form=form, param=f"imagerelay.{k}")
        if k in _OWN_RULES and v is not None
        else v
        for k, v in value.items()
    }


def _offered(catalog: Catalog) -> dict[str, list[str]]:
    """What the catalog's models take beyond OpenAI's values (qualities `xhigh`, `max`; `jpg`)."""
    models = [m for p in catalog.providers.values() for m in p.models.values()]
    return {
        "quality": sorted({q for m in models for q in m.qualities}),
        "output_format": sorted({f for m in models for f in m.output_formats}),
    }


def _common(
    body: dict[str, Any],
    allowed: set[str],
    catalog: Catalog,
    gateway: GatewaySettings,
    routing: RoutingSettings,
    *,
    form: bool = False,
) -> tuple[dict[str, Any], dict[str, Any], str, RoutingSettings | None, Literal["b64_json", "url"]]:
    """The fields every endpoint shares: (ImageRequest fields, imagerelay fields, model, routing,
    response format). Each is checked for its type and value before anything is sent; multipart
    text (`form`) is read as the type the field has."""
    unknown = sorted(k for k in body if k not in allowed and k != "imagerelay")
    if unknown:
        raise GatewayError(
            400, f"unknown parameter {unknown[0][:80]!r}", param=unknown[0][:80], code="unknown_parameter"
        )
    if body.get("style") is not None:
        raise GatewayError(400, "style is a dall-e-3 setting, which no model here takes", param="style")
    body = check_standard(body, form=form, extend=_offered(catalog))
    if body.get("stream"):
        raise GatewayError(400, "streaming is not supported here: leave stream unset", param="stream")
    own = _own_fields(body.get("imagerelay"), form=form)
    model = resolve_model(body.get("model"), catalog, gateway)
    given_format = body.get("response_format") or "b64_json"
    if given_format not in ("b64_json", "url"):
        raise GatewayError(400, "response_format must be url or b64_json", param="response_format")
    fmt: Literal["b64_json", "url"] = "url" if given_format == "url" else "b64_json"
    quality = body.get("quality")
    size = body.get("size")
    if size is not None and own.get("aspect_ratio") is not None and size != "auto":
        raise GatewayError(400, "give size or imagerelay.aspect_ratio, not both", param="size")
    output_format = body.get("output_format")
    if output_format == "jpg":
        output_format = "jpeg"
    fields: dict[str, Any] = {
        "prompt": body.get("prompt"),
        "n": body.get("n") if body.get("n") is not None else 1,
        "size": None if size == "auto" else size,
        "quality": _QUALITY.get(quality, quality) if quality is not None else None,
        "output_format": output_format,
        "aspect_ratio": own.get("aspect_ratio"),
        "resolution": own.get("resolution"),
        "seed": own.get("seed"),
        "metadata": own.get("metadata") or {},
        "provider": "auto" if model in gateway.routes else model,
    }
    if fields["prompt"] is None:
        raise GatewayError(400, "prompt is required: say what the image should show", param="prompt")
    extras: dict[str, dict[str, Any]] = {}
    for name in _EXTRAS:
        if body.get(name) is not None and not (name in ("background", "moderation") and body[name] == "auto"):
            # To every provider with a model that takes it; an OpenAI field no model takes goes to
            # openai anyway, so the receipt notes that it was dropped rather than losing it quietly.
            takers = [
                p.name
                for p in catalog.providers.values()
                if any(name in m.extra_fields for m in p.models.values())
            ]
            for provider in takers or ["openai"]:
                extras.setdefault(provider, {})[name] = body[name]
    given = own.get("extras") or {}
    if not isinstance(given, dict) or not all(isinstance(v, dict) for v in given.values()):
        raise GatewayError(
            400, "imagerelay.extras must be {provider: {field: value}}", param="imagerelay.extras"
        )
    for provider, values in given.items():
        extras.setdefault(provider, {}).update(values)
    fields["extras"] = extras
    return fields, own, model, _route_of(model, gateway, routing), fmt


def _build(fields: dict[str, Any]) -> ImageRequest:
    try:
        return ImageRequest(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        param = _PARAM_OF.get(loc[0], loc[0]) if loc else None
        msg = gateway_terms(problem_of(err, name=lambda _: param or ""))
        raise GatewayError(400, msg, param=param) from None


def _finish(
    fields: dict[str, Any],
    own: dict[str, Any],
    model: str,
    routing: RoutingSettings | None,
    fmt: Literal["b64_json", "url"],
    loaded: dict[str, Reference],
) -> Parsed:
    max_cost = own.get("max_cost")  # a number of 0 or more (checked in `_own_fields`)
    max_cost = None if max_cost is None else float(max_cost)
    name = own.get("name")
    return Parsed(
        request=_build(fields),
        model=model,
        routing=routing,
        response_format=fmt,
        max_cost=max_cost,
        name=name or None,
        loaded=loaded,
    )


async def parse_generation(
    body: dict[str, Any], catalog: Catalog, gateway: GatewaySettings, routing: RoutingSettings
) -> Parsed:
    """A `POST /v1/images/generations` JSON body."""
    fields, own, model, route, fmt = _common(body, _STANDARD, catalog, gateway, routing)
    loaded: dict[str, Reference] = {}
    refs = await own_references(own, gateway.max_image_bytes, loaded)
    fields["references"] = tuple(refs)
    return _finish(fields, own, model, route, fmt, loaded)


async def parse_edit_form(
    form: FormData,
    catalog: Catalog,
    gateway: GatewaySettings,
    routing: RoutingSettings,
    *,
    header: str | None = None,
) -> Parsed:
    """A multipart `POST /v1/images/edits`: `image` (once or repeated), `image[]` and `mask`."""
    body, uploads = form_fields(form)
    body = merge_header(body, header)
    for key in ("image", "mask"):
        if key in body:  # a text field where a file belongs
            raise GatewayError(400, f"{key} must be an uploaded file", param=key)
    fields, own, model, route, fmt = _common(body, _STANDARD | _EDIT, catalog, gateway, routing, form=True)
    loaded: dict[str, Reference] = {}
    limit = gateway.max_image_bytes
    refs, mask = await uploaded(uploads, limit=limit, loaded=loaded)
    refs += await own_references(own, limit, loaded)
    if not refs:
        raise GatewayError(400, "image is required: upload the image(s) to edit", param="image")
    fields["references"] = tuple(refs)
    fields["mask"] = mask
    return _finish(fields, own, model, route, fmt, loaded)


async def parse_edit_json(
    body: dict[str, Any], catalog: Catalog, gateway: GatewaySettings, routing: RoutingSettings
) -> Parsed:
    """A JSON `POST /v1/images/edits`: `images: [{image_url}]` and `mask: {image_url}`."""
    fields, own, model, route, fmt = _common(
        body, _STANDARD | {"images", "mask", "input_fidelity"}, catalog, gateway, routing
    )
    images = body.get("images")
    if not isinstance(images, list) or not images:
        raise GatewayError(400, "images is required: a list of {image_url}", param="images")
    loaded: dict[str, Reference] = {}
    limit = gateway.max_image_bytes
    refs = []
    for i, item in enumerate(images):
        refs.append(
            await url_or_data(
                image_url(item, f"images[{i}]"),
                param=f"images[{i}].image_url",
                limit=limit,
                loaded=loaded,
                label=f"image {i + 1}",
            )
        )
    mask = None
    if body.get("mask") is not None:
        mask = await url_or_data(
            image_url(body["mask"], "mask"), param="mask.image_url", limit=limit, loaded=loaded, label="mask"
        )
    refs += await own_references(own, limit, loaded)
    fields["references"] = tuple(refs)
    fields["mask"] = mask
    return _finish(fields, own, model, route, fmt, loaded)
