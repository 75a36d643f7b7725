"""Blocking work — decoding, verifying, fsynced writes, receipts — run in worker threads.

On the event loop, one image's disk work would stall every other request in flight (an fsync
waits on the disk for milliseconds). Hashing, zlib, Pillow's decoders and file writes release the
GIL, so the loop serves other requests meanwhile, and on a machine with more than one core the
work even runs beside them.

A cancellation (Ctrl-C, a caller giving up) does not stop work already handed to a thread: a paid
image being written must end on disk and in its receipt. `in_thread` therefore lets it finish and
hands its result to `then` before the cancellation goes on.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = ["in_thread"]

T = TypeVar("T")

#: Few threads: the disk serialises writes anyway, and each thread holds an image in memory.
_WORKERS = 4
_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """One pool for the process, whatever event loop asks (`asyncio.run` may be called again)."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="imagerelay-io")
        return _pool


async def in_thread(fn: Callable[[], T], *, then: Callable[[T], None] | None = None) -> T:
    """`fn()` in a worker thread; then `then(result)` back on the event loop's thread.

    If the caller is cancelled meanwhile, `fn` still runs to its end (the loop waits for it: it
    takes milliseconds) and `then` still sees its result, before `CancelledError` is re-raised
    (an error `fn` raised then is dropped: the cancellation is what the caller must see).
    """
    job = _executor().submit(fn)
    try:
        # shield: a cancelled wrapper future would otherwise cancel `job` if it has not started.
        result = await asyncio.shield(asyncio.wrap_future(job))
    except asyncio.CancelledError:
        if job.exception() is None and then is not None:
            then(job.result())
        raise
    if then is not None:
        then(result)
    return result
