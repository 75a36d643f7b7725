"""Types and helpers shared by the emulator's core and its three provider dialects."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imagerelay.emulator.server import Emulator

JSON = dict[str, Any]


@dataclass
class Fault:
    """One scripted misbehaviour for a route; see the module docs of `imagerelay.emulator`."""

    status: int | None = None
    body: dict[str, Any] | str | bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    latency: float | None = None
    drop: bool = False
    malformed: bool = False
    empty: bool = False
    blocked: bool = False
    truncate: bool = False
    expired: bool = False
    prediction: str | None = None
    #: Gemini: the candidate ends with this finishReason (IMAGE_SAFETY, NO_IMAGE …) and no content.
    finish: str | None = None
    error: str | None = None
    seconds: float | None = None
    #: Do the work at once, then hold the answer this many seconds (a create whose answer is slow).
    answer_after: float | None = None
    times: int | None = 1


@dataclass
class LoggedRequest:
    """A request as the emulator received it (the Authorization value is redacted)."""

    route: str
    provider: str
    method: str
    path: str
    headers: dict[str, str]
    key_ok: bool
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    files: list[tuple[str, str, str, int]] = field(default_factory=list)
    status: int | None = None  # None: no response was sent (dropped)
    at: float = 0.0


@dataclass
class Part:
    """One part of a multipart/form-data body."""

    name: str
    filename: str | None
    content_type: str
    data: bytes


@dataclass
class Reply:
    """An HTTP answer, built by a dialect and written by the core."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Call:
    """Everything a dialect handler needs to answer one request."""

    emu: Emulator
    route: str
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    raw: bytes
    json: Any
    parts: list[Part]
    fault: Fault | None
    query: dict[str, str] = field(default_factory=dict)  # the query string (last value wins)

    @property
    def form(self) -> dict[str, str]:
        """Text fields of a multipart body (last one wins)."""
        return {p.name: p.data.decode("utf-8", "replace") for p in self.parts if p.filename is None}

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


def json_reply(status: int, body: Any, content_type: str = "application/json", **headers: str) -> Reply:
    """A JSON reply; header names given as keywords use '_' for '-'."""
    data = json.dumps(body, separators=(",", ":")).encode()
    return Reply(status, data, content_type, {k.replace("_", "-"): v for k, v in headers.items()})


def parse_json(raw: bytes) -> Any:
    """Parse a JSON body; raises ValueError when it is not JSON."""
    return json.loads(raw.decode("utf-8"))


def parse_multipart(raw: bytes, content_type_header: str) -> list[Part]:
    """Split a multipart/form-data body; raises ValueError when it is not one."""
    msg = Message()
    msg["content-type"] = content_type_header
    boundary = msg.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise ValueError("multipart body without a boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    chunks = raw.split(delimiter)
    if len(chunks) < 3:
        raise ValueError("multipart body without parts")
    parts: list[Part] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk.removeprefix(b"\r\n")
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("multipart part without headers")
        part_headers = Message()
        for line in head.decode("utf-8", "replace").split("\r\n"):
            header, colon, value = line.partition(":")
            if colon:
                part_headers[header.strip()] = value.strip()
        name = part_headers.get_param("name", header="content-disposition")
        filename = part_headers.get_filename()
        parts.append(
            Part(
                name=name if isinstance(name, str) else "",
                filename=filename if isinstance(filename, str) else None,
                content_type=part_headers.get("content-type", "application/octet-stream"),
                data=data.removesuffix(b"\r\n"),
            )
        )
    return parts


_DATA_URI = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*?);base64,(?P<data>.*)$", re.S
)


def decode_data_uri(uri: str) -> tuple[str, bytes]:
    """(mime type, bytes) of a base64 data URI; raises ValueError otherwise."""
    m = _DATA_URI.match(uri)
    if not m:
        raise ValueError("not a base64 data URI")
    try:
        data = base64.b64decode(m.group("data"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("invalid base64 in data URI") from exc
    return (m.group("mime") or "application/octet-stream").lower(), data


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


Handler = Callable[[Call], Reply]
#: The route name of every hosted image or upload URL, whichever dialect serves it.
FILES = "files"


@dataclass(frozen=True)
class Route:
    """One endpoint of a dialect: `pattern` is matched below the mount (`/xai` for the provider of
    that name); the route is logged and scripted as `<mount>.<name>`, or as `files` when it serves
    `hosted` bytes (an upload's URL), like every hosted image."""

    method: str
    pattern: str
    name: str
    handler: Handler
    hosted: bool = False


@dataclass(frozen=True)
class Dialect:
    """How one provider shapes the answers that do not depend on the endpoint."""

    name: str
    auth_error: Callable[[str | None], Reply]  # the presented key (None: none sent)
    error_reply: Callable[[int, Fault | None], Reply]  # a scripted status
    not_found: Callable[[str, str], Reply]  # (method, path) of an unknown endpoint
    token_schemes: tuple[str, ...] = ("bearer",)
    request_ids: bool = False  # OpenAI stamps every answer with x-request-id
    #: Where the key is when it is not `Authorization: <scheme> <key>`: (headers, query) → key.
    presented_key: Callable[[Mapping[str, str], Mapping[str, str]], str | None] | None = None
    #: Headers besides Authorization that carry the key: never written to the request log.
    secret_headers: tuple[str, ...] = ()
    #: The API version in the root `Emulator.base_url` hands out (…/<provider>/<version>).
    version: str = "v1"
    #: Every endpoint it answers.
    routes: tuple[Route, ...] = ()
    #: How an expired or unknown hosted URL it handed out answers (None: 404 JSON).
    expired_file: Callable[[], Reply] | None = None
    #: What it keeps across requests (Replicate's predictions and uploads): a factory called once
    #: per emulator, for an object with `clear()` (`Emulator.reset`); see `Emulator.state`.
    state: Callable[[], Any] | None = None
    #: What it lists (models, collections …) as the provider lists it today: a factory by the name
    #: the emulator keeps it under (`emu.listings.<name>`), usually the dialect's own name.
    listings: Mapping[str, Callable[[], Any]] = field(default_factory=dict)


class DialectError(Exception):
    """Raised by a handler to answer with a ready-made error reply."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.status)
        self.reply = reply
