"""A ledger written by an older imagerelay is migrated in place when opened, keeping every row."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from imagerelay.ledger import LEDGER_NAME, Ledger
from imagerelay.ledger import schema as ledger_module


def _v1_ledger(directory: Path, *, extra: str = "") -> Path:
    path = directory / LEDGER_NAME
    conn = sqlite3.connect(path)
    for statement in ledger_module.statements():
        conn.execute(statement)
    if extra:
        conn.execute(extra)
    conn.execute(
        "INSERT INTO generations (receipt_id, created_at, created_ts, env, prompt, provider, model, images, "
        "cost_usd, estimated_cost_usd, reported_cost_usd, item_key, receipt) "
        "VALUES ('r1', '2026-11-01T00:00:00+00:00', 1793491200, 'development', 'old fox', 'xai', "
        "'grok-imagine-image', 1, 0.02, 0.02, 0.02, NULL, '{}')"
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    return path


def test_a_version_1_ledger_gains_the_gateway_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    """Opening a schema-1 ledger adds `generations.gateway_key` and `gateway_requests`; old rows
    stay, with no key; opening it again changes nothing."""
    path = _v1_ledger(tmp_path)
    with Ledger.open(tmp_path) as led:
        [row] = led.generations()
        assert (row.receipt_id, row.prompt, row.gateway_key) == ("r1", "old fox", None)
        led.start_gateway_request("r2", gateway_key="app", idempotency_key="k", fingerprint="f")
        assert led.gateway_request("app", "k") == ("r2", "f")
    with Ledger.open(tmp_path) as led:
        assert len(led.generations()) == 1
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == ledger_module.VERSION
    conn.close()


def test_a_migration_step_whose_column_already_exists_is_skipped(tmp_path: Path) -> None:
    """A ledger that already has the column a step adds (another step added it) still opens."""
    _v1_ledger(tmp_path, extra="ALTER TABLE generations ADD COLUMN gateway_key TEXT")
    with Ledger.open(tmp_path) as led:
        assert led.generations()[0].gateway_key is None


def test_a_version_2_ledger_gets_what_may_have_been_billed_as_a_column(tmp_path: Path) -> None:
    """Opening a schema-2 ledger copies each receipt's possibly-billed figure into its own column,
    so a gateway key's spend (cost plus what may have been billed) is summed without the JSON."""
    from datetime import UTC, datetime

    path = _v1_ledger(tmp_path)
    conn = sqlite3.connect(path)
    for statement in ledger_module.MIGRATIONS[0][1]:
        conn.execute(statement)
    conn.execute("UPDATE generations SET gateway_key = 'app', receipt = '{\"possibly_billed_usd\": 0.05}'")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    with Ledger.open(tmp_path) as led:
        spent = led.key_spent("app", datetime(2026, 1, 1, tzinfo=UTC))
    assert abs(spent - 0.07) < 1e-9  # 0.02 paid + 0.05 possibly billed
