"""What "this machine only" means when no gateway key is configured.

Listening on loopback keeps other machines out, but not the web pages this machine's browser
shows: a page may POST a form to `http://127.0.0.1:8080` (a CORS "simple" request, sent without
asking), or have its own domain resolve to 127.0.0.1 (DNS rebinding) and then read the answers.
Either would spend the user's provider credit. So, with no key, a request is served only if its
`Host` names this machine and it carries no `Origin` other than a loopback one. Programs (the
SDKs, curl) send no `Origin`; pages a browser shows always do on a POST.

With gateway keys configured the key is the guard: a page cannot attach a bearer without a CORS
preflight the gateway never grants, and a gateway behind a reverse proxy sees the proxy's `Host`.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .errors import GatewayError
from .server import is_loopback

__all__ = ["check_local"]


def _host_of(value: str) -> str | None:
    """The host of a Host header value (`name`, `name:port`, `[v6]:port`), or None if malformed."""
    try:
        return urlsplit("//" + value.strip()).hostname
    except ValueError:
        return None


def _shown(value: str) -> str:
    return repr(value[:80])


def check_local(host: str | None, origin: str | None) -> None:
    """Raise a 403 unless a keyless request comes from this machine's programs, not a web page."""
    if host is not None:
        name = _host_of(host)
        if name is None or not is_loopback(name):
            raise GatewayError(
                403,
                f"refused: Host {_shown(host)} is not this machine, and with no gateway key configured "
                "only requests to 127.0.0.1, localhost or [::1] are served (this stops DNS rebinding): "
                "call http://127.0.0.1:PORT, or configure a gateway key",
                code="host_not_allowed",
            )
    if origin is not None:
        parts = urlsplit(origin.strip()) if origin.strip() != "null" else None
        name = parts.hostname if parts is not None and parts.scheme in ("http", "https") else None
        if name is None or not is_loopback(name):
            raise GatewayError(
                403,
                f"refused: a web page ({_shown(origin)}, its Origin header) may not use this gateway "
                "with no gateway key configured: call it from a program, which sends no Origin, or "
                "from a page on localhost, or configure a gateway key",
                code="origin_not_allowed",
            )
