"""Reading a manifest's three formats (TOML, CSV, JSON Lines) into raw entries, unchecked."""

from __future__ import annotations

import csv
import io
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..paths import provider_names
from .fields import ITEM_FIELDS, META_PREFIX, ManifestError, unknown_field

__all__ = ["FORMATS", "Entry", "parse", "read_text"]

#: File suffixes understood, by format.
FORMATS = {".toml": "toml", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}

_LIST_FIELDS = ("references", "tags")
_TOML_ITEM_HEADER = re.compile(r"^\s*\[\[\s*items\s*\]\]\s*(#.*)?$")


@dataclass
class Entry:
    """One item as the file gave it: where it is (for messages) and its fields, unchecked."""

    where: str
    fields: dict[str, Any]


def parse(path: Path, fmt: str, text: str, problems: list[str]) -> tuple[dict[str, Any], list[Entry]]:
    """The defaults and the entries of a manifest in format `fmt`; what is wrong with single
    entries is added to `problems`, a file that cannot be read at all raises `ManifestError`."""
    if fmt == "toml":
        return _parse_toml(path, text, problems)
    if fmt == "csv":
        return {}, _parse_csv(text, problems)
    return _parse_jsonl(text, problems)


def read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ManifestError(f"manifest '{path}' not found: check the path") from None
    except IsADirectoryError:
        raise ManifestError(f"manifest '{path}' is a directory: pass a .toml, .csv or .jsonl file") from None
    except PermissionError:
        raise ManifestError(
            f"manifest '{path}' cannot be read (permission denied): check its permissions"
        ) from None
    except OSError as exc:
        raise ManifestError(f"manifest '{path}' cannot be read ({exc.strerror}): check the path") from None
    try:
        return data.decode("utf-8-sig")  # a BOM is what spreadsheets write
    except UnicodeDecodeError as exc:
        raise ManifestError(
            f"manifest '{path}' is not UTF-8 text (byte {exc.start}): save it as UTF-8"
        ) from None


def _parse_toml(path: Path, text: str, problems: list[str]) -> tuple[dict[str, Any], list[Entry]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"manifest '{path}' is not valid TOML ({exc}): fix the file") from None
    for key in data:
        if key not in ("defaults", "items"):
            problems.append(f"top level: unknown key {key!r}: use a [defaults] table and [[items]]")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        problems.append("defaults: must be a table ([defaults])")
        defaults = {}
    items = data.get("items", [])
    if not isinstance(items, list):
        raise ManifestError(f"manifest '{path}': `items` must be an array of tables: write each as [[items]]")
    # tomllib keeps no positions; when every item is an [[items]] block, their header lines are it.
    lines = [i for i, line in enumerate(text.splitlines(), 1) if _TOML_ITEM_HEADER.match(line)]
    entries: list[Entry] = []
    for i, item in enumerate(items, 1):
        where = f"item {i}" + (f" (line {lines[i - 1]})" if len(lines) == len(items) else "")
        if not isinstance(item, dict):
            problems.append(f"{where}: must be a table with at least a prompt")
            continue
        entries.append(Entry(where, item))
    return defaults, entries


def _parse_csv(text: str, problems: list[str]) -> list[Entry]:
    # strict: a quote opened and never closed is an error, not a cell that swallows the rest.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as exc:
        raise ManifestError(f"the manifest's CSV header cannot be read: {_csv_problem(exc)}") from None
    columns = [c.strip() for c in header]
    if "prompt" not in (c.lower() for c in columns):
        raise ManifestError(
            "the manifest's CSV header has no 'prompt' column: the first line must name the columns "
            "(prompt, references, n, size, aspect_ratio, seed, provider, name, tags, …)"
        )
    dupes = sorted({c for c in columns if c and columns.count(c) > 1})
    if dupes:
        raise ManifestError(f"the manifest's CSV header repeats {', '.join(dupes)}: name each column once")
    unknown = [c for c in columns if c and not _csv_column_known(c)]
    if unknown:
        listing = "; ".join(unknown_field(c, csv_column=True) for c in unknown)
        raise ManifestError(f"the manifest's CSV header has {listing}; nothing was sent")
    entries: list[Entry] = []
    line = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(f"line {line}: {_csv_problem(exc)}")
            break
        where, line = f"line {line}", reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(columns):
            problems.append(f"{where}: has {len(row)} cells but the header names {len(columns)} columns")
            continue
        fields: dict[str, Any] = {}
        for column, cell in zip(columns, row, strict=False):
            value = cell.strip()
            if not column or not value:
                continue  # an empty cell means "not given", so defaults and the model's own apply
            for key, val in _csv_field(column, value).items():
                if isinstance(val, dict) and isinstance(fields.get(key), dict):
                    if key == "extras":  # several replicate.* columns: one table per provider
                        for provider, table in val.items():
                            fields[key].setdefault(provider, {}).update(table)
                    else:
                        fields[key].update(val)
                else:
                    fields[key] = val
        entries.append(Entry(where, fields))
    return entries


def _csv_problem(exc: csv.Error) -> str:
    """What a CSV error means, and the fix."""
    if "unexpected end of data" in str(exc):
        return (
            'a quote (") opened here is never closed: close the quoted cell, or double a quote inside it ("")'
        )
    if "expected after" in str(exc):
        return (
            "a quoted cell goes on after its closing quote: quote the whole cell (double a quote inside it)"
        )
    return f"cannot be read as CSV ({exc}): fix the line"


def _csv_column_known(column: str) -> bool:
    lowered = column.lower()
    if lowered.startswith(META_PREFIX):
        return bool(column[len(META_PREFIX) :].strip())
    provider, dot, name = column.partition(".")
    if dot:
        return provider.lower() in provider_names() and bool(name)
    return lowered in ITEM_FIELDS - {"metadata", "extras"}


def _csv_field(column: str, value: str) -> dict[str, Any]:
    lowered = column.lower()
    if lowered.startswith(META_PREFIX):
        return {"metadata": {column[len(META_PREFIX) :].strip(): value}}
    if lowered in _LIST_FIELDS:
        return {lowered: [v.strip() for v in value.split(";") if v.strip()]}
    provider, dot, name = column.partition(".")
    if dot and provider.lower() in provider_names() and name:  # replicate.go_fast → extras, as --extra does
        try:
            parsed: Any = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        return {"extras": {provider.lower(): {name: parsed}}}
    return {lowered: value}


def _parse_jsonl(text: str, problems: list[str]) -> tuple[dict[str, Any], list[Entry]]:
    defaults: dict[str, Any] = {}
    entries: list[Entry] = []
    seen_item = False
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})")
            seen_item = True
            continue
        if not isinstance(obj, dict):
            problems.append(f"{where}: must be a JSON object with at least a prompt")
            seen_item = True
            continue
        if "defaults" in obj:
            if seen_item or defaults or len(obj) != 1 or not isinstance(obj["defaults"], dict):
                problems.append(f'{where}: defaults go on the first line alone, as {{"defaults": {{...}}}}')
            else:
                defaults = obj["defaults"]
            continue
        seen_item = True
        entries.append(Entry(where, obj))
    return defaults, entries
