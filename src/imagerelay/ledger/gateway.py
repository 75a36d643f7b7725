"""The gateway's rows: requests sent with an `Idempotency-Key` (recorded before anything is sent
on), and what requests in flight hold of a gateway key's budget."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime

from .db import LedgerBase, now_iso, synchronous, transaction

__all__ = ["BudgetWindow", "GatewayRequests", "KeyStanding"]


@dataclass(frozen=True)
class BudgetWindow:
    """One budget of a gateway key: `usd` to spend from `since` on."""

    usd: float
    since: datetime


@dataclass(frozen=True)
class KeyStanding:
    """Where a gateway key stands in one budget window: spent, and held by requests in flight."""

    budget: float
    spent: float
    held: float
    holds: int  # requests in flight holding part of it

    @property
    def left(self) -> float:
        """USD still free to hold (never below 0)."""
        return max(0.0, self.budget - self.spent - self.held)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process (EPERM): alive
        return True
    return True


class GatewayRequests(LedgerBase):
    """`gateway_requests`: a client that asks again gets the first answer instead of paying twice;
    `gateway_holds`: the budget each request in flight holds, so that every worker of a gateway
    sees what the others have committed."""

    # -- Idempotency-Key ------------------------------------------------------------------------

    def start_gateway_request(
        self,
        receipt_id: str,
        *,
        gateway_key: str,
        idempotency_key: str | None,
        fingerprint: str,
        sandbox: bool = False,
    ) -> None:
        """Record a gateway request before anything is sent. Raises `sqlite3.IntegrityError` when
        the key already used this `idempotency_key` in this kind of environment (sandbox or real)."""
        with transaction(self._conn):
            self._conn.execute(
                "INSERT INTO gateway_requests (receipt_id, gateway_key, idempotency_key, fingerprint, "
                "started_at, sandbox) VALUES (?,?,?,?,?,?)",
                (receipt_id, gateway_key, idempotency_key, fingerprint, now_iso(), int(sandbox)),
            )

    def forget_gateway_request(self, receipt_id: str) -> None:
        """Drop the record of a gateway request that was refused before anything was sent."""
        with transaction(self._conn):
            self._conn.execute("DELETE FROM gateway_requests WHERE receipt_id = ?", (receipt_id,))

    def gateway_request(
        self, gateway_key: str, idempotency_key: str, *, sandbox: bool = False
    ) -> tuple[str, str] | None:
        """(receipt id, fingerprint) of the request this key made with `idempotency_key` in this
        kind of environment, or None: a sandbox record never answers a real request, nor the reverse."""
        row = self._conn.execute(
            "SELECT receipt_id, fingerprint FROM gateway_requests "
            "WHERE gateway_key = ? AND idempotency_key = ? AND sandbox = ?",
            (gateway_key, idempotency_key, int(sandbox)),
        ).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    # -- budget holds ---------------------------------------------------------------------------

    def key_spent(self, gateway_key: str, since: datetime) -> float:
        """USD a gateway key spent since `since`: the cost of its finished requests, plus what
        their failed attempts may have been billed (a cap is never to be exceeded)."""
        finished = self._conn.execute(
            """SELECT COALESCE(SUM(cost_usd + possibly_billed_usd), 0)
               FROM generations WHERE gateway_key = ? AND created_ts >= ?""",
            (gateway_key, since.timestamp()),
        ).fetchone()[0]
        return float(finished)

    def key_standing(self, gateway_key: str, window: BudgetWindow, *, max_age: float) -> KeyStanding:
        """What the key spent in `window` and what its requests in flight hold now."""
        held, holds = self._held(gateway_key, max_age)
        return KeyStanding(window.usd, self.key_spent(gateway_key, window.since), held, holds)

    def hold_budget(
        self,
        receipt_id: str,
        gateway_key: str,
        usd: float,
        windows: list[BudgetWindow],
        *,
        max_age: float,
    ) -> KeyStanding | None:
        """Hold `usd` of the key's budget for one request, checked and written in one write
        transaction, so that two workers cannot both take the last of it. Returns None when held,
        else the standing of the window it does not fit in (nothing is held then)."""
        # A hold lost to a power cut is harmless (its process is gone too): no fsync for it.
        with synchronous(self._conn, "NORMAL"), transaction(self._conn):
            held, holds = self._held(gateway_key, max_age)
            for window in windows:
                standing = KeyStanding(window.usd, self.key_spent(gateway_key, window.since), held, holds)
                if standing.spent + standing.held + usd > window.usd + 1e-9:
                    return standing
            self._conn.execute(
                "INSERT OR REPLACE INTO gateway_holds VALUES (?,?,?,?,?)",
                (receipt_id, gateway_key, usd, os.getpid(), time.time()),
            )
        return None

    def release_budget(self, receipt_id: str) -> None:
        """Give back what a finished request held (its receipt now counts what it spent)."""
        with synchronous(self._conn, "NORMAL"), transaction(self._conn):
            self._conn.execute("DELETE FROM gateway_holds WHERE receipt_id = ?", (receipt_id,))

    def drop_own_holds(self) -> None:
        """Drop holds recorded under this process's id: left by an earlier process that had it."""
        with contextlib.suppress(sqlite3.Error), transaction(self._conn):
            self._conn.execute("DELETE FROM gateway_holds WHERE pid = ?", (os.getpid(),))

    def _held(self, gateway_key: str, max_age: float) -> tuple[float, int]:
        """(USD, requests) the key's live holds add up to. A hold whose process is gone, or older
        than any request may run, is stale: dropped (when inside a write) and never counted. A hold
        whose receipt is recorded is counted by that receipt already."""
        rows = self._conn.execute(
            "SELECT h.receipt_id, h.usd, h.pid, h.started_ts FROM gateway_holds h "
            "WHERE h.gateway_key = ? AND NOT EXISTS "
            "(SELECT 1 FROM generations g WHERE g.receipt_id = h.receipt_id)",
            (gateway_key,),
        ).fetchall()
        oldest = time.time() - max_age
        live = [(r[0], float(r[1])) for r in rows if float(r[3]) >= oldest and _alive(int(r[2]))]
        stale = [r[0] for r in rows if r[0] not in {rid for rid, _ in live}]
        if stale and self._conn.in_transaction:
            self._conn.executemany("DELETE FROM gateway_holds WHERE receipt_id = ?", [(s,) for s in stale])
        return sum(usd for _, usd in live), len(live)
