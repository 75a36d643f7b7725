"""Recovery: images a directory could not take, or a killed run never recorded, brought back in."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
from pathlib import Path

from .. import naming
from .db import LedgerBase, log, now_iso, transaction

__all__ = ["Recovery"]


class Recovery(LedgerBase):
    """Put back in the ledger what is on disk but not (or not here) in it."""

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
                with transaction(self._conn):
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
        (`naming.stem`), so it is found and counted rather than paid for again.
        """
        from ..imaging import CorruptImage, probe

        rows = self._conn.execute(
            """SELECT receipt_id, item_key, planned_model FROM runs r
               WHERE NOT EXISTS (SELECT 1 FROM generations g WHERE g.receipt_id = r.receipt_id)"""
        ).fetchall()
        runs = {naming.short_id(rid): (rid, key, planned) for rid, key, planned in rows}
        if not runs:
            return 0
        known = {path for (path,) in self._conn.execute("SELECT path FROM images")}
        adopted = 0
        with os.scandir(self.directory) as entries:
            names = [e.name for e in entries if not e.name.startswith(".") and e.is_file()]
        for name in names:
            parts = naming.parse_stem(name)
            if parts is None or parts.request not in runs or name in known:
                continue
            receipt_id, item_key, planned = runs[parts.request]
            try:
                data = (self.directory / name).read_bytes()
                info = probe(data)
            except (OSError, CorruptImage):
                continue
            provider, _, model = (planned or "unknown:unknown").partition(":")
            with transaction(self._conn):
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
                        now_iso(),
                    ),
                )
            adopted += 1
        return adopted

    def adopt_rescued(self) -> int:
        """Bring back what was kept in a rescue directory for this directory but that the ledger
        never learnt of (it was on the full disk too): each image moved back beside its receipt,
        the receipt booked — so it is neither paid for again nor left out of the spend. Returns
        how many images came back."""
        from ..store import RESCUE_ORIGIN, rescue_roots

        me = str(self.directory.resolve())
        moved = 0
        for root in rescue_roots():
            with contextlib.suppress(OSError):
                for folder in sorted(p for p in root.iterdir() if p.is_dir()):
                    try:
                        if (folder / RESCUE_ORIGIN).read_text(encoding="utf-8") != me:
                            continue
                    except (OSError, UnicodeDecodeError):
                        continue
                    moved += self._adopt_rescue_dir(folder)
        return moved

    def _adopt_rescue_dir(self, folder: Path) -> int:
        import shutil

        from pydantic import ValidationError

        from ..receipt import Receipt
        from ..store import RESCUE_ORIGIN, atomic_write

        names = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
        moved = 0
        for source in [p for p in names if p.suffix != ".json"]:
            target = self.directory / source.name
            try:
                if not target.exists():
                    shutil.copy2(source, target)
                    moved += 1
                elif target.read_bytes() != source.read_bytes():
                    continue  # another file took its name: leave the rescued one where it is
                source.unlink()
            except OSError as exc:
                log.warning("could not move %s back into %s: %s", source, self.directory, exc)
                return moved
        for source in [p for p in names if p.suffix == ".json"]:
            try:
                receipt = Receipt.model_validate_json(source.read_bytes())
            except (OSError, ValidationError):
                continue
            for image in receipt.images:
                here = self.directory / Path(image.path).name
                if here.is_file():
                    image.path = str(here)
                    image.receipt_path = str(here.with_suffix(".json"))
            body = receipt.model_dump_json(indent=2).encode()
            try:
                targets = [Path(i.receipt_path) for i in receipt.images if i.receipt_path]
                for target in targets or [self.directory / source.name]:
                    if target.parent == self.directory:
                        atomic_write(target, body)
            except OSError as exc:
                log.warning("could not move %s back into %s: %s", source, self.directory, exc)
                return moved
            self.record_receipt(receipt)  # type: ignore[attr-defined]
            if receipt.id in self.unrecorded:
                return moved  # the ledger still cannot take it: keep the rescued receipt
            with contextlib.suppress(OSError):
                source.unlink()
        if not any(p.name != RESCUE_ORIGIN for p in folder.iterdir()):
            with contextlib.suppress(OSError):
                (folder / RESCUE_ORIGIN).unlink()
                folder.rmdir()
        return moved
