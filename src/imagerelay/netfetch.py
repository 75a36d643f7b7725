"""Fetch a reference image from a URL without becoming a proxy into the local network.

A URL given as a reference is fetched by this machine, so a URL pointing at 127.0.0.1, a LAN
address or the cloud metadata service (169.254.169.254) would let whoever writes the request read
internal services. Every hop (redirects are followed by hand, at most three) is resolved and each
resolved address checked before any request is sent; the body is streamed and cut off past the
byte limit.

Residual risk: httpx resolves the name again when it connects, so a DNS server that answers
differently the second time (DNS rebinding) can still slip through. Closing that needs
connecting to the vetted address itself, which the shared client does not support.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import TYPE_CHECKING

from .errors import InvalidReference
from .imaging import human_bytes, human_bytes_over

if TYPE_CHECKING:
    import httpx

__all__ = ["MAX_REDIRECTS", "fetch_image_url", "shown_url"]

MAX_REDIRECTS = 3

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# The instance-metadata service of AWS, GCP, Azure and others (IPv4 and AWS's IPv6 form).
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_ALLOW_HINT = "use a public https URL, or set references.allow_private_urls = true"


def shown_url(url: str) -> str:
    """The URL for a message: without a query string (signed URLs carry tokens there) or a
    `user:password@` part, capped."""
    base, sep, _ = url.partition("?")
    scheme, slashes, rest = base.partition("://")
    authority, slash, path = rest.partition("/")
    if slashes and "@" in authority:
        base = f"{scheme}://…@{authority.rpartition('@')[2]}{slash}{path}"
    base = base if len(base) <= 120 else base[:117] + "..."
    return base + ("?…" if sep else "")


def _refusal(ip: IPAddress) -> str | None:
    """Why a request to `ip` is refused ("loopback", "private" …), or None if it is public."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 reaches 10.0.0.1
    if ip in _METADATA:
        return "cloud metadata"
    for kind, hit in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("non-public", not ip.is_global),  # e.g. 100.64.0.0/10, shared carrier-grade NAT space
    ):
        if hit:
            return kind
    return None


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # An IPv6 scope ("fe80::1%eth0") is not part of the address.
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


async def _vet(url: httpx.URL, *, allow_private: bool, what: str) -> None:
    """Refuse a URL whose scheme or resolved addresses are not allowed."""
    if url.scheme not in ("https", "http"):
        raise InvalidReference(
            f"{what} must be an https URL, not {url.scheme}: pass an https URL or a file path"
        )
    if not url.host:
        raise InvalidReference(f"{what} has no host name: check the URL")
    if not allow_private:
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = await _resolve(url.host, port)
        except (socket.gaierror, UnicodeError) as exc:
            raise InvalidReference(f"{what}: host '{url.host}' cannot be resolved: check the URL") from exc
        for ip in addresses:
            kind = _refusal(ip)
            if kind is not None:
                shown = getattr(ip, "ipv4_mapped", None) or ip  # ::ffff:10.0.0.1 reads as 10.0.0.1
                raise InvalidReference(f"{what} points to a {kind} address ({shown}): {_ALLOW_HINT}")
        if url.scheme == "http":
            raise InvalidReference(f"{what} uses plain http: use an https URL")


async def fetch_image_url(
    url: str,
    *,
    client: httpx.AsyncClient,
    max_bytes: int,
    allow_private: bool = False,
    timeout: float = 30,
    label: str = "reference",
) -> tuple[bytes, str]:
    """Download an image from `url`; return (bytes, content type).

    Only https, unless `allow_private` (which also permits plain http and local addresses, for the
    local emulator and intranets). `timeout` bounds the whole download, redirects included. Every
    problem raises InvalidReference with one line naming the URL (query string left out) and the fix.
    """
    what = f"{label} URL '{shown_url(url)}'"
    try:
        async with asyncio.timeout(timeout):
            return await _fetch(
                url,
                client=client,
                max_bytes=max_bytes,
                allow_private=allow_private,
                timeout=timeout,
                what=what,
            )
    except TimeoutError as exc:
        raise InvalidReference(
            f"{what} did not answer within {timeout:g} s: "
            "check the URL, or download the image and pass the file"
        ) from exc


async def _fetch(
    url: str, *, client: httpx.AsyncClient, max_bytes: int, allow_private: bool, timeout: float, what: str
) -> tuple[bytes, str]:
    import httpx

    try:
        current = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InvalidReference(f"{what} is not a valid URL: check it") from exc
    location = url  # as the last redirect gave it, for messages
    for hop in range(MAX_REDIRECTS + 1):
        hop_what = what if hop == 0 else f"{what} (redirected to '{shown_url(location)}')"
        await _vet(current, allow_private=allow_private, what=hop_what)
        try:
            async with client.stream("GET", current, follow_redirects=False, timeout=timeout) as resp:
                if resp.is_redirect:
                    if hop == MAX_REDIRECTS:
                        raise InvalidReference(
                            f"{what} redirects more than {MAX_REDIRECTS} times: pass the final image URL"
                        )
                    location = resp.headers["location"]
                    current = resp.url.join(location)
                    continue
                if not resp.is_success:
                    reason = f" {resp.reason_phrase}" if resp.reason_phrase else ""
                    raise InvalidReference(
                        f"{what} answered HTTP {resp.status_code}{reason}: "
                        "check that the URL works in a browser"
                    )
                ctype = resp.headers.get("content-type", "").split(";", 1)[0].strip().lower()
                if not ctype.startswith("image/"):
                    raise InvalidReference(
                        f"{what} returned {ctype or 'no content type'}, not an image: "
                        "pass a direct link to the image file"
                    )
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    size, cap = human_bytes_over(int(declared), max_bytes)
                    raise InvalidReference(f"{what} is {size}, over the {cap} limit: use a smaller image")
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > max_bytes:
                        raise InvalidReference(
                            f"{what} sent more than {human_bytes(max_bytes)} (the limit); "
                            "stopped downloading: use a smaller image"
                        )
                return bytes(body), ctype
        except httpx.TimeoutException as exc:
            raise TimeoutError from exc  # reported once, by fetch_image_url
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL: a bad redirect Location
            detail = str(exc).replace("\n", " ") or type(exc).__name__
            raise InvalidReference(f"{what} could not be fetched ({detail}): check the URL") from exc
    raise AssertionError("unreachable: the loop returns or raises")
