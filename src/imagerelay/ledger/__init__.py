"""The ledger: one SQLite file per output directory recording every generation, and batch state.

`DIR/imagerelay.sqlite3` (WAL mode, synchronous=FULL) holds

- `generations`: one row per finished receipt (single `generate` runs and batch items alike),
  the receipt itself as JSON, its cost and date — what `history` and `gallery` read;
- `images`: every saved image, recorded the moment it is on disk (before its receipt exists);
- `items` and `runs`: each batch item's state (pending, running, done, failed), and each call
  made for it;
- `predictions`: Replicate prediction ids, recorded the moment they are created, so that a
  batch killed mid-call re-attaches to the prediction instead of paying for a second one;
- `gateway_requests`: each gateway request that came with an `Idempotency-Key`, recorded before
  it is sent on, with the gateway key that asked (its name, never the key), so a client that
  asks again gets the first answer instead of paying twice (a sandbox record answers only the
  sandbox); `generations.gateway_key` names the key that spent each row;
- `gateway_holds`: what each gateway request in flight holds of its key's budget (with the
  process that holds it), so that every worker of the gateway sees what the others committed.

Every write is one transaction, so a crash (even SIGKILL) leaves the ledger as it was after the
last one. Paths are stored relative to the directory, so the directory can be moved.

The parts: `db` (connection, lock, transactions), `schema` (tables and migrations), `history`
(finished receipts and what reads them), `batchstate` (items, runs, predictions, batch spend),
`recovery` (rescued and orphaned images), `gateway` (idempotent gateway requests, budget holds).
"""

from __future__ import annotations

from .batchstate import BatchState, ItemRecord
from .db import LEDGER_NAME, LedgerError
from .gateway import GatewayRequests
from .history import Generation, History
from .recovery import Recovery

__all__ = ["LEDGER_NAME", "Generation", "ItemRecord", "Ledger", "LedgerError"]


class Ledger(History, BatchState, Recovery, GatewayRequests):
    """The ledger of one output directory. Use from one thread (the event loop's), or open it with
    `threads=True` and use it from one thread at a time."""
