"""Gateway requests sent with an `Idempotency-Key`, recorded before anything is sent on."""

from __future__ import annotations

from .db import LedgerBase, now_iso, transaction

__all__ = ["GatewayRequests"]


class GatewayRequests(LedgerBase):
    """`gateway_requests`: a client that asks again gets the first answer instead of paying twice."""

    def start_gateway_request(
        self, receipt_id: str, *, gateway_key: str, idempotency_key: str | None, fingerprint: str
    ) -> None:
        """Record a gateway request before anything is sent. Raises `sqlite3.IntegrityError` when
        the key already used this `idempotency_key` (the caller looks that request up instead)."""
        with transaction(self._conn):
            self._conn.execute(
                "INSERT INTO gateway_requests VALUES (?,?,?,?,?)",
                (receipt_id, gateway_key, idempotency_key, fingerprint, now_iso()),
            )

    def forget_gateway_request(self, receipt_id: str) -> None:
        """Drop the record of a gateway request that was refused before anything was sent."""
        with transaction(self._conn):
            self._conn.execute("DELETE FROM gateway_requests WHERE receipt_id = ?", (receipt_id,))

    def gateway_request(self, gateway_key: str, idempotency_key: str) -> tuple[str, str] | None:
        """(receipt id, fingerprint) of the request this key made with `idempotency_key`, or None."""
        row = self._conn.execute(
            "SELECT receipt_id, fingerprint FROM gateway_requests "
            "WHERE gateway_key = ? AND idempotency_key = ?",
            (gateway_key, idempotency_key),
        ).fetchone()
        return (str(row[0]), str(row[1])) if row else None
