"""Running the gateway: the listening socket, uvicorn, and draining on SIGTERM.

The socket is bound before anything else, so a busy port or a refused address is one line and
exit 2. With no gateway key configured the gateway serves every request from this machine, so
it refuses to listen anywhere but on loopback.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import sys
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn

from ..errors import ConfigError, InvalidRequest, UserError

if TYPE_CHECKING:
    from ..settings import Settings
    from .app import Gateway

__all__ = ["app_from_environment", "is_loopback", "serve"]

log = logging.getLogger("imagerelay.gateway")


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it every answer on a kept-alive connection waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        raise UserError(f"cannot listen on {host}:{port} ({reason}): pass another --port or --host") from None
    except (OverflowError, socket.gaierror) as exc:
        sock.close()
        raise InvalidRequest(f"cannot listen on {host}:{port} ({exc}): check --host and --port") from None
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, which tells the gateway to drain the moment SIGTERM (or Ctrl-C) arrives,
    and says where it listens once it does."""

    def __init__(self, config: uvicorn.Config, gateway: Gateway | None, url: str) -> None:
        super().__init__(config)
        self.gateway = gateway
        self.url = url

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn raises the captured SIGTERM again once it has shut down, so the process dies of
        # it; after a clean drain the gateway exits with its own code instead.
        with super().capture_signals():
            yield
            self._captured_signals.clear()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.gateway is not None:
            self.gateway.begin_drain()
        super().handle_exit(sig, frame)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            print(f"imagerelay gateway on {self.url}", file=sys.stderr, flush=True)


def _config(app: object, settings: Settings, **kw: object) -> uvicorn.Config:
    level = settings.log_level
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        log_level=level,
        access_log=level in ("debug", "info"),
        timeout_graceful_shutdown=max(1, round(settings.gateway.drain_seconds)),
        server_header=False,
        lifespan="on",
        **kw,  # type: ignore[arg-type]
    )


def serve(settings: Settings, *, host: str, port: int, workers: int = 1) -> int:
    """Serve until SIGTERM or Ctrl-C, then drain; returns the exit code (0, or 1 when the drain
    deadline cut generations short). Raises UserError for what can be fixed."""
    from .app import Gateway
    from .routes import create_app

    if not settings.gateway.keys and not is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host} with no gateway key configured: anyone who reaches it could "
            "spend your provider credit. Create a key with `imagerelay serve keys new NAME`, "
            "or listen on 127.0.0.1"
        )
    if workers > 1 and port == 0:
        raise InvalidRequest("--workers needs a fixed --port (0 picks a different one per worker)")
    _setup_logging(settings.log_level)
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}"
    try:
        if workers == 1:
            gateway = Gateway(settings)  # config, output directory and ledger checked before serving
            server = _Server(_config(create_app(gateway), settings), gateway, url)
            server.run(sockets=[sock])
            if gateway.cancelled:
                print(
                    f"imagerelay gateway: {gateway.cancelled} generation(s) cut short by the drain deadline",
                    file=sys.stderr,
                )
                return 1
            return 0
        Gateway(settings).ledger.close()  # fail here, once, rather than in every worker
        os.environ["IMAGERELAY_ENV"] = settings.env
        # The workers read their settings from the environment: --out reaches them this way.
        os.environ["IMAGERELAY_OUTPUT__DIR"] = str(settings.output.dir)
        from uvicorn.supervisors import Multiprocess

        config = _config(
            "imagerelay.gateway.server:app_from_environment", settings, factory=True, workers=workers
        )
        print(f"imagerelay gateway on {url} ({workers} workers)", file=sys.stderr, flush=True)
        Multiprocess(config, sockets=[sock]).run()
        return 0
    finally:
        with contextlib.suppress(OSError):
            sock.close()


def app_from_environment() -> object:
    """The application of one worker process (`--workers N`): settings from the environment."""
    from ..settings import load_settings
    from .app import Gateway
    from .routes import create_app

    settings = load_settings()
    _setup_logging(settings.log_level)
    return create_app(Gateway(settings))


def _setup_logging(level: str) -> None:
    logger = logging.getLogger("imagerelay")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("imagerelay: %(levelname)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level.upper())
