"""Shared fixtures: no test reaches the internet, and a fresh emulator per test that wants one."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Hermetic by default: only the built-in providers, even where a provider plugin is installed (the
# plugin's own tests ask for it by name).
os.environ.setdefault("IMAGERELAY_LOAD_PLUGINS", "")

from imagerelay.emulator import Emulator
from tests.keys import KEY_VARS, TEST_KEYS

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class InternetAccessError(RuntimeError):
    """A test tried to reach a host other than this machine."""


def _is_local(host: object) -> bool:
    if host is None or host == "" or host == b"":
        return True
    if isinstance(host, bytes):
        host = host.decode("idna", "replace")
    if not isinstance(host, str):
        return False
    host = host.strip("[]").split("%", 1)[0]
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refuse(host: object) -> InternetAccessError:
    return InternetAccessError(
        f"the test tried to reach the internet ({host!r}); tests may only use 127.0.0.1"
    )


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse every connection and name lookup that is not for this machine."""
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo
    real_create_connection = socket.create_connection

    def check_address(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
            raise _refuse(address[0])

    def connect(self: socket.socket, address: Any) -> None:
        check_address(self, address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check_address(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_local(host):
            raise _refuse(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        if not _is_local(address[0]):
            raise _refuse(address[0])
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket, "create_connection", create_connection)


@pytest.fixture
def test_keys() -> dict[str, str]:
    """The API keys the `emulator` fixture accepts, by provider."""
    return dict(TEST_KEYS)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A started emulator with the TEST_KEYS, 60 s URLs; stopped after, and it must not have crashed."""
    emu = Emulator(keys=TEST_KEYS, url_ttl=60, marked=False).start()
    try:
        yield emu
    finally:
        emu.stop()
    if emu.errors:
        pytest.fail("the emulator crashed while answering:\n" + "\n".join(emu.errors))


@pytest.fixture
def cli_emulator(emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Emulator:
    """The `emulator`, with the CLI pointed at it through the environment; the cwd is `tmp_path`.

    For every provider: its base URL, 6000 requests a minute and its key from TEST_KEYS; retries
    back off 0.01 s at first and 0.02 s at most. A test adds what it needs with `monkeypatch.setenv`.
    """
    monkeypatch.chdir(tmp_path)
    for p, var in KEY_VARS.items():
        prefix = f"IMAGERELAY_PROVIDERS__{p.upper()}__"
        monkeypatch.setenv(prefix + "BASE_URL", emulator.base_url(p))
        monkeypatch.setenv(prefix + "MAX_REQUESTS_PER_MINUTE", "6000")
        monkeypatch.setenv(var, TEST_KEYS[p])
    monkeypatch.setenv("IMAGERELAY_RETRY__BACKOFF_INITIAL", "0.01")
    monkeypatch.setenv("IMAGERELAY_RETRY__BACKOFF_MAX", "0.02")
    return emulator
