"""The batch state machine: items, the runs made for them, predictions in flight, batch spend."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from .db import LedgerBase, log, now_iso, synchronous, timestamp, transaction

if TYPE_CHECKING:
    from ..manifest import ManifestItem
    from ..receipt import SavedImage

__all__ = ["BatchState", "ItemRecord"]


def _intact(path: Path, sha256: str) -> str:
    """ "ok", "missing" or "changed": the file at `path` against the sha256 it was saved with."""
    import hashlib

    try:
        with path.open("rb") as f:
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    except FileNotFoundError:
        return "missing"
    except OSError:
        return "missing" if not path.exists() else "changed"
    return "ok" if digest == sha256 else "changed"


@dataclass(frozen=True)
class ItemRecord:
    """A batch item as the ledger knows it."""

    key: str
    state: str
    attempts: int
    saved: int  # images recorded for it whose files are still as they were saved
    error: str | None
    #: Images recorded for it that were deleted since, or whose bytes changed (sha256).
    missing: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()


class BatchState(LedgerBase):
    """`items`, `runs` and `predictions`: each item's state (pending, running, done, failed),
    each call made for it, and each Replicate prediction the moment it exists."""

    # -- batch items --------------------------------------------------------------------------

    def sync_items(self, batch: str, items: Iterable[ManifestItem]) -> dict[str, ItemRecord]:
        """Add the manifest's items not yet known; return every item's record, by key."""
        now = now_iso()
        items = list(items)
        with transaction(self._conn):
            self._adopt_legacy_keys(items)
            # The item belongs to the manifest that names it now: a renamed or copied manifest
            # takes its items (and what they cost) along.
            self._conn.executemany(
                """INSERT INTO items (key, batch, position, name, prompt, n, request, updated_at)
                   VALUES (?,?,?,?,?,?,?,?)
                   ON CONFLICT (key) DO UPDATE SET batch = excluded.batch,
                     position = excluded.position, n = excluded.n, request = excluded.request""",
                [
                    (
                        item.key,
                        batch,
                        item.position,
                        item.name,
                        item.request.prompt,
                        item.n,
                        item.request.model_dump_json(exclude_defaults=True),
                        now,
                    )
                    for item in items
                ],
            )
        return self.item_records([item.key for item in items])

    def _adopt_legacy_keys(self, items: list[ManifestItem]) -> None:
        """Carry items recorded under an older key (one that included the manifest's file name)
        over to their key of today, so that an upgrade never pays for them again."""
        legacy = {i.legacy_key: i.key for i in items if i.legacy_key and i.legacy_key != i.key}
        if not legacy:
            return
        sql = "SELECT key FROM items WHERE key IN ({})"
        known = {k for (k,) in self._query_keys(sql, list(legacy))}
        taken = {k for (k,) in self._query_keys(sql, list(legacy.values()))}
        for old in known:
            new = legacy[old]
            if new in taken:
                continue
            self._conn.execute("UPDATE items SET key = ? WHERE key = ?", (new, old))
            for table in ("images", "runs", "predictions", "generations"):
                self._conn.execute(f"UPDATE {table} SET item_key = ? WHERE item_key = ?", (new, old))

    def item_records(self, keys: list[str]) -> dict[str, ItemRecord]:
        """The records of `keys` (unknown keys are left out). Each image recorded is checked
        against the sha256 it was saved with: a deleted or changed one is not counted as saved,
        and is named in `missing` or `changed`."""
        saved: dict[str, int] = {}
        missing: dict[str, list[str]] = {}
        changed: dict[str, list[str]] = {}
        for key, path, sha in self._query_keys(
            "SELECT item_key, path, sha256 FROM images WHERE item_key IN ({})", keys
        ):
            state = _intact(self._absolute(path), sha)
            if state == "ok":
                saved[key] = saved.get(key, 0) + 1
            else:
                (missing if state == "missing" else changed).setdefault(key, []).append(
                    str(self._absolute(path))
                )
        records: dict[str, ItemRecord] = {}
        for key, state, attempts, error in self._query_keys(
            "SELECT key, state, attempts, error FROM items WHERE key IN ({})", keys
        ):
            records[key] = ItemRecord(
                key,
                state,
                attempts,
                saved.get(key, 0),
                error,
                tuple(missing.get(key, ())),
                tuple(changed.get(key, ())),
            )
        return records

    def forget_images(self, paths: Iterable[str]) -> None:
        """Drop the records of images that are gone or changed (to make them again, on request)."""
        with transaction(self._conn):
            self._conn.executemany("DELETE FROM images WHERE path = ?", [(self._relative(p),) for p in paths])

    def start_run(
        self, item_key: str, receipt_id: str, *, n: int, estimate_usd: float, planned: str | None = None
    ) -> None:
        """Record that a call for `item_key` starts now, under `receipt_id`, most likely on `planned`."""
        now = now_iso()
        with transaction(self._conn):
            self._conn.execute(
                "INSERT INTO runs VALUES (?,?,?,?,?,?)",
                (receipt_id, item_key, now, n, estimate_usd / max(1, n), planned),
            )
            self._conn.execute(
                "UPDATE items SET state = 'running', attempts = attempts + 1, updated_at = ? WHERE key = ?",
                (now, item_key),
            )

    def finish_item(self, item_key: str, state: str, error: str | None = None) -> None:
        """Set an item's final state for this run: done or failed (with the reason)."""
        with transaction(self._conn):
            self._conn.execute(
                "UPDATE items SET state = ?, error = ?, updated_at = ? WHERE key = ?",
                (state, error, now_iso(), item_key),
            )

    # -- images and predictions, the moment they exist ----------------------------------------

    def record_image(self, receipt_id: str, image: SavedImage, *, sync: bool = True) -> None:
        """Record one saved image at once (an `on_image` hook): a crash after this loses nothing.

        With `sync=False` the row survives the process being killed but not a power cut (no
        fsync), until the next synced write — the receipt's, moments later — makes it durable.
        Never raises: the image is on disk already, and a ledger on a full disk must not turn a
        paid image into a failed call (its receipt still records it)."""
        try:
            with synchronous(self._conn, "FULL" if sync else "NORMAL"):
                self._record_image(receipt_id, image)
        except sqlite3.Error as exc:
            log.warning("the ledger %s did not record %s: %s", self.path, image.path, exc)

    def _record_image(self, receipt_id: str, image: SavedImage) -> None:
        with transaction(self._conn):
            item_key = self._item_of(receipt_id)
            current = self._current_prediction.get(receipt_id)
            prediction_id = None
            if current is not None and current[0] == f"{image.provider}:{image.model}":
                prediction_id = current[1]
                self._conn.execute(
                    "UPDATE predictions SET images = images + 1 WHERE prediction_id = ?", (prediction_id,)
                )
            self._upsert_image(receipt_id, item_key, prediction_id, image)

    def record_prediction(self, receipt_id: str, model: str, prediction_id: str) -> None:
        """Record a prediction id the moment it exists (an `on_event("prediction", …)` hook).

        Never raises (the prediction runs and is paid for either way): a failure is a warning, and
        a resume then finds the prediction in Replicate's list."""
        try:
            self._record_prediction(receipt_id, model, prediction_id)
        except sqlite3.Error as exc:
            log.warning("the ledger %s did not record prediction %s: %s", self.path, prediction_id, exc)
        self._current_prediction[receipt_id] = (model, prediction_id)

    def _record_prediction(self, receipt_id: str, model: str, prediction_id: str) -> None:
        with transaction(self._conn):
            item_key = self._item_of(receipt_id)
            self._conn.execute(
                "INSERT OR IGNORE INTO predictions (prediction_id, receipt_id, item_key, model, created_at) "
                "VALUES (?,?,?,?,?)",
                (prediction_id, receipt_id, item_key, model, now_iso()),
            )
            # A new prediction for the same item and model supersedes any older one still open
            # (dead, or given up on): that one is never resumed again.
            self._conn.execute(
                "UPDATE predictions SET closed = 1 WHERE item_key = ? AND model = ? AND prediction_id != ? "
                "AND closed = 0",
                (item_key, model, prediction_id),
            )

    # -- resuming -----------------------------------------------------------------------------

    def interrupted_since(self, item_key: str) -> datetime | None:
        """When the earliest run of an item that never finished (no receipt: it was killed) began."""
        row = self._conn.execute(
            """SELECT MIN(started_at) FROM runs r WHERE item_key = ? AND NOT EXISTS
                   (SELECT 1 FROM generations g WHERE g.receipt_id = r.receipt_id)""",
            (item_key,),
        ).fetchone()
        return datetime.fromtimestamp(timestamp(row[0]), UTC) if row and row[0] else None

    def known_predictions(self) -> frozenset[str]:
        """Every prediction id recorded here, by any item."""
        return frozenset(pid for (pid,) in self._conn.execute("SELECT prediction_id FROM predictions"))

    def resumable_predictions(self, item_key: str) -> dict[str, str]:
        """`{model ref: prediction id}` to re-attach to: created for this item, never settled by a
        receipt, and with none of their images saved (those would be saved twice)."""
        rows = self._conn.execute(
            "SELECT model, prediction_id FROM predictions WHERE item_key = ? AND closed = 0 AND images = 0 "
            "ORDER BY created_at",
            (item_key,),
        ).fetchall()
        return dict(rows)  # the latest per model wins

    def move_to_item(self, receipt_id: str, item_key: str) -> None:
        """File what request `receipt_id` made under another item key (a sandbox item's)."""
        with transaction(self._conn):
            for table in ("images", "generations", "predictions"):
                self._conn.execute(
                    f"UPDATE {table} SET item_key = ? WHERE receipt_id = ?", (item_key, receipt_id)
                )

    def settled(self, receipt_id: str) -> bool:
        """Whether the request `receipt_id` has its receipt recorded (it ran to its end)."""
        row = self._conn.execute("SELECT 1 FROM generations WHERE receipt_id = ?", (receipt_id,)).fetchone()
        return row is not None

    def settle_runs(self, item_key: str, *, keep: str) -> None:
        """Once the run `keep` of `item_key` has ended, no earlier killed run of it is resumed
        again: their predictions are settled, and their records (those without images, which
        stay on record) dropped."""
        with transaction(self._conn):
            self._conn.execute("UPDATE predictions SET closed = 1 WHERE item_key = ?", (item_key,))
            self._conn.execute(
                """DELETE FROM runs WHERE item_key = ? AND receipt_id != ?
                   AND NOT EXISTS (SELECT 1 FROM generations g WHERE g.receipt_id = runs.receipt_id)
                   AND NOT EXISTS (SELECT 1 FROM images m WHERE m.receipt_id = runs.receipt_id)""",
                (item_key, keep),
            )

    def close_predictions(self, item_key: str) -> None:
        """Settle every open prediction of an item (e.g. once it is done)."""
        with transaction(self._conn):
            self._conn.execute("UPDATE predictions SET closed = 1 WHERE item_key = ?", (item_key,))

    # -- totals -------------------------------------------------------------------------------

    def batch_spent(self, batch: str) -> float:
        """USD spent on a batch's items so far, every run included.

        A finished request counts what its receipt says; one cut short (killed before its receipt)
        counts its saved images at the estimate the run started with.
        """
        finished = self._conn.execute(
            "SELECT COALESCE(SUM(g.cost_usd), 0) FROM generations g "
            "JOIN items i ON i.key = g.item_key WHERE i.batch = ?",
            (batch,),
        ).fetchone()[0]
        cut_short = self._conn.execute(
            """SELECT COALESCE(SUM(r.estimate_per_image *
                   (SELECT COUNT(*) FROM images m WHERE m.receipt_id = r.receipt_id)), 0)
               FROM runs r JOIN items i ON i.key = r.item_key
               WHERE i.batch = ? AND NOT EXISTS
                   (SELECT 1 FROM generations g WHERE g.receipt_id = r.receipt_id)""",
            (batch,),
        ).fetchone()[0]
        return float(finished) + float(cut_short)

    def batch_counts(self, batch: str) -> dict[str, int]:
        """Items of a batch by state."""
        rows = self._conn.execute(
            "SELECT state, COUNT(*) FROM items WHERE batch = ? GROUP BY state", (batch,)
        )
        return dict(rows)
