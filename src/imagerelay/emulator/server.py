"""The emulator's core: its state, lifecycle, fault scripts and the request log (the HTTP side is
`handler`)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from imagerelay.emulator.handler import Server, dialects, hosted_bytes, routes
from imagerelay.emulator.hosting import FileStore
from imagerelay.emulator.listings import Listings
from imagerelay.emulator.wire import Fault, LoggedRequest


class Emulator:
    """Every registered provider's image API (those with a dialect) on 127.0.0.1, each under
    /<provider>, with expiring URLs and scripted faults. `mounts` serves more providers with the
    dialect of the wire API they reuse, e.g. {"localai": "openai"}."""

    def __init__(
        self,
        keys: Mapping[str, str | Iterable[str]] | None = None,
        url_ttl: float = 600.0,
        latency: float = 0.0,
        prediction_seconds: float = 0.0,
        host: str = "127.0.0.1",
        mounts: Mapping[str, str] | None = None,
        marked: bool = True,
    ) -> None:
        #: The dialect of each provider served, by the name it is served under.
        self.dialects = dialects(mounts)
        self.routes = routes(self.dialects)
        self.keys: dict[str, frozenset[str]] | None = (
            None
            if keys is None
            else {p: frozenset([k] if isinstance(k, str) else k) for p, k in keys.items()}
        )
        self.url_ttl = url_ttl
        self.latency = latency
        self.prediction_seconds = prediction_seconds
        self.host = host
        #: Every image it makes says it is emulator output (`draw.MARKER`), so that no relay ever
        #: books it as real spend. Tests standing in for the real APIs pass False.
        self.marked = marked
        self.files = FileStore(url_ttl)
        #: What each dialect keeps across requests, by dialect name (mounts share their dialect's).
        self._states = {d.name: d.state() for d in self.dialects.values() if d.state is not None}
        #: The providers' model listings; tests edit them to script drift (see `listings`).
        self.listings = Listings(self.dialects.values())
        self.errors: list[str] = []  # tracebacks of emulator bugs (answered as 500)
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[list[Any]]] = {}
        self._log: list[LoggedRequest] = []
        self._ids = 0
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle
    def start(self, port: int = 0) -> Emulator:
        """Serve in a daemon thread; port 0 picks a free port."""
        if self._server is not None:
            raise RuntimeError("emulator already started")
        self._server = Server(self, (self.host, port))
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="imagerelay-emulator",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and hang up on any open connection."""
        server, self._server = self._server, None
        if server is None:
            return
        stopper = threading.Thread(target=server.shutdown, daemon=True)
        stopper.start()
        # A connection wakes the serving loop at once, rather than at its next poll.
        with (
            contextlib.suppress(OSError),
            socket.create_connection((self.host, int(server.server_address[1])), timeout=0.5),
        ):
            pass
        stopper.join()
        with server.conn_lock:
            for conn in list(server.open_connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._thread = None

    def __enter__(self) -> Emulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # addresses
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("emulator not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Root URL, e.g. http://127.0.0.1:8765."""
        return f"http://{self.host}:{self.port}"

    @property
    def providers(self) -> tuple[str, ...]:
        """The providers served, in registry order."""
        return tuple(self.dialects)

    def base_url(self, provider: str) -> str:
        """API root of one provider, e.g. http://127.0.0.1:8765/xai/v1."""
        if provider not in self.dialects:
            raise ValueError(f"unknown provider {provider!r}; expected one of {self.providers}")
        return f"{self.url}/{provider}/{self.dialects[provider].version}"

    # scripting and inspection
    def script(self, route: str, *faults: Fault) -> None:
        """Queue faults for a route, first in first out; each applies to `fault.times` requests."""
        with self._lock:
            queue = self._scripts.setdefault(route, deque())
            for fault in faults:
                queue.append([fault, fault.times])

    def _take_fault(self, route: str, logged: LoggedRequest) -> Fault | None:
        """Log the request and pop the fault (if any) that applies to it, atomically."""
        with self._lock:
            self._log.append(logged)
            queue = self._scripts.get(route)
            if not queue:
                return None
            entry = queue[0]
            fault: Fault = entry[0]
            if entry[1] is not None:
                entry[1] -= 1
                if entry[1] <= 0:
                    queue.popleft()
            return fault

    @property
    def requests(self) -> list[LoggedRequest]:
        """Every request received so far, in order."""
        with self._lock:
            return list(self._log)

    def requests_for(self, route: str) -> list[LoggedRequest]:
        with self._lock:
            return [r for r in self._log if r.route == route]

    def expire_urls(self) -> None:
        """Every hosted image URL handed out so far stops working now (uploads stay)."""
        self.files.expire_all()

    def reset(self) -> None:
        """Forget scripts, the request log, predictions, uploads and hosted files."""
        with self._lock:
            self._scripts.clear()
            self._log.clear()
        self.files.clear()
        for state in self._states.values():
            state.clear()
        self.listings.reset()
        self.errors.clear()

    # helpers for the dialects
    def key_ok(self, provider: str, key: str | None) -> bool:
        if not key:
            return False
        if self.keys is None or provider not in self.keys:
            return True
        return key in self.keys[provider]

    def _request_id(self) -> str:
        with self._lock:
            self._ids += 1
            return f"req_{self._ids:08d}{id(self) & 0xFFFFFF:06x}"

    def host_file(self, provider: str, data: bytes, content_type: str, name: str) -> str:
        """Serve bytes at a new expiring URL; returns the absolute URL."""
        return self.url + self.files.put(provider, data, content_type, name)

    def fetch_local(self, url: str) -> bytes | None:
        """Bytes behind a URL this emulator serves (hosted files, uploads); None for any other URL."""
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "localhost", self.host):
            return None
        if parts.port != self.port:
            return None
        return hosted_bytes(self, parts.path)

    def state(self, dialect: str) -> Any:
        """What the dialect `dialect` keeps across requests, e.g. `emu.state("replicate").predictions`."""
        try:
            return self._states[dialect]
        except KeyError:
            raise ValueError(f"dialect {dialect!r} keeps no state; these do: {tuple(self._states)}") from None


def serve(port: int = 8765, host: str = "127.0.0.1", **kw: Any) -> None:
    """Run an emulator in the foreground until Ctrl-C, printing each provider's API root."""
    emu = Emulator(host=host, **kw).start(port)
    try:
        print(f"imagerelay emulator on {emu.url}")
        for provider in emu.providers:
            print(f"  {provider:<10} {emu.base_url(provider)}")
        print("Ctrl-C to stop.", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
