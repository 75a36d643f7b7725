"""The history read model: finished receipts, as `history`, `gallery` and the gateway read them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .db import LedgerBase, log, timestamp, transaction

if TYPE_CHECKING:
    from ..receipt import Receipt

__all__ = ["Generation", "History"]


@dataclass(frozen=True)
class Generation:
    """One finished request, as `history` lists it."""

    receipt_id: str
    created_at: str
    env: str
    prompt: str
    provider: str | None
    model: str | None
    images: int
    cost_usd: float
    reported: bool
    item_key: str | None
    sandbox: bool = False  # made by the emulator: cost_usd is 0
    would_cost_usd: float | None = None  # sandbox: what it would have cost for real
    gateway_key: str | None = None  # the gateway key that spent it (its name)
    #: What its failed attempts may have been billed, at their worst (not in cost_usd).
    possibly_billed_usd: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "receipt_id": self.receipt_id,
            "created_at": self.created_at,
            "env": self.env,
            "prompt": self.prompt,
            "provider": self.provider,
            "model": self.model,
            "images": self.images,
            "cost_usd": round(self.cost_usd, 6),
            "cost_reported": self.reported,
            "possibly_billed_usd": round(self.possibly_billed_usd, 6),
            "batch_item": self.item_key,
            "gateway_key": self.gateway_key,
            **({"sandbox": True, "would_cost_usd": self.would_cost_usd} if self.sandbox else {}),
        }


class History(LedgerBase):
    """`generations`: one row per finished receipt, written when it is final, read for reports."""

    # -- receipts (every generation) ------------------------------------------------------------

    def record_receipt(self, receipt: Receipt, *, gateway_key: str | None = None) -> None:
        """Add (or update) a finished receipt and its images. A hook for `Relay(on_receipt=...)`.

        `gateway_key` names the gateway key that spent it (kept when a later update has none).
        Never raises: the images are already on disk and their receipts beside them, so a ledger
        that cannot be written is a warning, not a failed generation.
        """
        try:
            self._record_receipt(receipt, gateway_key)
        except sqlite3.Error as exc:
            self.unrecorded[receipt.id] = str(exc)
            if receipt.id not in self.quiet:
                log.warning("the ledger %s was not updated for receipt %s: %s", self.path, receipt.id, exc)

    def _record_receipt(self, receipt: Receipt, gateway_key: str | None) -> None:
        conn = self._conn
        with transaction(conn):
            item_key = self._item_of(receipt.id)
            if item_key is not None and item_key.startswith("request:"):
                item_key = None  # a plain request's own key (see `rerun`), not a batch item
            conn.execute(
                """INSERT INTO generations (receipt_id, created_at, created_ts, env, prompt, provider,
                       model, images, cost_usd, estimated_cost_usd, reported_cost_usd, item_key, receipt,
                       gateway_key, possibly_billed_usd)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                   ON CONFLICT (receipt_id) DO UPDATE SET
                     created_at = excluded.created_at, created_ts = excluded.created_ts,
                     env = excluded.env, prompt = excluded.prompt, provider = excluded.provider,
                     model = excluded.model, images = excluded.images, cost_usd = excluded.cost_usd,
                     estimated_cost_usd = excluded.estimated_cost_usd,
                     reported_cost_usd = excluded.reported_cost_usd, item_key = excluded.item_key,
                     receipt = excluded.receipt, possibly_billed_usd = excluded.possibly_billed_usd,
                     gateway_key = COALESCE(excluded.gateway_key, generations.gateway_key)""",
                (
                    receipt.id,
                    receipt.created_at,
                    timestamp(receipt.created_at),
                    receipt.env,
                    receipt.prompt,
                    receipt.provider,
                    receipt.model,
                    len(receipt.images),
                    receipt.cost_usd,
                    receipt.estimated_cost_usd,
                    receipt.reported_cost_usd,
                    item_key,
                    receipt.model_dump_json(),
                    gateway_key,
                    receipt.possibly_billed_usd,
                ),
            )
            for image in receipt.images:
                self._upsert_image(receipt.id, item_key, None, image)
            # Every prediction this request made is settled now: never resume it again.
            conn.execute("UPDATE predictions SET closed = 1 WHERE receipt_id = ?", (receipt.id,))
            ids = [a.prediction_id for a in receipt.attempts if a.prediction_id]
            conn.executemany("UPDATE predictions SET closed = 1 WHERE prediction_id = ?", [(i,) for i in ids])
        self._current_prediction.pop(receipt.id, None)

    # -- reading ------------------------------------------------------------------------------

    def recorded(self) -> tuple[set[str], set[str]]:
        """(every `provider:model` and every gateway key name that appears in the ledger): what a
        filter of `generations` can match beyond the catalog's models and the configured keys."""
        refs = {f"{p}:{m}" for p, m in self._conn.execute("SELECT DISTINCT provider, model FROM generations")}
        keys = {
            str(k)
            for (k,) in self._conn.execute("SELECT DISTINCT gateway_key FROM generations")
            if k is not None
        }
        return refs, keys

    def generations(
        self, *, since: datetime | None = None, provider: str | None = None, gateway_key: str | None = None
    ) -> list[Generation]:
        """Finished requests, oldest first; `provider` is a provider name or PROVIDER:MODEL;
        `gateway_key` keeps only what that gateway key spent."""
        sql = (
            "SELECT receipt_id, created_at, env, prompt, provider, model, images, cost_usd, "
            "reported_cost_usd IS NOT NULL, item_key, "
            "COALESCE(json_extract(receipt, '$.sandbox'), 0), json_extract(receipt, '$.would_cost_usd'), "
            "gateway_key, possibly_billed_usd FROM generations WHERE 1 = 1"
        )
        args: list[Any] = []
        if since is not None:
            sql += " AND created_ts >= ?"
            args.append(since.timestamp())
        if gateway_key is not None:
            sql += " AND gateway_key = ?"
            args.append(gateway_key)
        if provider:
            name, sep, model = provider.partition(":")
            sql += " AND provider = ?"
            args.append(name)
            if sep:
                sql += " AND model = ?"
                args.append(model)
        sql += " ORDER BY created_ts, receipt_id"
        return [
            Generation(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                r[5],
                int(r[6]),
                float(r[7]),
                bool(r[8]),
                r[9],
                bool(r[10]),
                None if r[11] is None else float(r[11]),
                r[12],
                float(r[13] or 0.0),
            )
            for r in self._conn.execute(sql, args)
        ]

    def receipt(self, receipt_id: str) -> tuple[str, str | None] | None:
        """The receipt (JSON) of one finished request and the gateway key that spent it, or None."""
        row = self._conn.execute(
            "SELECT receipt, gateway_key FROM generations WHERE receipt_id = ?", (receipt_id,)
        ).fetchone()
        return (str(row[0]), row[1]) if row else None

    def receipts(self) -> Iterator[str]:
        """Every finished receipt, as JSON, oldest first."""
        for (body,) in self._conn.execute("SELECT receipt FROM generations ORDER BY created_ts, receipt_id"):
            yield body

    def unfinished_images(self) -> list[dict[str, Any]]:
        """Images saved by a request whose receipt was never written (it was killed)."""
        rows = self._conn.execute(
            """SELECT m.path, m.provider, m.model, m.saved_at, i.prompt, i.name, r.estimate_per_image
               FROM images m LEFT JOIN runs r ON r.receipt_id = m.receipt_id
               LEFT JOIN items i ON i.key = m.item_key
               WHERE NOT EXISTS (SELECT 1 FROM generations g WHERE g.receipt_id = m.receipt_id)
               ORDER BY m.saved_at"""
        ).fetchall()
        return [
            {
                "path": str(self._absolute(r[0])),
                "provider": r[1],
                "model": r[2],
                "created_at": r[3],
                "prompt": r[4] or "",
                "name": r[5],
                "cost_usd": r[6] or 0.0,
            }
            for r in rows
        ]
