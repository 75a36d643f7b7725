"""Batch manifests: TOML, CSV or JSON Lines in, validated items out — every problem at once.

```toml
[defaults]                      # applies to every item; an item's own fields win
provider = "xai"
aspect_ratio = "4:5"

[[items]]
name = "monday-post"            # used in file names; must be unique
prompt = "a lighthouse at dusk"
references = ["photos/coast.jpg"]   # relative to the manifest
tags = ["week-48"]
metadata = { publish_on = 2026-11-30 }   # free-form, kept in the receipt
```

CSV: one item a row, a header naming the columns; `references` and `tags` are `;`-separated, a
column `PROVIDER.FIELD` (`replicate.go_fast`) is a provider extra and a column `meta.FIELD` is
free-form metadata. JSON Lines: one object a line (free-form data in its `"metadata"` object); a
first line `{"defaults": {...}}` applies to every item.

Any other field or column is refused before anything is sent, with the nearest known name: a
misspelt `refrences` must not make an image without its reference.

An item's identity (its `key`) is a hash of what decides the image — prompt, references (by
content), shape, seed, provider, extras — plus its name. It depends neither on the item's position
nor on the manifest's path, so adding, removing or reordering items never makes the others look
new, and a renamed or copied manifest resumes in the same output directory; identical unnamed
items are told apart by their occurrence. `n`, tags and metadata are not part of it: asking for
more images of a finished item asks only for the rest.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from .errors import ImageRelayError, UserError
from .paths import provider_names
from .request import MAX_N, ImageRequest

__all__ = ["FORMATS", "ITEM_FIELDS", "Manifest", "ManifestError", "ManifestItem", "load_manifest"]

#: File suffixes understood, by format.
FORMATS = {".toml": "toml", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}

_REQUEST_FIELDS = frozenset(ImageRequest.model_fields) - {"metadata"}
#: Every field an item (or [defaults]) may have.
ITEM_FIELDS = _REQUEST_FIELDS | {"name", "tags", "metadata"}
#: The CSV column prefix of a free-form metadata field (`meta.publish_on`).
_META_PREFIX = "meta."
_LIST_FIELDS = ("references", "tags")
_TOML_ITEM_HEADER = re.compile(r"^\s*\[\[\s*items\s*\]\]\s*(#.*)?$")

#: Plans an item's request (raising UserError for an unknown provider or model); see `load_manifest`.
Planner = Callable[[ImageRequest], Any]


class ManifestError(UserError):
    """The manifest cannot be used; `.problems` lists each bad item as `"line 4: ..."`."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


@dataclass(frozen=True)
class ManifestItem:
    """One item of a manifest, validated."""

    position: int  # 1-based, in manifest order
    where: str  # "line 4" (CSV, JSON Lines) or "item 3" (TOML): for messages
    key: str  # stable identity across runs (see the module docs)
    request: ImageRequest
    name: str | None = None
    tags: tuple[str, ...] = ()
    #: The key earlier versions gave this item (it included the manifest's file name): a ledger
    #: that knows the item under it is carried over, never paid for again.
    legacy_key: str | None = None

    @property
    def n(self) -> int:
        return self.request.n

    @property
    def label(self) -> str:
        """The name, else the start of the prompt: for progress lines and messages."""
        if self.name:
            return self.name
        prompt = " ".join(self.request.prompt.split())
        return prompt if len(prompt) <= 48 else prompt[:47] + "…"


@dataclass
class Manifest:
    """A validated manifest: its items in order."""

    path: Path
    items: list[ManifestItem] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The manifest's file name: the batch it describes in the ledger."""
        return self.path.name


@dataclass
class _Entry:
    where: str
    fields: dict[str, Any]


def load_manifest(path: Path | str, *, plan: Planner | None = None) -> Manifest:
    """Read and validate a manifest; raise `ManifestError` listing every bad item.

    Nothing is sent: local references are read and decoded, and with `plan` (e.g.
    `Relay.plan`) each request is planned so that an unknown provider or model, or a request
    no configured model can serve, is caught here rather than after money was spent.
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ManifestError(
            f"manifest '{path}' has an unknown format ({path.suffix or 'no suffix'}): "
            "use a .toml, .csv or .jsonl file"
        )
    text = _read_text(path)
    problems: list[str] = []
    if fmt == "toml":
        defaults, entries = _parse_toml(path, text, problems)
    elif fmt == "csv":
        defaults, entries = {}, _parse_csv(text, problems)
    else:
        defaults, entries = _parse_jsonl(text, problems)
    if not entries and not problems:
        raise ManifestError(f"manifest '{path}' has no items: add at least one item with a prompt")
    items = _build(path, defaults, entries, problems, plan)
    if len(problems) == 1:  # one line, as every other input error
        raise ManifestError(
            f"manifest '{path}', {problems[0]}; nothing was sent: fix it and run again", problems
        )
    if problems:
        listing = "\n".join(f"  {p}" for p in problems)
        count = sum(1 for p in problems if not p.startswith(("defaults", "top level")))
        raise ManifestError(
            f"manifest '{path}' has {count or len(problems)} bad item(s); nothing was sent:\n{listing}\n"
            "fix them and run the batch again",
            problems,
        )
    return Manifest(path=path, items=items)


def _read_text(path: Path) -> str:
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


# ---- parsing ----------------------------------------------------------------------------------


def _parse_toml(path: Path, text: str, problems: list[str]) -> tuple[dict[str, Any], list[_Entry]]:
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
    entries: list[_Entry] = []
    for i, item in enumerate(items, 1):
        where = f"item {i}" + (f" (line {lines[i - 1]})" if len(lines) == len(items) else "")
        if not isinstance(item, dict):
            problems.append(f"{where}: must be a table with at least a prompt")
            continue
        entries.append(_Entry(where, item))
    return defaults, entries


def _parse_csv(text: str, problems: list[str]) -> list[_Entry]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as exc:
        raise ManifestError(f"the manifest's CSV header cannot be read ({exc}): fix the first line") from None
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
        listing = "; ".join(_unknown_field(c, csv_column=True) for c in unknown)
        raise ManifestError(f"the manifest's CSV header has {listing}; nothing was sent")
    entries: list[_Entry] = []
    line = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(f"line {line}: cannot be read as CSV ({exc})")
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
        entries.append(_Entry(where, fields))
    return entries


def _csv_column_known(column: str) -> bool:
    lowered = column.lower()
    if lowered.startswith(_META_PREFIX):
        return bool(column[len(_META_PREFIX) :].strip())
    provider, dot, name = column.partition(".")
    if dot:
        return provider.lower() in provider_names() and bool(name)
    return lowered in ITEM_FIELDS - {"metadata", "extras"}


def _csv_field(column: str, value: str) -> dict[str, Any]:
    lowered = column.lower()
    if lowered.startswith(_META_PREFIX):
        return {"metadata": {column[len(_META_PREFIX) :].strip(): value}}
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


def _parse_jsonl(text: str, problems: list[str]) -> tuple[dict[str, Any], list[_Entry]]:
    defaults: dict[str, Any] = {}
    entries: list[_Entry] = []
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
        entries.append(_Entry(where, obj))
    return defaults, entries


# ---- validation -------------------------------------------------------------------------------


def _build(
    path: Path,
    defaults: dict[str, Any],
    entries: list[_Entry],
    problems: list[str],
    plan: Planner | None,
) -> list[ManifestItem]:
    base = path.parent
    refs = _ReferenceChecker(base)
    bad_defaults = [k for k in ("prompt", "name") if k in defaults]
    if bad_defaults:
        problems.append(f"defaults: {', '.join(bad_defaults)} cannot be a default: give each item its own")
    unknown_defaults = [k for k in defaults if k not in ITEM_FIELDS]
    if unknown_defaults:  # said once here, not once per item
        problems.append("defaults: " + "; ".join(_unknown_field(k) for k in unknown_defaults))
        defaults = {k: v for k, v in defaults.items() if k in ITEM_FIELDS}
    items: list[ManifestItem] = []
    names: dict[str, str] = {}
    occurrences: dict[str, int] = {}
    for entry in entries:
        merged = _merge(defaults, entry.fields)
        try:
            request, name, tags, content = _request_of(merged, refs)
        except _ItemProblem as exc:
            problems.append(f"{entry.where}: {exc}")
            continue
        if name is not None:
            if name in names:
                problems.append(
                    f"{entry.where}: name {name!r} is also used by {names[name]}: names must be unique"
                )
                continue
            names[name] = entry.where
        if plan is not None:
            problem = _plan_problem(plan, request)
            if problem:
                problems.append(f"{entry.where}: {problem}")
                continue
        digest = _digest({"name": name, **content})
        occurrences[digest] = occurrences.get(digest, 0) + 1
        suffix = "" if occurrences[digest] == 1 else f".{occurrences[digest]}"
        items.append(
            ManifestItem(
                position=len(items) + 1,
                where=entry.where,
                key=digest + suffix,
                request=request,
                name=name,
                tags=tags,
                legacy_key=_digest({"manifest": path.name, "name": name, **content}) + suffix,
            )
        )
    return items


class _ItemProblem(Exception):
    """What is wrong with one item (the message is shown after its line or index)."""


def _merge(defaults: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    merged = {**defaults, **fields}
    for table in ("metadata", "extras"):  # tables merge key by key; the item's keys win
        a, b = defaults.get(table), fields.get(table)
        if isinstance(a, dict) and isinstance(b, dict):
            merged[table] = {**a, **b}
            if table == "extras":
                merged[table] = {p: {**a.get(p, {}), **b.get(p, {})} for p in {*a, *b}}
    return merged


def _request_of(
    fields: dict[str, Any], refs: _ReferenceChecker
) -> tuple[ImageRequest, str | None, tuple[str, ...], dict[str, Any]]:
    """The item's request, name, tags, and the content its key is made of."""
    unknown = [k for k in fields if k not in ITEM_FIELDS]
    if unknown:
        raise _ItemProblem("; ".join(_unknown_field(k) for k in unknown))
    if "prompt" not in fields:
        raise _ItemProblem("the prompt is missing: say what the image should show")
    name = fields.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise _ItemProblem("name must be a non-empty string")
    tags = _string_list(fields.get("tags", []), "tags")
    request_fields = {k: v for k, v in fields.items() if k in _REQUEST_FIELDS}
    if "references" in request_fields:
        request_fields["references"] = tuple(_string_list(request_fields["references"], "references"))
    extra_metadata = fields.get("metadata", {})
    if not isinstance(extra_metadata, dict):
        raise _ItemProblem("metadata must be a table of fields")
    metadata = {str(k): _jsonable(v) for k, v in extra_metadata.items()}
    if name is not None:
        metadata["name"] = name.strip()
    if tags:
        metadata["tags"] = list(tags)
    hashes: list[str] = []
    problems: list[str] = []
    resolved: list[str] = []
    for i, source in enumerate(request_fields.get("references", ()), 1):
        where, digest, problem = refs.check(source, f"reference {i}")
        resolved.append(where)
        hashes.append(digest)
        if problem:
            problems.append(problem)
    if resolved:
        request_fields["references"] = tuple(resolved)
    mask = request_fields.get("mask")
    if isinstance(mask, str):
        where, digest, problem = refs.check(mask, "mask", mask=True)
        request_fields["mask"] = where
        hashes.append("mask:" + digest)
        if problem:
            problems.append(problem)
    try:
        request = ImageRequest(**request_fields, metadata=metadata)
    except ValidationError as exc:
        problems[:0] = [_describe(err) for err in exc.errors()]
        request = None
    if problems or request is None:
        raise _ItemProblem("; ".join(problems))
    content = request.model_dump(
        mode="json", exclude={"n", "metadata", "references", "mask"}, exclude_defaults=True
    )
    content["inputs"] = hashes
    return request, name.strip() if name else None, tags, content


def _unknown_field(name: str, *, csv_column: bool = False) -> str:
    """`unknown field 'refrences' (did you mean 'references'?)`, or where free-form data goes."""
    import difflib

    what = "column" if csv_column else "field"
    wanted = re.sub(r"[\s\-]+", "_", name.strip().lower())
    known = sorted(ITEM_FIELDS - ({"metadata", "extras"} if csv_column else set()))
    match = [wanted] if wanted in known else difflib.get_close_matches(wanted, known, n=1, cutoff=0.6)
    if match:
        return f"unknown {what} {name!r} (did you mean {match[0]!r}?)"
    if csv_column:
        return f"unknown column {name!r}: name free-form data {_META_PREFIX}{name.strip()}"
    return f"unknown field {name!r}: put free-form data in the item's metadata table"


def _string_list(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise _ItemProblem(f"{what} must be a list of strings")
    return tuple(v.strip() for v in value if v.strip())


def _jsonable(value: Any) -> Any:
    """TOML dates and times become ISO strings: the receipt is JSON."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _describe(err: Any) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    msg = str(err.get("ctx", {}).get("error") or err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"unknown request field {loc!r}"
    if loc == "n" and err["type"] == "value_error":
        return f"n must be between 1 and {MAX_N}: split the item into several items for more"
    if loc in ("", "prompt"):
        return msg
    return f"{loc}: {msg}"


def _plan_problem(plan: Planner, request: ImageRequest) -> str | None:
    from .errors import ConfigError

    try:
        result = plan(request)
    except ConfigError:
        raise  # a broken [routing] is not this item's fault: one line, not one per item
    except ImageRelayError as exc:
        return str(exc)
    if getattr(result, "candidates", None) or getattr(result, "describe", None):
        return None
    excluded = getattr(result, "excluded", [])
    reasons = "; ".join(f"{e.ref}: {e.reason}" for e in excluded) or "no model is configured for it"
    return f"no model can serve this item ({reasons})"


class _ReferenceChecker:
    """Loads each local reference once (a catalogue may use one photo for every item)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._seen: dict[tuple[str, bool], tuple[str, str | None]] = {}

    def check(self, source: str, label: str, *, mask: bool = False) -> tuple[str, str, str | None]:
        """(the source as the relay will read it, a content hash, the problem or None)."""
        if "://" in source:
            return source, source, None  # URLs are fetched when the item runs
        path = Path(source).expanduser()
        if not path.is_absolute():
            path = self.base / path
        where = str(path)
        cached = self._seen.get((where, mask))
        if cached is None:
            from .references import load_mask, load_reference

            try:
                ref = load_mask(where, label=label) if mask else load_reference(where, label=label)
                cached = (ref.sha256, None)
            except UserError as exc:
                cached = ("", str(exc))
            self._seen[(where, mask)] = cached
        digest, problem = cached
        if problem:  # the message names the label of the first use; name this one's
            problem = problem.replace(problem.split(" '", 1)[0], label, 1)
        return where, digest, problem


def _digest(content: dict[str, Any]) -> str:
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]
