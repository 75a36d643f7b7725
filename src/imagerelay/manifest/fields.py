"""What a manifest item may say, and the one error for a manifest that cannot be used."""

from __future__ import annotations

import re

from ..errors import ManifestError
from ..request import ImageRequest

__all__ = ["ITEM_FIELDS", "META_PREFIX", "REQUEST_FIELDS", "ManifestError", "unknown_field"]

REQUEST_FIELDS = frozenset(ImageRequest.model_fields) - {"metadata"}
#: Every field an item (or [defaults]) may have.
ITEM_FIELDS = REQUEST_FIELDS | {"name", "tags", "metadata"}
#: The CSV column prefix of a free-form metadata field (`meta.publish_on`).
META_PREFIX = "meta."


def unknown_field(name: str, *, csv_column: bool = False) -> str:
    """`unknown field 'refrences' (did you mean 'references'?)`, or where free-form data goes."""
    import difflib

    what = "column" if csv_column else "field"
    if csv_column and name.strip().lower().startswith(META_PREFIX):  # `meta.` with nothing after it
        return f"column {name!r} names no field: write {META_PREFIX}FIELD (e.g. {META_PREFIX}publish_on)"
    wanted = re.sub(r"[\s\-]+", "_", name.strip().lower())
    known = sorted(ITEM_FIELDS - ({"metadata", "extras"} if csv_column else set()))
    match = [wanted] if wanted in known else difflib.get_close_matches(wanted, known, n=1, cutoff=0.6)
    if match:
        return f"unknown {what} {name!r} (did you mean {match[0]!r}?)"
    if csv_column:
        return f"unknown column {name!r}: name free-form data {META_PREFIX}{name.strip()}"
    return f"unknown field {name!r}: put free-form data in the item's metadata table"
