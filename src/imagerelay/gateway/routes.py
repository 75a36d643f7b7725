"""The HTTP surface: OpenAI's image endpoints, and imagerelay's models, receipts, images and probes.

```
POST /v1/images/generations     JSON                                    → ImagesResponse
POST /v1/images/edits           multipart (image, image[], mask) | JSON (images: [{image_url}])
GET  /v1/images/{receipt}/{n}.{ext}   a stored image (the URLs of response_format=url)
GET  /v1/models                 auto, providers, pinned models, routes — with capabilities
GET  /v1/receipts/{receipt}     a finished request's receipt
GET  /healthz  /readyz  /metrics
```
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from ..catalog_report import one_image_usd
from .answers import image_name
from .app import Gateway
from .errors import GatewayError
from .inputs import read_body
from .local import check_local
from .metrics import CONTENT_TYPE
from .translate import merge_header, parse_edit_form, parse_edit_json, parse_generation

__all__ = ["create_app"]

log = logging.getLogger("imagerelay.gateway")

_RECEIPT_ID = re.compile(r"^[0-9a-f]{32}$")
_IMAGE_NAME = re.compile(r"^(\d{1,3})\.(png|jpg|webp|gif)$")
_MIME = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp", "gif": "image/gif"}
_MAX_FILES = 18  # 16 images, a mask, and one to spare for a clear "too many" message


def _error_response(exc: GatewayError, request_id: str) -> JSONResponse:
    headers = {**exc.headers, "x-request-id": request_id}
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def _base_url(gateway: Gateway, request: Request) -> str:
    return (gateway.settings.gateway.public_url or str(request.base_url)).rstrip("/")


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def create_app(gateway: Gateway) -> Starlette:
    """The Starlette application serving `gateway`."""

    def guard(
        endpoint: str, handler: Callable[[Request, str], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """Request id, metrics and the OpenAI error shape around one endpoint."""

        async def run(request: Request) -> Response:
            request_id = "req_" + uuid.uuid4().hex
            start = time.perf_counter()
            try:
                if gateway.keys.open and not _is_loopback(request.client.host if request.client else None):
                    raise GatewayError(
                        403, "no gateway key is configured: only this machine may call", code="loopback_only"
                    )
                if gateway.keys.open:
                    check_local(request.headers.get("host"), request.headers.get("origin"))
                response = await handler(request, request_id)
            except GatewayError as exc:
                response = _error_response(exc, request_id)
            except Exception:  # a bug of ours: logged with its traceback, one line to the client
                log.exception("request %s failed unexpectedly", request_id)
                response = _error_response(
                    GatewayError(
                        500, f"the gateway failed unexpectedly (request {request_id})", code="internal_error"
                    ),
                    request_id,
                )
            response.headers["x-request-id"] = request_id
            gateway.metrics.requests.labels(endpoint, str(response.status_code)).inc()
            gateway.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
            return response

        return run

    async def images(request: Request, request_id: str, *, edit: bool) -> Response:
        started = time.perf_counter()
        principal = gateway.authenticate(request.headers.get("authorization"))
        if gateway.draining:
            raise GatewayError(
                503,
                "the gateway is shutting down: try again shortly",
                code="draining",
                headers={"Retry-After": "5"},
            )
        gw = gateway.settings.gateway
        body = await read_body(request, limit=gw.max_request_bytes, max_files=_MAX_FILES)
        routing = gateway.settings.routing
        header = request.headers.get("x-imagerelay")
        try:
            if not edit:
                if body.json is None:
                    raise GatewayError(
                        415, "send the generation as application/json", code="unsupported_media_type"
                    )
                parsed = await parse_generation(merge_header(body.json, header), gateway.catalog, gw, routing)
            elif body.form is not None:
                parsed = await parse_edit_form(body.form, gateway.catalog, gw, routing, header=header)
            else:
                assert body.json is not None
                parsed = await parse_edit_json(merge_header(body.json, header), gateway.catalog, gw, routing)
        finally:
            await body.close()
        done = await gateway.generate(principal, parsed, request.headers.get("idempotency-key"))
        if done.error is not None:
            raise done.error
        assert done.receipt is not None
        out = await gateway.render(done.receipt, parsed.response_format, _base_url(gateway, request))
        # Server-Timing: the relay's share (plan, provider calls, storage) and the whole request
        # as the gateway saw it; the difference is the gateway's own work.
        timing = f"relay;dur={done.relay_s * 1e3:.2f}, total;dur={(time.perf_counter() - started) * 1e3:.2f}"
        return JSONResponse(out, headers={"x-imagerelay-receipt": done.receipt.id, "server-timing": timing})

    async def generations(request: Request, request_id: str) -> Response:
        return await images(request, request_id, edit=False)

    async def edits(request: Request, request_id: str) -> Response:
        return await images(request, request_id, edit=True)

    async def image_file(request: Request, request_id: str) -> Response:
        # No key needed: the receipt id (128 random bits) is the capability, as a signed URL's
        # token would be, so an <img src> can show it. Paths come from the ledger, never the URL.
        receipt_id = request.path_params["receipt_id"]
        match = _IMAGE_NAME.match(request.path_params["name"])
        receipt = gateway.stored_receipt(receipt_id) if _RECEIPT_ID.match(receipt_id) and match else None
        path = gateway.image_path(receipt, int(match.group(1))) if receipt is not None and match else None
        if path is None or match is None or receipt is None:
            raise GatewayError(404, "no such image", code="not_found")
        own = image_name(receipt, int(match.group(1)))
        if request.path_params["name"] != own:  # e.g. 1.png for a JPEG: the URL answers give is 1.jpg
            raise GatewayError(
                404, f"no such image: this one is at /v1/images/{receipt_id}/{own}", code="not_found"
            )
        return FileResponse(
            path,
            media_type=_MIME[match.group(2)],
            headers={"cache-control": "private, max-age=31536000, immutable"},
        )

    async def receipt(request: Request, request_id: str) -> Response:
        principal = gateway.authenticate(request.headers.get("authorization"))
        receipt_id = request.path_params["receipt_id"]
        if not _RECEIPT_ID.match(receipt_id):
            raise GatewayError(404, "no such receipt", code="not_found")
        found = gateway.stored_receipt(receipt_id, principal)
        if found is None:
            if gateway.running(receipt_id, principal):
                return JSONResponse({"id": receipt_id, "status": "in_progress"}, status_code=202)
            raise GatewayError(404, "no such receipt (for this key)", code="not_found")
        data = found.model_dump(mode="json")
        base = _base_url(gateway, request)
        for i, image in enumerate(data["images"], 1):
            # Where the image lies on the server is not the client's business; its URL is.
            image["path"] = image["path"].replace("\\", "/").rsplit("/", 1)[-1]
            image["receipt_path"] = None
            image["url"] = (
                f"{base}/v1/images/{receipt_id}/{i}.{'jpg' if image['format'] == 'jpeg' else image['format']}"
            )
        data["status"] = "succeeded" if found.images else "failed"
        return JSONResponse(data)

    async def models(request: Request, request_id: str) -> Response:
        principal = gateway.authenticate(request.headers.get("authorization"))
        entries = [e for e in _model_entries(gateway) if principal.allows(e["id"], gateway.catalog)]
        return JSONResponse({"object": "list", "data": entries})

    async def healthz(request: Request, request_id: str) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request, request_id: str) -> Response:
        if gateway.draining:
            return JSONResponse({"status": "draining"}, status_code=503)
        if not gateway.started:
            return JSONResponse({"status": "starting"}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics(request: Request, request_id: str) -> Response:
        return Response(gateway.metrics.render(), media_type=CONTENT_TYPE)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    routes = [
        Route("/v1/images/generations", guard("generations", generations), methods=["POST"]),
        Route("/v1/images/edits", guard("edits", edits), methods=["POST"]),
        Route("/v1/images/{receipt_id}/{name}", guard("image", image_file), methods=["GET", "HEAD"]),
        Route("/v1/receipts/{receipt_id}", guard("receipt", receipt), methods=["GET"]),
        Route("/v1/models", guard("models", models), methods=["GET"]),
        Route("/healthz", guard("healthz", healthz), methods=["GET"]),
        Route("/readyz", guard("readyz", readyz), methods=["GET"]),
        Route("/metrics", guard("metrics", metrics), methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        message = "no such endpoint" if status == 404 else "method not allowed here"
        return _error_response(
            GatewayError(status, f"{message}: {request.method} {request.url.path}"), "req_none"
        )

    app.add_exception_handler(404, not_found)
    app.add_exception_handler(405, not_found)
    return app


def _model_entries(gateway: Gateway) -> list[dict[str, Any]]:
    """What each `model` value means here: auto, each route, each provider, each pinned model."""
    settings, catalog = gateway.settings, gateway.catalog
    keyed = gateway.relay.keyed_providers
    today = date.today()
    entries: list[dict[str, Any]] = [
        {
            "id": "auto",
            "object": "model",
            "created": 0,
            "owned_by": "imagerelay",
            "imagerelay": {
                "kind": "auto",
                "description": "the environment's routing: each model in order, falling back on failure",
                "text": list(settings.routing.text),
                "reference": list(settings.routing.reference),
            },
        }
    ]
    for name, route in settings.gateway.routes.items():
        entries.append(
            {
                "id": name,
                "object": "model",
                "created": 0,
                "owned_by": "imagerelay",
                "imagerelay": {"kind": "route", "models": list(route.models)},
            }
        )
    for provider in catalog.providers.values():
        usable = [m for m in provider.models.values() if m.unavailable_reason(today) is None]
        entries.append(
            {
                "id": provider.name,
                "object": "model",
                "created": 0,
                "owned_by": provider.name,
                "imagerelay": {
                    "kind": "provider",
                    "label": provider.label,
                    "available": provider.name in keyed and settings.provider(provider.name).enabled,
                    "models": [m.ref for m in usable],
                },
            }
        )
        for m in usable:
            entries.append(
                {
                    "id": m.ref,
                    "object": "model",
                    "created": 0,
                    "owned_by": provider.name,
                    "imagerelay": {
                        "kind": "model",
                        "label": m.label,
                        "status": m.status,
                        "shutdown": m.shutdown.isoformat() if m.shutdown else None,
                        "available": provider.name in keyed and settings.provider(provider.name).enabled,
                        "modes": list(m.modes),
                        "max_references": m.max_references,
                        "max_n": m.max_n,
                        "sizes": list(m.sizes) + (["any WxH (rules)"] if m.size_rule else []),
                        "aspect_ratios": list(m.aspect_ratios),
                        "resolutions": list(m.resolutions),
                        "qualities": list(m.qualities),
                        "output_formats": list(m.output_formats),
                        "estimate_usd_1024": round(one_image_usd(m), 5),
                        "price_basis": m.price.basis,
                        "price_confirmed": m.price.confirmed,
                        "checked": m.checked.isoformat() if m.checked else None,
                    },
                }
            )
    return entries
