"""Checking a manifest's entries: defaults merged, fields and references checked, items planned
and given their key (see the package docs) — every problem collected, none raised alone."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import ImageRelayError, UserError
from ..request import ImageRequest, problem_of
from .fields import ITEM_FIELDS, REQUEST_FIELDS, unknown_field
from .formats import Entry

__all__ = ["ManifestItem", "Planner", "build"]

#: Plans an item's request (raising UserError for an unknown provider or model); see `load_manifest`.
Planner = Callable[[ImageRequest], Any]


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


def build(
    path: Path,
    defaults: dict[str, Any],
    entries: list[Entry],
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
        problems.append("defaults: " + "; ".join(unknown_field(k) for k in unknown_defaults))
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
        raise _ItemProblem("; ".join(unknown_field(k) for k in unknown))
    if "prompt" not in fields:
        raise _ItemProblem("the prompt is missing: say what the image should show")
    name = fields.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise _ItemProblem("name must be a non-empty string")
    tags = _string_list(fields.get("tags", []), "tags")
    request_fields = {k: v for k, v in fields.items() if k in REQUEST_FIELDS}
    if "references" in request_fields:
        request_fields["references"] = tuple(_string_list(request_fields["references"], "references"))
    extra_metadata = fields.get("metadata", {})
    if not isinstance(extra_metadata, dict):
        raise _ItemProblem("metadata must be a table of fields")
    metadata = {str(k): _jsonable(v) for k, v in extra_metadata.items()}
    # The receipt's metadata carries the item's name and tags under these keys: one of the item's
    # own would be overwritten, or mistaken for them.
    clash = sorted(k for k in ("name", "tags") if k in metadata)
    if clash:
        raise _ItemProblem(
            f"metadata field {clash[0]!r} is the item's own {clash[0]}: set the item's {clash[0]}, "
            f"or rename the metadata field (e.g. '{clash[0]}_')"
        )
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
        problems[:0] = [problem_of(err, in_manifest=True) for err in exc.errors()]
        request = None
    if problems or request is None:
        raise _ItemProblem("; ".join(problems))
    content = request.model_dump(
        mode="json", exclude={"n", "metadata", "references", "mask"}, exclude_defaults=True
    )
    content["inputs"] = hashes
    return request, name.strip() if name else None, tags, content


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


def _plan_problem(plan: Planner, request: ImageRequest) -> str | None:
    from ..errors import ConfigError

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
            from ..references import load_mask, load_reference

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
