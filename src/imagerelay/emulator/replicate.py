"""The Replicate dialect: FLUX predictions that run over time, file uploads, problem+json errors."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from imagerelay.emulator import draw
from imagerelay.emulator.replicate_models import MODELS, ModelSpec, references_of, validate
from imagerelay.emulator.replicate_predictions import (
    TERMINAL,
    Prediction,
    State,
    Upload,
    iso,
    new_id,
    snapshot,
)
from imagerelay.emulator.replicate_schema import default_listing
from imagerelay.emulator.wire import (
    Call,
    Dialect,
    DialectError,
    Fault,
    Reply,
    Route,
    decode_data_uri,
    json_reply,
)

if TYPE_CHECKING:
    from PIL.Image import Image

__all__ = [
    "DIALECT",
    "PAGE_SIZE",
    "State",
    "cancel",
    "create",
    "get",
    "list_predictions",
    "model",
    "serve_upload",
    "upload",
]

PROBLEM = "application/problem+json"
NSFW_ERROR = "NSFW content detected. Try running it again, or try a different prompt."

_TITLES = {
    400: "Bad request",
    401: "Unauthenticated",
    402: "Insufficient credit",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    422: "Input validation failed",
    429: "Request was throttled",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
    504: "Gateway timeout",
}


def _problem(status: int, detail: str, **extra: Any) -> DialectError:
    body = {"title": _TITLES.get(status, "Error"), "detail": detail, "status": status, **extra}
    return DialectError(json_reply(status, body, PROBLEM))


def _auth_error(key: str | None) -> Reply:
    return _problem(401, "You did not pass a valid authentication token").reply


def _error_reply(status: int, fault: Fault | None) -> Reply:
    if status == 429:
        headers = {k.lower(): v for k, v in (fault.headers if fault else {}).items()}
        try:
            retry_after = max(0, round(float(headers.get("retry-after", "3"))))
        except ValueError:
            retry_after = 3
        detail = f"Request was throttled. Expected available in {retry_after} seconds."
        reply = _problem(429, detail, retry_after=retry_after).reply
        reply.headers["retry-after"] = str(retry_after)
        return reply
    detail = (fault.error if fault and fault.error else None) or _TITLES.get(status, f"HTTP {status}") + "."
    return _problem(status, detail).reply


def _not_found(method: str, path: str) -> Reply:
    return _problem(404, "Not found.").reply


DIALECT = Dialect("replicate", _auth_error, _error_reply, _not_found, token_schemes=("bearer", "token"))


def _state(call: Call) -> State:
    """The predictions and uploads this emulator keeps (`Emulator.state("replicate")`)."""
    state: State = call.emu.state(DIALECT.name)
    return state


def _validate(spec: ModelSpec, given: dict[str, Any]) -> dict[str, Any]:
    effective, invalid = validate(spec, given)
    if invalid:
        detail = "".join(f"- {i['field']}: {i['description']}\n" for i in invalid)
        raise _problem(422, detail, invalid_fields=invalid)
    return effective


def _load_reference(call: Call, url: str) -> tuple[Image | None, str | None]:
    """(image, None) or (None, the error the prediction will fail with)."""
    if url.startswith("data:"):
        try:
            _, data = decode_data_uri(url)
        except ValueError:
            return None, "Failed to decode the input file: invalid data URI."
    else:
        fetched = call.emu.fetch_local(url)
        if fetched is None:
            return None, f"Failed to download the input file from {url[:200]}."
        data = fetched
    try:
        return draw.load(data), None
    except ValueError:
        return None, "The input file is not a valid image."


def _prefer_wait(value: str) -> float | None:
    """Seconds to hold the create request for `Prefer: wait[=N]` (N at most 60), or None."""
    for item in value.split(","):
        name, _, arg = item.strip().partition("=")
        if name.strip().lower() == "wait":
            try:
                return float(min(60, max(1, int(arg)))) if arg else 60.0
            except ValueError:
                return 60.0
    return None


def create(call: Call) -> Reply:
    """POST /v1/models/{owner}/{name}/predictions."""
    model = f"{call.params['owner']}/{call.params['name']}"
    if call.json is None or not isinstance(call.json, dict):
        raise _problem(400, "The request body must be a JSON object.")
    spec = MODELS.get(model)
    if spec is None:
        raise _problem(404, f"The requested model {model} was not found.")
    given = call.json.get("input")
    if not isinstance(given, dict):
        raise _problem(
            422,
            "- input: Invalid type. Expected: object\n",
            invalid_fields=[
                {"type": "invalid_type", "field": "input", "description": "Invalid type. Expected: object"}
            ],
        )
    effective = _validate(spec, given)
    fault = call.fault
    duration: float | None = call.emu.prediction_seconds
    outcome, error = "succeeded", None
    if fault is not None:
        kind = fault.prediction
        if kind == "stuck":
            duration = None
        elif kind == "slow":
            duration = fault.seconds if fault.seconds is not None else 5.0
        elif fault.seconds is not None:
            duration = fault.seconds
        if kind in ("failed", "canceled", "aborted"):
            outcome = kind
            error = fault.error or ("Prediction failed." if kind == "failed" else None)
        if fault.blocked:
            outcome, error = "failed", fault.error or NSFW_ERROR
    reference = None
    for i, ref_url in enumerate(references_of(spec, effective) if outcome == "succeeded" else []):
        loaded, problem = _load_reference(call, ref_url)
        if problem is not None:
            outcome, error = "failed", problem
            break
        reference = loaded if i == 0 else reference  # the first one shapes the sandbox image
    now = time.monotonic()
    p = Prediction(
        id=new_id(),
        model=model,
        spec=spec,
        input=given,
        effective=effective,
        created=now,
        created_at=iso(time.time()),
        duration=duration,
        outcome=outcome,
        error=error,
        empty=bool(fault and fault.empty),
        truncate=bool(fault and fault.truncate),
        reference=reference,
    )
    _state(call).add(p)
    hold = _prefer_wait(call.headers.get("prefer", ""))
    if hold is None:
        return json_reply(201, snapshot(call, p, force_starting=True))
    deadline = now + hold
    while p.status(time.monotonic()) not in TERMINAL:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        finish = p.finished_at()
        until_done = finish - time.monotonic() if finish is not None else left
        time.sleep(max(0.0, min(left, until_done, 0.05)))
    return json_reply(201, snapshot(call, p))


#: Predictions per page of `GET /v1/predictions`, as Replicate serves them.
PAGE_SIZE = 100


def list_predictions(call: Call) -> Reply:
    """GET /v1/predictions: newest first, 100 a page, `next`/`previous` cursor URLs;
    `created_after` / `created_before` (ISO 8601) filter by creation time."""
    bounds: dict[str, dt.datetime] = {}
    for name in ("created_after", "created_before"):
        if name in call.query:
            try:
                when = dt.datetime.fromisoformat(call.query[name])
            except ValueError:
                raise _problem(400, f"{name} must be an ISO 8601 date-time.") from None
            bounds[name] = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    every = _state(call).every()
    chosen = []
    for p in sorted(every, key=lambda p: p.created, reverse=True):
        created = dt.datetime.fromisoformat(p.created_at)
        if "created_after" in bounds and created <= bounds["created_after"]:
            continue
        if "created_before" in bounds and created >= bounds["created_before"]:
            continue
        chosen.append(p)
    try:
        start = int(call.query.get("cursor", "0"))
    except ValueError:
        raise _problem(400, "Invalid cursor.") from None
    page = chosen[start : start + PAGE_SIZE]
    kept: dict[str, str] = {k: call.query[k] for k in ("created_after", "created_before") if k in call.query}

    def link(offset: int) -> str:
        query: dict[str, str] = {**kept, "cursor": str(offset)}
        return f"{call.emu.url}/replicate/v1/predictions?" + urlencode(query)

    return json_reply(
        200,
        {
            "next": link(start + PAGE_SIZE) if start + PAGE_SIZE < len(chosen) else None,
            "previous": link(max(0, start - PAGE_SIZE)) if start > 0 else None,
            "results": [snapshot(call, p) for p in page],
        },
    )


def _find(call: Call) -> Prediction:
    p = _state(call).prediction(call.params["id"])
    if p is None:
        raise _problem(404, "Not found.")
    return p


def model(call: Call) -> Reply:
    """GET /v1/models/{owner}/{name}: the model, its latest version's OpenAPI schema included."""
    found = call.emu.listings.replicate.get(f"{call.params['owner']}/{call.params['name']}")
    if found is None:
        raise _problem(404, "Not found.")
    return json_reply(200, found)


def collection(call: Call) -> Reply:
    """GET /v1/collections/{slug}: a curated collection, with its models."""
    found = call.emu.listings.replicate.collections.get(call.params["slug"])
    if found is None:
        raise _problem(404, "Not found.")
    return json_reply(200, found)


def get(call: Call) -> Reply:
    """GET /v1/predictions/{id}."""
    return json_reply(200, snapshot(call, _find(call)))


def cancel(call: Call) -> Reply:
    """POST /v1/predictions/{id}/cancel: a prediction not yet finished becomes canceled."""
    p = _find(call)
    with p.lock:
        if p.status(time.monotonic()) not in TERMINAL:
            p.canceled_at = time.monotonic()
    return json_reply(200, snapshot(call, p))


def upload(call: Call) -> Reply:
    """POST /v1/files: multipart `content` (+ optional `filename`, `type`, `metadata`)."""
    if call.content_type != "multipart/form-data":
        raise _problem(400, "The request must be multipart/form-data with a `content` file.")
    content = next((p for p in call.parts if p.name == "content"), None)
    if content is None:
        raise _problem(
            422,
            "- content: content is required\n",
            invalid_fields=[{"type": "required", "field": "content", "description": "content is required"}],
        )
    form = call.form
    metadata: dict[str, Any] = {}
    if form.get("metadata"):
        try:
            loaded = json.loads(form["metadata"])
        except ValueError as exc:
            raise _problem(400, "metadata must be a JSON object.") from exc
        metadata = loaded if isinstance(loaded, dict) else {}
    wall = time.time()
    item = Upload(
        id=new_id(),
        name=form.get("filename") or content.filename or "file",
        content_type=form.get("type") or content.content_type or "application/octet-stream",
        data=content.data,
        metadata=metadata,
        created_at=iso(wall),
    )
    _state(call).add_upload(item)
    return json_reply(
        201,
        {
            "id": item.id,
            "name": item.name,
            "content_type": item.content_type,
            "size": len(item.data),
            "etag": hashlib.md5(item.data, usedforsecurity=False).hexdigest(),
            "checksums": {
                "sha256": hashlib.sha256(item.data).hexdigest(),
                "md5": hashlib.md5(item.data, usedforsecurity=False).hexdigest(),
            },
            "metadata": item.metadata,
            "created_at": item.created_at,
            "expires_at": iso(wall + 24 * 3600),
            "urls": {"get": f"{call.emu.url}/replicate/v1/files/{item.id}"},
        },
    )


def serve_upload(call: Call) -> Reply:
    """GET of an upload's `urls.get`: its bytes."""
    item = _state(call).upload(call.params["id"])
    if item is None:
        raise _problem(404, "Not found.")
    data = item.data[: len(item.data) // 2] if call.fault is not None and call.fault.truncate else item.data
    return Reply(200, data, item.content_type)


#: The dialect with every endpoint it answers, as the provider's registration names it.
DIALECT = dataclasses.replace(
    DIALECT,
    state=State,
    listings={"replicate": default_listing},
    routes=(
        Route("GET", r"/v1/models/(?P<owner>[^/]+)/(?P<name>[^/]+)", "model", model),
        Route("GET", r"/v1/collections/(?P<slug>[^/]+)", "collection", collection),
        Route("POST", r"/v1/models/(?P<owner>[^/]+)/(?P<name>[^/]+)/predictions", "create", create),
        Route("GET", r"/v1/predictions", "list", list_predictions),
        Route("GET", r"/v1/predictions/(?P<id>[^/]+)", "get", get),
        Route("POST", r"/v1/predictions/(?P<id>[^/]+)/cancel", "cancel", cancel),
        Route("POST", r"/v1/files", "files", upload),
        Route("GET", r"/v1/files/(?P<id>[^/]+)", "upload", serve_upload, hosted=True),
    ),
)
