"""The emulator's HTTP side: routes, and the request handler that logs each request, applies its
scripted fault and writes the dialect's answer (or hangs up)."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import time
import traceback
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from imagerelay.emulator.draw import MARKED
from imagerelay.emulator.hosting import expired_reply
from imagerelay.emulator.wire import (
    FILES,
    Call,
    Dialect,
    DialectError,
    Fault,
    Handler,
    LoggedRequest,
    Reply,
    json_reply,
    parse_json,
    parse_multipart,
)

if TYPE_CHECKING:
    from imagerelay.emulator.server import Emulator

_MALFORMED = b'{"created": 1700000000, "data": [{"url": "http://127.0.0.1/fil'


def _serve_hosted(call: Call) -> Reply:
    hosted = call.emu.files.get(call.path)
    fault = call.fault
    if hosted is None or (fault is not None and fault.expired):
        known = call.emu.files.known(call.path)
        return expired_reply(call.emu.dialects.get(known.provider) if known else None)
    data = hosted.data
    if fault is not None and fault.truncate:
        data = data[: len(data) // 2]
    if fault is not None and fault.malformed:
        data = b"\x00not an image\x00" * 8
    return Reply(200, data, hosted.content_type)


#: (method, pattern, route name, provider, handler), matched in order.
Routes = list[tuple[str, re.Pattern[str], str, str, Handler]]


def dialects(mounts: Mapping[str, str] | None) -> dict[str, Dialect]:
    """The dialect served under each provider's name: every registered provider that has one, and
    each of `mounts` (a provider declared as data → the registered provider whose wire API it
    speaks), e.g. {"localai": "openai"} serves the OpenAI dialect under /localai."""
    from imagerelay.plugins import registry

    found: dict[str, Dialect] = {}
    for plugin in registry().values():
        dialect = plugin.emulator_dialect()
        if dialect is not None:
            found[plugin.name] = dialect
    for name, wire in (mounts or {}).items():
        if wire not in found:
            raise ValueError(
                f"no emulator dialect named {wire!r} for {name!r}; expected one of {tuple(found)}"
            )
        found[name] = found[wire]
    return found


def routes(dialects: Mapping[str, Dialect]) -> Routes:
    routes: Routes = [
        (
            r.method,
            re.compile(re.escape(f"/{mount}") + r.pattern),
            FILES if r.hosted else f"{mount}.{r.name}",
            mount,
            r.handler,
        )
        for mount, dialect in dialects.items()
        for r in dialect.routes
    ]
    routes.append(("GET", re.compile(r"/files/.+"), FILES, FILES, _serve_hosted))
    return routes


def hosted_bytes(emu: Emulator, path: str) -> bytes | None:
    """The bytes a GET of `path` would serve from a hosted route (an image URL, an upload), as it
    stands (no fault applied, nothing logged); None when nothing is hosted there."""
    route, _, handler, params = _route(emu, "GET", path)
    if route != FILES or handler is None:
        return None
    call = Call(emu, route, "GET", path, params, {}, b"", None, [], None)
    try:
        reply = handler(call)
    except DialectError:
        return None
    return reply.body if reply.status == 200 else None


def _generic_error(status: int, fault: Fault | None) -> Reply:
    return json_reply(status, {"error": f"HTTP {status}"})


def _route(emu: Emulator, method: str, path: str) -> tuple[str, str, Handler | None, dict[str, str]]:
    """(route name, provider, handler, path params); an unknown endpoint has no handler."""
    lookup = "GET" if method == "HEAD" else method
    for m, pattern, route, provider, handler in emu.routes:
        match = pattern.fullmatch(path)
        if match and m == lookup:
            return route, provider, handler, match.groupdict()
    provider = path.strip("/").split("/", 1)[0]
    provider = provider if provider in emu.dialects else FILES
    return f"{provider}.unknown", provider, None, {}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, emu: Emulator, address: tuple[str, int]) -> None:
        self.emu = emu
        self.open_connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up early are normal here (timeouts, dropped faults): stay quiet."""


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs expect
    server_version = "imagerelay-emulator"
    timeout = 120  # idle keep-alive connections do not hold a thread forever
    # Small answers after a pause would otherwise wait ~40 ms for delayed ACKs (Nagle).
    disable_nagle_algorithm = True
    server: Server

    def setup(self) -> None:
        super().setup()
        with self.server.conn_lock:
            self.server.open_connections.add(self.connection)

    def finish(self) -> None:
        with self.server.conn_lock:
            self.server.open_connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """No per-request lines on stderr; the request log is `Emulator.requests`."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        emu = self.server.emu
        received = time.monotonic()
        raw = self._read_body()
        split = urlsplit(self.path)
        path = split.path
        query = dict(parse_qsl(split.query))
        method = self.command
        route, provider, handler, params = _route(emu, method, path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        dialect = emu.dialects.get(provider)
        if route == "files" and provider == "files":
            known = emu.files.known(path)
            provider = known.provider if known else "files"
        if dialect is not None and dialect.presented_key is not None:
            key = dialect.presented_key(headers, query)
        else:
            key = _presented_key(headers.get("authorization", ""), dialect)
        key_ok = route == "files" or (dialect is not None and emu.key_ok(provider, key))
        secret = {"authorization", *(dialect.secret_headers if dialect is not None else ())}
        body_json, parts = _parse_body(raw, headers.get("content-type", ""))
        logged = LoggedRequest(
            route=route,
            provider=provider,
            method=method,
            path=path,
            headers={k: ("<redacted>" if k in secret else v) for k, v in headers.items()},
            key_ok=key_ok,
            json=body_json,
            form={p.name: p.data.decode("utf-8", "replace") for p in parts if p.filename is None},
            files=[
                (p.name, p.filename, p.content_type, len(p.data)) for p in parts if p.filename is not None
            ],
            at=received,
        )
        fault = emu._take_fault(route, logged)
        delay = fault.latency if fault is not None and fault.latency is not None else emu.latency
        if delay > 0:
            time.sleep(delay)
        call = Call(emu, route, method, path, params, headers, raw, body_json, parts, fault, query)
        if fault is not None and fault.drop:
            self._drop(self._answer(call, dialect, handler, key, key_ok) if fault.truncate else None)
            return
        reply = self._answer(call, dialect, handler, key, key_ok)
        if fault is not None and fault.answer_after:
            time.sleep(fault.answer_after)  # done already; only the answer is late
        logged.status = reply.status
        self._write(reply, head_only=method == "HEAD")

    def _answer(
        self, call: Call, dialect: Dialect | None, handler: Handler | None, key: str | None, key_ok: bool
    ) -> Reply:
        fault = call.fault
        error_reply = dialect.error_reply if dialect else _generic_error
        try:
            if fault is not None and fault.status is not None:
                reply = error_reply(fault.status, fault)
                if fault.body is not None:
                    reply = _body_reply(fault.status, fault.body, reply.content_type)
            elif fault is not None and fault.malformed and call.route != "files":
                reply = Reply(200, _MALFORMED, "application/json")
            elif fault is not None and fault.body is not None:
                reply = _body_reply(200, fault.body, "application/json")
            elif handler is None:
                reply = dialect.not_found(call.method, call.path) if dialect else expired_reply(None)
            elif not key_ok and dialect is not None:
                reply = dialect.auth_error(key)
            else:
                token = MARKED.set(call.emu.marked)
                try:
                    reply = handler(call)
                finally:
                    MARKED.reset(token)
        except DialectError as exc:
            reply = exc.reply
        except Exception:
            call.emu.errors.append(traceback.format_exc())
            reply = error_reply(500, None)
        if fault is not None:
            reply.headers.update(fault.headers)
        if dialect is not None and dialect.request_ids:
            reply.headers.setdefault("x-request-id", call.emu._request_id())
        return reply

    def _write(self, reply: Reply, head_only: bool = False) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("content-type", reply.content_type)
            self.send_header("content-length", str(len(reply.body)))
            for name, value in reply.headers.items():
                if name.lower() not in ("content-type", "content-length"):
                    self.send_header(name, value)
            self.end_headers()
            if not head_only:
                self.wfile.write(reply.body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True  # the client gave up (e.g. its read timeout fired)

    def _drop(self, partial: Reply | None) -> None:
        """Hang up without an answer; with `partial`, after the headers and half the body."""
        if partial is not None:
            try:
                self.send_response(partial.status)
                self.send_header("content-type", partial.content_type)
                self.send_header("content-length", str(len(partial.body)))
                self.end_headers()
                self.wfile.write(partial.body[: len(partial.body) // 2])
                self.wfile.flush()
            except OSError:
                pass
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True


def _presented_key(authorization: str, dialect: Dialect | None) -> str | None:
    scheme, _, value = authorization.strip().partition(" ")
    schemes = dialect.token_schemes if dialect else ("bearer",)
    if scheme.lower() in schemes and value.strip():
        return value.strip()
    return None


def _parse_body(raw: bytes, content_type: str) -> tuple[Any, list[Any]]:
    kind = content_type.split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        try:
            return None, parse_multipart(raw, content_type)
        except ValueError:
            return None, []
    if raw and (kind == "application/json" or kind.endswith("+json") or not kind):
        try:
            return parse_json(raw), []
        except ValueError:
            return None, []
    return None, []


def _body_reply(status: int, body: dict[str, Any] | str | bytes, content_type: str) -> Reply:
    if isinstance(body, dict):
        return json_reply(status, body, content_type)
    if isinstance(body, str):
        body = body.encode()
        try:
            parse_json(body)
        except ValueError:
            content_type = "text/plain; charset=utf-8"
    return Reply(status, body, content_type)
