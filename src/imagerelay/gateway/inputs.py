"""Reading request bodies within limits: JSON, multipart uploads and data URIs.

Every cap is checked before the bytes are kept: a declared Content-Length over the limit is
refused before the body is read, a body that grows past it is cut off, and an image (an uploaded
part or a data URI) is measured before it is decoded. A refused body is still read to its end
(up to a bound) so the client sees the 413 instead of a connection reset.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import re
from typing import TYPE_CHECKING, Any

from .errors import GatewayError

if TYPE_CHECKING:
    from starlette.datastructures import FormData, UploadFile
    from starlette.requests import Request
    from starlette.types import Message, Receive

__all__ = ["Body", "decode_data_uri", "form_fields", "read_body", "read_upload", "upload_name"]

#: A multipart body's limits: its fields (files included) and the size of one text field.
_MAX_FIELDS = 200
_MAX_FIELD_BYTES = 1024 * 1024
#: A refused body is read on (and dropped) up to this many bytes, then the connection is closed.
_DRAIN_LIMIT = 1024 * 1024 * 1024
_BRACKET = re.compile(r"^(\w+)((?:\[[^\]]*\])+)$")
_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^,;]*)*),", re.IGNORECASE)


class _TooLarge(Exception):
    pass


class _Limited:
    """An ASGI `receive` that counts body bytes and stops past `limit`."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self.limit = limit
        self.received = 0
        self.done = False

    async def __call__(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.done = not message.get("more_body", False)
            if self.received > self.limit:
                raise _TooLarge
        return message

    async def drain(self) -> None:
        while not self.done and self.received <= _DRAIN_LIMIT:
            message = await self._receive()
            if message["type"] != "http.request":
                return
            self.received += len(message.get("body", b""))
            self.done = not message.get("more_body", False)


def _bad_multipart(reason: str, max_files: int) -> GatewayError:
    """A 400 naming what is wrong with a multipart body, from the parser's own reason."""
    lowered = reason.lower()
    if "too many fields" in lowered:
        message = (
            f"the multipart body has over {_MAX_FIELDS} fields, the gateway's limit: "
            "send the image(s), the mask and the request's fields only"
        )
    elif "too many files" in lowered:
        message = (
            f"the multipart body has over {max_files} files, the gateway's limit: "
            "send at most 16 images and one mask"
        )
    elif "maximum size" in lowered:
        message = (
            f"a multipart text field is over {_MAX_FIELD_BYTES // 1024} KiB, the gateway's limit: "
            "send images as file parts"
        )
    else:
        if "boundary" in lowered:
            why = "no boundary in its Content-Type"
        elif "invalid multipart" in lowered:
            why = "it is not multipart data"
        else:
            why = reason.rstrip(".")
        message = f"the multipart body is malformed ({why}): send multipart/form-data as the SDKs do"
    return GatewayError(400, message, code="invalid_multipart")


def _too_large(limit: int) -> GatewayError:
    return GatewayError(
        413,
        f"the request body is over the gateway's {limit:,}-byte limit "
        "(gateway.max_request_bytes): send smaller or fewer images",
        code="request_too_large",
    )


class Body:
    """A request body read within the gateway's limits: `json` or `form`, by content type."""

    def __init__(self, json_data: dict[str, Any] | None = None, form: FormData | None = None) -> None:
        self.json = json_data
        self.form = form

    async def close(self) -> None:
        if self.form is not None:
            await self.form.close()


async def read_body(request: Request, *, limit: int, max_files: int) -> Body:
    """The body of `request`: a JSON object, or a multipart form (uploads spooled to disk)."""
    from starlette.formparsers import MultiPartException, MultiPartParser
    from starlette.requests import Request as StarletteRequest

    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    limited = _Limited(request.receive, limit)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        await limited.drain()
        raise _too_large(limit)
    inner = StarletteRequest(request.scope, limited)
    try:
        if ctype == "multipart/form-data":
            # The parser itself, not `Request.form()`, which turns its errors into an HTTPException.
            try:
                async with contextlib.aclosing(inner.stream()) as stream:
                    parser = MultiPartParser(
                        inner.headers,
                        stream,
                        max_files=max_files,
                        max_fields=_MAX_FIELDS,
                        max_part_size=_MAX_FIELD_BYTES,
                    )
                    form = await parser.parse()
            except MultiPartException as exc:
                await limited.drain()
                raise _bad_multipart(exc.message, max_files) from None
            return Body(form=form)
        if ctype not in ("application/json", ""):
            await limited.drain()
            raise GatewayError(
                415,
                f"content type {ctype!r} is not accepted here: send application/json "
                "(or multipart/form-data to /v1/images/edits)",
                code="unsupported_media_type",
            )
        raw = await inner.body()
    except _TooLarge:
        await limited.drain()
        raise _too_large(limit) from None
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise GatewayError(400, "the body is not valid JSON", code="invalid_json") from None
    if not isinstance(data, dict):
        raise GatewayError(400, "the body must be a JSON object", code="invalid_json")
    return Body(json_data=data)


async def read_upload(upload: UploadFile, *, limit: int, param: str) -> bytes:
    """The bytes of one uploaded image, refused past `limit`."""
    if upload.size is not None and upload.size > limit:
        raise _image_too_large(param, upload.size, limit)
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise _image_too_large(param, None, limit)
    return data


def _image_too_large(param: str, size: int | None, limit: int) -> GatewayError:
    got = f" is {size:,} bytes," if size is not None else ""
    return GatewayError(
        400,
        f"{param}{got} over the gateway's {limit:,}-byte limit for one image "
        "(gateway.max_image_bytes): downscale or recompress it",
        code="image_too_large",
        param=param,
    )


def decode_data_uri(uri: str, *, limit: int, param: str) -> bytes:
    """The bytes of a `data:image/…;base64,…` URI, measured before they are decoded."""
    match = _DATA_URI.match(uri)
    if match is None or ";base64" not in match.group("params").lower():
        raise GatewayError(
            400,
            f"{param} is not a base64 data URI (data:image/png;base64,…)",
            param=param,
            code="invalid_image",
        )
    payload = uri[match.end() :]
    if len(payload) * 3 // 4 > limit + 2:
        raise _image_too_large(param, len(payload) * 3 // 4, limit)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise GatewayError(
            400, f"{param} has invalid base64 data", param=param, code="invalid_image"
        ) from None
    if len(data) > limit:
        raise _image_too_large(param, len(data), limit)
    return data


def form_fields(form: FormData) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """Form fields as a body: `imagerelay[seed]=7` → {"imagerelay": {"seed": "7"}}; `x[]` repeated
    → a list. Returns (fields, uploads in order)."""
    from starlette.datastructures import UploadFile

    body: dict[str, Any] = {}
    uploads: list[tuple[str, Any]] = []
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            uploads.append((key, value))
            continue
        match = _BRACKET.match(key)
        if match is None:
            body[key] = value
            continue
        parts = [match.group(1), *re.findall(r"\[([^\]]*)\]", match.group(2))]
        node: Any = body
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt = parts[i + 1] if not last else None
            if isinstance(node, list):
                if last:
                    node.append(value)
                else:
                    child: Any = [] if nxt == "" else {}
                    node.append(child)
                    node = child
                continue
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, [] if nxt == "" else {})
    return body, uploads


def upload_name(upload: Any, fallback: str) -> str:
    name = str(getattr(upload, "filename", "") or fallback)
    name = re.sub(r"[^\w.+-]+", "-", name.replace("\\", "/").rsplit("/", 1)[-1]).strip("-.")
    return (name or fallback)[:80]
