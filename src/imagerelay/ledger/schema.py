"""The ledger's tables, and the steps that bring an older ledger up to them."""

from __future__ import annotations

import re
import sqlite3

__all__ = ["MIGRATIONS", "SCHEMA", "VERSION", "apply", "statements"]

VERSION = 4

SCHEMA = """
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
MIGRATIONS: list[tuple[int, list[str]]] = [
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
    (
        # An Idempotency-Key answers only requests of its own kind: a sandbox placeholder never
        # answers a real request, nor the reverse. And a gateway key's budget held by requests in
        # flight, a row each, shared by every worker process of the gateway.
        4,
        [
            "ALTER TABLE gateway_requests ADD COLUMN sandbox INTEGER NOT NULL DEFAULT 0",
            "UPDATE gateway_requests SET sandbox = COALESCE((SELECT json_extract(g.receipt, '$.sandbox') "
            "FROM generations g WHERE g.receipt_id = gateway_requests.receipt_id), 0)",
            "DROP INDEX IF EXISTS gateway_requests_idem",
            "CREATE UNIQUE INDEX IF NOT EXISTS gateway_requests_idem_kind ON gateway_requests "
            "(gateway_key, sandbox, idempotency_key) WHERE idempotency_key IS NOT NULL",
            """CREATE TABLE IF NOT EXISTS gateway_holds (
                receipt_id TEXT PRIMARY KEY,
                gateway_key TEXT NOT NULL,
                usd REAL NOT NULL,
                pid INTEGER NOT NULL,
                started_ts REAL NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS gateway_holds_key ON gateway_holds (gateway_key)",
        ],
    ),
]


def statements() -> list[str]:
    return [s.strip() for s in SCHEMA.split(";") if s.strip()]


_ADD_COLUMN = re.compile(r"ALTER TABLE (\w+) ADD COLUMN (\w+)", re.IGNORECASE)


def apply(conn: sqlite3.Connection, statement: str) -> None:
    """Run one migration statement; a column that is already there is not added again."""
    match = _ADD_COLUMN.match(statement)
    if match:
        table, column = match.groups()
        if any(row[1] == column for row in conn.execute(f"PRAGMA table_info({table})")):
            return
    conn.execute(statement)
