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

from dataclasses import dataclass, field
from pathlib import Path

from .fields import ITEM_FIELDS, ManifestError
from .formats import FORMATS, parse, read_text
from .items import ManifestItem, Planner, build

__all__ = ["FORMATS", "ITEM_FIELDS", "Manifest", "ManifestError", "ManifestItem", "load_manifest"]


@dataclass
class Manifest:
    """A validated manifest: its items in order."""

    path: Path
    items: list[ManifestItem] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The manifest's file name: the batch it describes in the ledger."""
        return self.path.name


def load_manifest(path: Path | str, *, plan: Planner | None = None) -> Manifest:
    """Read and validate a manifest; raise `ManifestError` listing every bad item.

    Nothing is sent: local references are read and decoded, and with `plan` (e.g.
    `Relay.plan`) each request is planned so that an unknown provider or model, or a request
    no configured model can serve, is caught here rather than after money was spent.
    """
    path = Path(path)
    if path.is_dir():
        raise ManifestError(f"manifest '{path}' is a directory: pass a .toml, .csv or .jsonl file")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ManifestError(
            f"manifest '{path}' has an unknown format ({path.suffix or 'no suffix'}): "
            "use a .toml, .csv or .jsonl file"
        )
    text = read_text(path)
    problems: list[str] = []
    defaults, entries = parse(path, fmt, text, problems)
    if not entries and not problems:
        raise ManifestError(f"manifest '{path}' has no items: add at least one item with a prompt")
    items = build(path, defaults, entries, problems, plan)
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
