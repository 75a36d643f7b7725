"""Hosted image files: the temporary URLs providers hand out (xAI's, Replicate's), kept in memory."""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from imagerelay.emulator.wire import Dialect, Reply, json_reply

# Bounded so a long sandbox session cannot grow without limit; the oldest files go first.
MAX_FILES = 512
MAX_BYTES = 512 * 1024 * 1024


@dataclass
class Hosted:
    data: bytes
    content_type: str
    provider: str  # the name it was handed out under: its dialect says how it answers once expired
    expires_at: float


class FileStore:
    """Path → bytes with an expiry time; thread-safe."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._files: OrderedDict[str, Hosted] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def put(self, provider: str, data: bytes, content_type: str, name: str) -> str:
        """Store bytes; returns the path (under /files/) that serves them."""
        token = secrets.token_hex(12)
        path = f"/files/{token}/{name}" if "/" not in name else f"/files/{token}-{name.replace('/', '-')}"
        with self._lock:
            self._files[path] = Hosted(data, content_type, provider, time.monotonic() + self.ttl)
            self._size += len(data)
            while self._files and (len(self._files) > MAX_FILES or self._size > MAX_BYTES):
                _, old = self._files.popitem(last=False)
                self._size -= len(old.data)
        return path

    def get(self, path: str) -> Hosted | None:
        """The file at `path` if it is still valid."""
        with self._lock:
            hosted = self._files.get(path)
        if hosted is None or time.monotonic() >= hosted.expires_at:
            return None
        return hosted

    def known(self, path: str) -> Hosted | None:
        """The file at `path` whether expired or not (to answer in its provider's style)."""
        with self._lock:
            return self._files.get(path)

    def expire_all(self) -> None:
        now = time.monotonic()
        with self._lock:
            for hosted in self._files.values():
                hosted.expires_at = min(hosted.expires_at, now)

    def clear(self) -> None:
        with self._lock:
            self._files.clear()
            self._size = 0


def expired_reply(dialect: Dialect | None) -> Reply:
    """How an expired or unknown hosted URL answers: as the dialect that handed it out says."""
    if dialect is not None and dialect.expired_file is not None:
        return dialect.expired_file()
    return json_reply(404, {"detail": "Not found."})
