"""A plain request (`generate`, the library) run again into the same output directory: what an
earlier run of it that was killed left in flight is re-attached to, never paid for twice.

A batch records each run of an item and each Replicate prediction id the moment it exists; a
plain request does the same in the output directory's ledger, under a key of its own made from
the request (prompt, parameters, the references' bytes, sandbox or not). Run again after a kill
(SIGKILL, a power cut), it re-attaches to the recorded prediction by id — or, killed before the
create answered, finds it in `GET /v1/predictions` — instead of creating another.

Only one live run of a request may do that: two identical requests running at once must not
share one prediction. Each run holds an OS file lock named by its key (released by dying), and
what a run finds unsettled is resumed only when it got the lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .backends.base import Adopt
from .receipt import public_request

if TYPE_CHECKING:
    from .hooks import PredictionCreated, RunHooks
    from .ledger import Ledger
    from .references import Reference
    from .request import ImageRequest

__all__ = ["KEY_PREFIX", "Rerun", "request_key"]

log = logging.getLogger("imagerelay")

#: Ledger item keys of plain requests start with this (batch items' keys never do).
KEY_PREFIX = "request:"


def request_key(req: ImageRequest, refs: list[Reference], *, sandbox: bool) -> str:
    """The ledger key of a plain request: the same request (same reference bytes) gets the same key."""
    body = {
        "request": public_request(req),
        "references": [r.sha256 for r in refs],
        "sandbox": sandbox,
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()
    return KEY_PREFIX + digest[:32]


@dataclass
class Rerun:
    """One plain request's run as the ledger records it; see the module docs."""

    ledger: Ledger
    #: Held around every use of the ledger: the relay records receipts from worker threads too.
    lock: AbstractContextManager[object]
    key: str
    receipt_id: str
    #: {provider:model: prediction id} an earlier, killed run of this request left running.
    resume: dict[str, str]
    adopt: Adopt | None
    _lock_fd: int | None = None

    @classmethod
    def begin(
        cls,
        ledger: Ledger,
        lock: AbstractContextManager[object],
        key: str,
        receipt_id: str,
        *,
        n: int,
        estimate_usd: float,
        planned: str | None,
    ) -> Rerun:
        """Record that this run starts; with the key's lock, what a killed earlier run left."""
        fd = _lock(ledger.directory, key)
        resume: dict[str, str] = {}
        adopt = None
        try:
            with lock:
                if fd is not None:
                    resume = ledger.resumable_predictions(key)
                    since = ledger.interrupted_since(key)
                    adopt = Adopt(since, ledger.known_predictions()) if since is not None else None
                ledger.start_run(key, receipt_id, n=n, estimate_usd=estimate_usd, planned=planned)
        except sqlite3.Error as exc:
            # Nothing is spent yet, and the receipt is still written: go on, unrecorded.
            log.warning("the ledger %s did not record the start of this request: %s", ledger.path, exc)
        if resume:
            log.info("re-attaching to prediction(s) a killed run of this request left: %s", resume)
        return cls(ledger, lock, key, receipt_id, resume, adopt, fd)

    def hooks(self, hooks: RunHooks) -> RunHooks:
        """`hooks` that record each prediction id the moment it exists, and adopt what was left."""

        def on_prediction(event: PredictionCreated) -> None:
            with self.lock:
                self.ledger.record_prediction(self.receipt_id, event.model, event.id)

        return replace(hooks, on_prediction=on_prediction, adopt=self.adopt)

    def end(self) -> None:
        """Settle the earlier runs of this request (once this one holds the lock) and let go."""
        if self._lock_fd is None:
            return
        try:
            with self.lock:
                if self.ledger.settled(self.receipt_id):
                    self.ledger.settle_runs(self.key, keep=self.receipt_id)
        except sqlite3.Error as exc:
            log.warning("the ledger %s could not settle earlier runs: %s", self.ledger.path, exc)
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)
        self._lock_fd = None


def _lock(directory: Path, key: str) -> int | None:
    """An exclusive OS lock on `key` in `directory`, or None when another live run holds it (or
    the platform has no such locks: then nothing is resumed, as before).

    The lock files live in the temp directory, not the output directory, which holds only images,
    receipts and the ledger."""
    try:
        import fcntl
    except ImportError:
        return None
    import tempfile

    where = f"{directory.resolve()}\0{key}".encode()
    name = hashlib.sha256(where).hexdigest()[:32]
    folder = Path(tempfile.gettempdir()) / f"imagerelay-{os.getuid()}-locks"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(folder / name, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd
