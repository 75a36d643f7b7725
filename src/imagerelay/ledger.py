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
  asks again gets the first answer instead of paying twice. `generations.gateway_key` names the
  key that spent each row.

Every write is one transaction, so a crash (even SIGKILL) leaves the ledger as it was after the
last one. Paths are stored relative to the directory, so the directory can be moved.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import LedgerError, OutputError

if TYPE_CHECKING:
    from .manifest import ManifestItem
    from .receipt import Receipt, SavedImage

__all__ = ["LEDGER_NAME", "Generation", "ItemRecord", "Ledger", "LedgerError"]

log = logging.getLogger("imagerelay")

#: The ledger's file name inside an output directory.
LEDGER_NAME = "imagerelay.sqlite3"
_LOCK_NAME = ".imagerelay-batch.lock"
_VERSION = 3
#: The end of an image's name, as `Store.stem` makes it: the request id's first 8 hex digits, the index.
_STEM_ID = re.compile(r"-([0-9a-f]{8})-\d+\.(?:jpg|png|webp|gif)$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS generations (
    receipt_id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    created_ts REAL NOT NULL,
    env TEXT NOT NULL,
    prompt TEXT NOT NULL,
    provider TEXT,
    model TEXT,
    images INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    estimated_cost_usd REAL NOT NULL,
    reported_cost_usd REAL,
    item_key TEXT,
    receipt TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS generations_ts ON generations (created_ts);
CREATE TABLE IF NOT EXISTS images (
    path TEXT PRIMARY KEY,
    receipt_id TEXT NOT NULL,
    item_key TEXT,
    prediction_id TEXT,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    format TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    saved_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS images_item ON images (item_key);
CREATE INDEX IF NOT EXISTS images_receipt ON images (receipt_id);
CREATE TABLE IF NOT EXISTS items (
    key TEXT PRIMARY KEY,
    batch TEXT NOT NULL,
    position INTEGER NOT NULL,
    name TEXT,
    prompt TEXT NOT NULL,
    n INTEGER NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'running', 'done', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_batch ON items (batch);
CREATE TABLE IF NOT EXISTS runs (
    receipt_id TEXT PRIMARY KEY,
    item_key TEXT NOT NULL,
    started_at TEXT NOT NULL,
    n INTEGER NOT NULL,
    estimate_per_image REAL NOT NULL,
    planned_model TEXT
);
CREATE INDEX IF NOT EXISTS runs_item ON runs (item_key);
CREATE TABLE IF NOT EXISTS predictions (
    prediction_id TEXT PRIMARY KEY,
    receipt_id TEXT NOT NULL,
    item_key TEXT,
    model TEXT NOT NULL,
    created_at TEXT NOT NULL,
    images INTEGER NOT NULL DEFAULT 0,
    closed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS predictions_item ON predictions (item_key);
"""

#: Schema changes after version 1, in order: (version, statements). Each step is idempotent, so
#: steps added on different lines of work compose whatever order they land in.
_MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        2,
        [
            "ALTER TABLE generations ADD COLUMN gateway_key TEXT",
            "CREATE INDEX IF NOT EXISTS generations_key ON generations (gateway_key, created_ts)",
            """CREATE TABLE IF NOT EXISTS gateway_requests (
                receipt_id TEXT PRIMARY KEY,
                gateway_key TEXT NOT NULL,
                idempotency_key TEXT,
                fingerprint TEXT NOT NULL,
                started_at TEXT NOT NULL
            )""",
            "CREATE UNIQUE INDEX IF NOT EXISTS gateway_requests_idem "
            "ON gateway_requests (gateway_key, idempotency_key) WHERE idempotency_key IS NOT NULL",
        ],
    ),
    (
        # What failed attempts may have been billed, as a column: a key's budget is summed on
        # every request, and reading it out of each receipt's JSON grows with the month.
        3,
        [
            "ALTER TABLE generations ADD COLUMN possibly_billed_usd REAL NOT NULL DEFAULT 0",
            "UPDATE generations SET possibly_billed_usd = "
            "COALESCE(json_extract(receipt, '$.possibly_billed_usd'), 0)",
        ],
    ),
]


@dataclass(frozen=True)
class ItemRecord:
    """A batch item as the ledger knows it."""

    key: str
    state: str
    attempts: int
    saved: int  # images recorded for it whose files still exist
    error: str | None


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
            "batch_item": self.item_key,
            "gateway_key": self.gateway_key,
            **({"sandbox": True, "would_cost_usd": self.would_cost_usd} if self.sandbox else {}),
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _timestamp(iso: str) -> float:
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return datetime.now(UTC).timestamp()
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


class Ledger:
    """The ledger of one output directory. Use from one thread (the event loop's)."""

    def __init__(self, conn: sqlite3.Connection, directory: Path) -> None:
        self._conn = conn
        self.directory = directory
        self.path = directory / LEDGER_NAME
        self._lock_fd: int | None = None
        #: receipt id → (model ref, prediction id) of the call in flight, to attribute its images.
        self._current_prediction: dict[str, tuple[str, str]] = {}
        #: receipt id → why it could not be recorded.
        self.unrecorded: dict[str, str] = {}
        #: Receipts whose recording failure the caller reports itself (no warning of our own).
        self.quiet: set[str] = set()

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(cls, directory: Path | str, *, create: bool = True) -> Ledger:
        """Open (and with `create`, make) the ledger of `directory`."""
        directory = Path(directory)
        path = directory / LEDGER_NAME
        if directory.exists() and not directory.is_dir():
            raise OutputError(f"output path '{directory}' is a file, not a directory: pass --out DIR")
        if not create and not path.is_file():
            raise LedgerError(
                f"no ledger in '{directory}' ({LEDGER_NAME} not found): pass the --out directory "
                "of an earlier `imagerelay generate` or `imagerelay batch`"
            )
        try:
            directory.mkdir(parents=True, exist_ok=True)
            # SQLite creates its file 0644 whatever the umask; made here, it follows the umask
            # (and SQLite gives its -wal and -shm files the same mode).
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o666))
            conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise OutputError(
                f"cannot open the ledger '{path}' ({_reason(exc)}): pass --out with a writable directory"
            ) from None
        try:
            cls._prepare(conn)
        except sqlite3.OperationalError as exc:  # cannot write: permissions, read-only disk, locked
            conn.close()
            raise OutputError(
                f"cannot open the ledger '{path}' ({exc}): pass --out with a writable directory"
            ) from None
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise LedgerError(
                f"'{path}' cannot be used as a ledger ({exc}): move it away, or pass another --out"
            ) from None
        return cls(conn, directory)

    @staticmethod
    def _prepare(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA busy_timeout = 30000")  # a `generate` and a batch may share a directory
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a committed row survives power loss too, not only a crash of this process; the
        # images themselves are fsynced, and the ledger is what says they exist.
        conn.execute("PRAGMA synchronous = FULL")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > _VERSION:
            raise sqlite3.DatabaseError(f"written by a newer imagerelay (schema {version})")
        if version < _VERSION:
            with _transaction(conn):
                if version < 1:
                    for statement in _statements():
                        conn.execute(statement)
                for step, statements in _MIGRATIONS:
                    if version < step:
                        for statement in statements:
                            _apply(conn, statement)
                conn.execute(f"PRAGMA user_version = {_VERSION}")

    def close(self) -> None:
        self.unlock()
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lock(self) -> None:
        """Hold the directory for one batch at a time: two would pay for the same items.

        The lock is an OS file lock, so a killed batch releases it by dying.
        """
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock, as before
            return
        path = self.directory / _LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise LedgerError(
                f"another batch is running in '{self.directory}': "
                "wait for it to finish, or pass another --out"
            ) from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

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
        with _transaction(conn):
            item_key = self._item_of(receipt.id)
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
                    _timestamp(receipt.created_at),
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

    def _upsert_image(
        self, receipt_id: str, item_key: str | None, prediction_id: str | None, image: SavedImage
    ) -> None:
        self._conn.execute(
            """INSERT INTO images VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
               ON CONFLICT (path) DO UPDATE SET
                 sha256 = excluded.sha256, bytes = excluded.bytes,
                 item_key = COALESCE(images.item_key, excluded.item_key)""",
            (
                self._relative(image.path),
                receipt_id,
                item_key,
                prediction_id,
                image.provider,
                image.model,
                image.sha256,
                image.width,
                image.height,
                image.format,
                image.bytes,
                _now(),
            ),
        )

    def _item_of(self, receipt_id: str) -> str | None:
        """The batch item a request was made for (None for a plain `generate`)."""
        row = self._conn.execute("SELECT item_key FROM runs WHERE receipt_id = ?", (receipt_id,)).fetchone()
        return str(row[0]) if row else None

    # -- batch items --------------------------------------------------------------------------

    def sync_items(self, batch: str, items: Iterable[ManifestItem]) -> dict[str, ItemRecord]:
        """Add the manifest's items not yet known; return every item's record, by key."""
        now = _now()
        items = list(items)
        with _transaction(self._conn):
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
        """The records of `keys` (unknown keys are left out)."""
        saved: dict[str, int] = {}
        for key, path in self._query_keys("SELECT item_key, path FROM images WHERE item_key IN ({})", keys):
            if self._absolute(path).is_file():  # a deleted image is asked for again
                saved[key] = saved.get(key, 0) + 1
        records: dict[str, ItemRecord] = {}
        for key, state, attempts, error in self._query_keys(
            "SELECT key, state, attempts, error FROM items WHERE key IN ({})", keys
        ):
            records[key] = ItemRecord(key, state, attempts, saved.get(key, 0), error)
        return records

    def start_run(
        self, item_key: str, receipt_id: str, *, n: int, estimate_usd: float, planned: str | None = None
    ) -> None:
        """Record that a call for `item_key` starts now, under `receipt_id`, most likely on `planned`."""
        now = _now()
        with _transaction(self._conn):
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
        with _transaction(self._conn):
            self._conn.execute(
                "UPDATE items SET state = ?, error = ?, updated_at = ? WHERE key = ?",
                (state, error, _now(), item_key),
            )

    def record_image(self, receipt_id: str, image: SavedImage, *, sync: bool = True) -> None:
        """Record one saved image at once (an `on_image` hook): a crash after this loses nothing.

        With `sync=False` the row survives the process being killed but not a power cut (no
        fsync), until the next synced write — the receipt's, moments later — makes it durable.
        Never raises: the image is on disk already, and a ledger on a full disk must not turn a
        paid image into a failed call (its receipt still records it)."""
        try:
            with _synchronous(self._conn, "FULL" if sync else "NORMAL"):
                self._record_image(receipt_id, image)
        except sqlite3.Error as exc:
            log.warning("the ledger %s did not record %s: %s", self.path, image.path, exc)

    def _record_image(self, receipt_id: str, image: SavedImage) -> None:
        with _transaction(self._conn):
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
        with _transaction(self._conn):
            item_key = self._item_of(receipt_id)
            self._conn.execute(
                "INSERT OR IGNORE INTO predictions (prediction_id, receipt_id, item_key, model, created_at) "
                "VALUES (?,?,?,?,?)",
                (prediction_id, receipt_id, item_key, model, _now()),
            )
            # A new prediction for the same item and model supersedes any older one still open
            # (dead, or given up on): that one is never resumed again.
            self._conn.execute(
                "UPDATE predictions SET closed = 1 WHERE item_key = ? AND model = ? AND prediction_id != ? "
                "AND closed = 0",
                (item_key, model, prediction_id),
            )

    def interrupted_since(self, item_key: str) -> datetime | None:
        """When the earliest run of an item that never finished (no receipt: it was killed) began."""
        row = self._conn.execute(
            """SELECT MIN(started_at) FROM runs r WHERE item_key = ? AND NOT EXISTS
                   (SELECT 1 FROM generations g WHERE g.receipt_id = r.receipt_id)""",
            (item_key,),
        ).fetchone()
        return datetime.fromtimestamp(_timestamp(row[0]), UTC) if row and row[0] else None

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

    def close_predictions(self, item_key: str) -> None:
        """Settle every open prediction of an item (e.g. once it is done)."""
        with _transaction(self._conn):
            self._conn.execute("UPDATE predictions SET closed = 1 WHERE item_key = ?", (item_key,))

    def restore_rescued(self) -> int:
        """Move images (and their receipts) that were kept in a rescue directory because this
        directory could not take them back into it, now that it can; returns how many."""
        import shutil

        moved = 0
        rows = self._conn.execute("SELECT path FROM images").fetchall()
        for (stored,) in rows:
            source = Path(stored)
            target = self.directory / source.name
            if not source.is_absolute() or not source.is_file() or target.exists():
                continue
            try:
                shutil.copy2(source, target)
                receipt = source.with_suffix(".json")
                if receipt.is_file() and not target.with_suffix(".json").exists():
                    shutil.copy2(receipt, target.with_suffix(".json"))
                with _transaction(self._conn):
                    self._conn.execute("UPDATE images SET path = ? WHERE path = ?", (target.name, stored))
            except (OSError, sqlite3.Error) as exc:
                log.warning("could not move %s back into %s: %s", source, self.directory, exc)
                with contextlib.suppress(OSError):
                    if target.is_file() and target.stat().st_size != source.stat().st_size:
                        target.unlink()
                continue
            for done in (source, source.with_suffix(".json")):
                with contextlib.suppress(OSError):
                    done.unlink()
            moved += 1
        return moved

    def adopt_orphans(self) -> int:
        """Record images that a killed run saved but had no time to record; returns how many.

        Between an image's rename into place and its ledger row lies an instant; a kill that lands
        there leaves a complete image the ledger does not know. Its name carries its request's id
        (see `Store.stem`), so it is found and counted rather than paid for again.
        """
        from .imaging import CorruptImage, probe

        rows = self._conn.execute(
            """SELECT receipt_id, item_key, planned_model FROM runs r
               WHERE NOT EXISTS (SELECT 1 FROM generations g WHERE g.receipt_id = r.receipt_id)"""
        ).fetchall()
        runs = {rid[:8]: (rid, key, planned) for rid, key, planned in rows}
        if not runs:
            return 0
        known = {path for (path,) in self._conn.execute("SELECT path FROM images")}
        adopted = 0
        with os.scandir(self.directory) as entries:
            names = [e.name for e in entries if not e.name.startswith(".") and e.is_file()]
        for name in names:
            match = _STEM_ID.search(name)
            if match is None or match.group(1) not in runs or name in known:
                continue
            receipt_id, item_key, planned = runs[match.group(1)]
            try:
                data = (self.directory / name).read_bytes()
                info = probe(data)
            except (OSError, CorruptImage):
                continue
            provider, _, model = (planned or "unknown:unknown").partition(":")
            with _transaction(self._conn):
                self._conn.execute(
                    "INSERT OR IGNORE INTO images VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        name,
                        receipt_id,
                        item_key,
                        None,
                        provider,
                        model,
                        hashlib.sha256(data).hexdigest(),
                        info.width,
                        info.height,
                        info.format,
                        len(data),
                        _now(),
                    ),
                )
            adopted += 1
        return adopted

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

    # -- reading ------------------------------------------------------------------------------

    def generations(
        self, *, since: datetime | None = None, provider: str | None = None, gateway_key: str | None = None
    ) -> list[Generation]:
        """Finished requests, oldest first; `provider` is a provider name or PROVIDER:MODEL;
        `gateway_key` keeps only what that gateway key spent."""
        sql = (
            "SELECT receipt_id, created_at, env, prompt, provider, model, images, cost_usd, "
            "reported_cost_usd IS NOT NULL, item_key, "
            "COALESCE(json_extract(receipt, '$.sandbox'), 0), json_extract(receipt, '$.would_cost_usd'), "
            "gateway_key FROM generations WHERE 1 = 1"
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
            )
            for r in self._conn.execute(sql, args)
        ]

    def receipt(self, receipt_id: str) -> tuple[str, str | None] | None:
        """The receipt (JSON) of one finished request and the gateway key that spent it, or None."""
        row = self._conn.execute(
            "SELECT receipt, gateway_key FROM generations WHERE receipt_id = ?", (receipt_id,)
        ).fetchone()
        return (str(row[0]), row[1]) if row else None

    # -- the gateway ----------------------------------------------------------------------------

    def start_gateway_request(
        self, receipt_id: str, *, gateway_key: str, idempotency_key: str | None, fingerprint: str
    ) -> None:
        """Record a gateway request before anything is sent. Raises `sqlite3.IntegrityError` when
        the key already used this `idempotency_key` (the caller looks that request up instead)."""
        with _transaction(self._conn):
            self._conn.execute(
                "INSERT INTO gateway_requests VALUES (?,?,?,?,?)",
                (receipt_id, gateway_key, idempotency_key, fingerprint, _now()),
            )

    def forget_gateway_request(self, receipt_id: str) -> None:
        """Drop the record of a gateway request that was refused before anything was sent."""
        with _transaction(self._conn):
            self._conn.execute("DELETE FROM gateway_requests WHERE receipt_id = ?", (receipt_id,))

    def gateway_request(self, gateway_key: str, idempotency_key: str) -> tuple[str, str] | None:
        """(receipt id, fingerprint) of the request this key made with `idempotency_key`, or None."""
        row = self._conn.execute(
            "SELECT receipt_id, fingerprint FROM gateway_requests "
            "WHERE gateway_key = ? AND idempotency_key = ?",
            (gateway_key, idempotency_key),
        ).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    def key_spent(self, gateway_key: str, since: datetime) -> float:
        """USD a gateway key spent since `since`: the cost of its finished requests, plus what
        their failed attempts may have been billed (a cap is never to be exceeded)."""
        finished = self._conn.execute(
            """SELECT COALESCE(SUM(cost_usd + possibly_billed_usd), 0)
               FROM generations WHERE gateway_key = ? AND created_ts >= ?""",
            (gateway_key, since.timestamp()),
        ).fetchone()[0]
        return float(finished)

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

    # -- paths --------------------------------------------------------------------------------

    def _relative(self, path: str) -> str:
        p = Path(path)
        try:
            return p.resolve().relative_to(self.directory.resolve()).as_posix()
        except ValueError:
            return str(p.resolve())

    def _absolute(self, stored: str) -> Path:
        p = Path(stored)
        return p if p.is_absolute() else self.directory / p

    def _query_keys(self, sql: str, keys: list[str]) -> Iterator[tuple[Any, ...]]:
        # SQLite caps the parameters of one statement; ask in chunks.
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            yield from self._conn.execute(sql.format(",".join("?" * len(chunk))), chunk)


def _statements() -> list[str]:
    return [s.strip() for s in _SCHEMA.split(";") if s.strip()]


_ADD_COLUMN = re.compile(r"ALTER TABLE (\w+) ADD COLUMN (\w+)", re.IGNORECASE)


def _apply(conn: sqlite3.Connection, statement: str) -> None:
    """Run one migration statement; a column that is already there is not added again."""
    match = _ADD_COLUMN.match(statement)
    if match:
        table, column = match.groups()
        if any(row[1] == column for row in conn.execute(f"PRAGMA table_info({table})")):
            return
    conn.execute(statement)


@contextlib.contextmanager
def _synchronous(conn: sqlite3.Connection, level: str) -> Iterator[None]:
    """`PRAGMA synchronous = level` for the statements inside, FULL again after."""
    if level == "FULL":
        yield
        return
    conn.execute(f"PRAGMA synchronous = {level}")
    try:
        yield
    finally:
        conn.execute("PRAGMA synchronous = FULL")


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE … COMMIT: the writer lock is taken up front, so two writers wait rather
    than fail half-way; anything raised rolls the whole transaction back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
