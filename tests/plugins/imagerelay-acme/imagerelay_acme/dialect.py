"""Acme Images in imagerelay's emulator: `POST /acme/v2/render`, for `--env sandbox` and tests."""

from __future__ import annotations

import base64
from collections.abc import Mapping

from imagerelay.emulator import draw
from imagerelay.emulator.wire import Call, Dialect, DialectError, Fault, Reply, Route, json_reply

_SHAPES = {"1:1": (512, 512), "3:2": (768, 512), "2:3": (512, 768)}


def _problem(status: int, say: str) -> DialectError:
    return DialectError(json_reply(status, {"problem": {"status": status, "say": say}}))


def _key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    return headers.get("x-acme-key") or None


def render(call: Call) -> Reply:
    body = call.json if isinstance(call.json, dict) else None
    if body is None or not isinstance(body.get("text"), str) or not body["text"].strip():
        raise _problem(422, "text is required")
    shape = body.get("shape", "1:1")
    if shape not in _SHAPES:
        raise _problem(422, f"unknown shape {shape!r}")
    count = body.get("count", 1)
    if not isinstance(count, int) or not 1 <= count <= 4:
        raise _problem(422, "count must be 1 to 4")
    pictures = [
        {
            "png": base64.b64encode(
                draw.render(prompt=body["text"], model="acme", size=_SHAPES[shape], index=i, fmt="png")
            ).decode()
        }
        for i in range(count)
    ]
    return json_reply(200, {"render_id": f"r-{len(call.emu.requests)}", "pictures": pictures})


def _auth_error(key: str | None) -> Reply:
    return _problem(401, "missing or unknown X-Acme-Key").reply


def _error_reply(status: int, fault: Fault | None) -> Reply:
    return _problem(status, (fault.error if fault and fault.error else None) or f"HTTP {status}").reply


def _not_found(method: str, path: str) -> Reply:
    return _problem(404, f"no such endpoint: {method} {path}").reply


DIALECT = Dialect(
    "acme",
    _auth_error,
    _error_reply,
    _not_found,
    presented_key=_key,
    secret_headers=("x-acme-key",),
    version="v2",
    routes=(Route("POST", r"/v2/render", "render", render),),
)
