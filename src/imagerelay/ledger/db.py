"""The ledger's connection: opening, the batch lock, transactions, and what every part shares."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from ..errors import LedgerError, OutputError
from . import schema

if TYPE_CHECKING:
    from ..receipt import SavedImage

__all__ = [
    "LEDGER_NAME",
    "LedgerBase",
    "LedgerError",
    "log",
    "now_iso",
    "synchronous",
    "timestamp",
    "transaction",
]

log = logging.getLogger("imagerelay")

#: The ledger's file name inside an output directory.
LEDGER_NAME = "imagerelay.sqlite3"
_LOCK_NAME = ".imagerelay-batch.lock"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def timestamp(iso: str) -> float:
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return datetime.now(UTC).timestamp()
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


class LedgerBase:
    """The connection to one directory's ledger and the helpers its parts share."""

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
    def open(
        cls, directory: Path | str, *, create: bool = True, threads: bool = False, read_only: bool = False
    ) -> Self:
        """Open (and with `create`, make) the ledger of `directory`. With `threads` it may be
        handed from thread to thread, used by one at a time (the caller serialises its use). With
        `read_only` (commands that only read it: `history`, `gallery`), a ledger that cannot be
        written is opened to read."""
        directory = Path(directory)
        path = directory / LEDGER_NAME
        if directory.exists() and not directory.is_dir():
            raise OutputError(f"output path '{directory}' is a file, not a directory: pass --out DIR")
        if not create and not path.is_file():
            raise LedgerError(
                f"no ledger in '{directory}' ({LEDGER_NAME} not found): pass the --out directory "
                "of an earlier `imagerelay generate` or `imagerelay batch`"
            )
        if read_only:
            try:  # the usual way first: it also brings an older schema up to date
                return cls.open(directory, create=False, threads=threads)
            except OutputError:
                return cls(_read_only(path, threads), directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            # SQLite creates its file 0644 whatever the umask; made here, it follows the umask
            # (and SQLite gives its -wal and -shm files the same mode).
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o666))
            conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=not threads)
        except (OSError, sqlite3.Error) as exc:
            raise OutputError(
                f"cannot open the ledger '{path}' ({reason(exc)}): pass --out with a writable directory"
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

    @classmethod
    def snapshot(cls, directory: Path | str) -> Self | None:
        """A copy in memory of `directory`'s ledger (None if it has none), to read and even
        write to (a dry run does both) without changing a byte of the directory.

        A ledger whose -wal file holds data (another run has it open, or one was killed) is read
        through SQLite's read-only mode, which sees that data; otherwise it is read as immutable,
        which creates no -wal or -shm file beside it.
        """
        directory = Path(directory)
        path = directory / LEDGER_NAME
        if not path.is_file():
            return None
        wal = path.with_name(path.name + "-wal")
        mode = "ro" if wal.is_file() and wal.stat().st_size else "immutable"
        uri = f"{path.resolve().as_uri()}?{'mode=ro' if mode == 'ro' else 'immutable=1'}"
        conn = sqlite3.connect(":memory:", isolation_level=None)
        try:
            source = sqlite3.connect(uri, uri=True, timeout=30.0)
            try:
                source.backup(conn)
            finally:
                source.close()
            cls._prepare(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise LedgerError(
                f"'{path}' cannot be read as a ledger ({exc}): move it away, or pass another --out"
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
        if version > schema.VERSION:
            raise sqlite3.DatabaseError(f"written by a newer imagerelay (schema {version})")
        if version < schema.VERSION:
            with transaction(conn):
                if version < 1:
                    for statement in schema.statements():
                        conn.execute(statement)
                for step, statements in schema.MIGRATIONS:
                    if version < step:
                        for statement in statements:
                            schema.apply(conn, statement)
                conn.execute(f"PRAGMA user_version = {schema.VERSION}")

    def close(self) -> None:
        self.unlock()
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()

    def __enter__(self) -> Self:
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

    # -- shared by the parts ------------------------------------------------------------------

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
                now_iso(),
            ),
        )

    def _item_of(self, receipt_id: str) -> str | None:
        """The batch item a request was made for (None for a plain `generate`)."""
        row = self._conn.execute("SELECT item_key FROM runs WHERE receipt_id = ?", (receipt_id,)).fetchone()
        return str(row[0]) if row else None

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


def _read_only(path: Path, threads: bool) -> sqlite3.Connection:
    """A connection that never writes to the ledger at `path` (a read-only disk or directory)."""
    from urllib.parse import quote

    uri = f"file:{quote(str(path.resolve()))}"
    last: sqlite3.Error | None = None
    # mode=ro still reads what the write-ahead log holds, but needs its shared-memory file;
    # immutable=1 reads the main file alone (what a cleanly closed ledger holds).
    for flags in ("mode=ro", "mode=ro&immutable=1"):
        try:
            conn = sqlite3.connect(
                f"{uri}?{flags}", uri=True, timeout=30.0, isolation_level=None, check_same_thread=not threads
            )
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            last = exc
            continue
        if version != schema.VERSION:
            conn.close()
            raise LedgerError(
                f"the ledger '{path}' is read-only and was written by "
                f"{'a newer' if version > schema.VERSION else 'an older'} imagerelay (schema {version}): "
                "read it with that version, or copy the directory somewhere writable"
            )
        return conn
    raise OutputError(f"cannot read the ledger '{path}' ({last}): copy the directory somewhere writable")


@contextlib.contextmanager
def synchronous(conn: sqlite3.Connection, level: str) -> Iterator[None]:
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
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE … COMMIT: the writer lock is taken up front, so two writers wait rather
    than fail half-way; anything raised rolls the whole transaction back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
