"""Image file names: the one place that says how they are made and how they are read back.

`stem()` names an image after its moment, its prompt and its request; the store writes it, and
the ledger reads the request id back out of a file name (`parse_stem`) to adopt an image a killed
run saved but never recorded. The two must agree, so both live here.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["IMAGE_EXTENSIONS", "StemParts", "image_name", "parse_stem", "short_id", "slugify", "stem"]

#: An image format → the extension its file gets.
IMAGE_EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp", "gif": "gif"}
#: How many leading hex digits of the request id a name carries: enough to be unique in a directory.
_ID_DIGITS = 8
_IMAGE_NAME = re.compile(
    rf"-(?P<request>[0-9a-f]{{{_ID_DIGITS}}})-(?P<index>\d+)"
    rf"\.(?:{'|'.join(sorted(set(IMAGE_EXTENSIONS.values())))})$"
)


@dataclass(frozen=True)
class StemParts:
    """What an image's file name says about where it came from."""

    request: str  # the request id's first digits (`short_id`)
    index: int  # which image of the request, from 1


def slugify(text: str, max_len: int = 48) -> str:
    """A file-name-safe slug: ASCII letters, digits and dashes only, never empty, never a path."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    if len(slug) > max_len:
        cut = slug[:max_len]
        slug = cut.rsplit("-", 1)[0] if "-" in cut[max_len // 2 :] else cut
    return slug.strip("-") or "image"


def short_id(receipt_id: str) -> str:
    """The part of a request id that its images' names carry."""
    return receipt_id[:_ID_DIGITS]


def stem(prompt: str, receipt_id: str, index: int) -> str:
    """`20261124-193012-a-red-fox-in-snow-1a2b3c4d-1`: sortable, readable, unique."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{slugify(prompt)}-{short_id(receipt_id)}-{index}"


def image_name(stem: str, fmt: str) -> str:
    """The file name of an image in format `fmt` (`jpeg`, `png`, …) named `stem`."""
    return f"{stem}.{IMAGE_EXTENSIONS.get(fmt, fmt)}"


def parse_stem(name: str) -> StemParts | None:
    """The request and index an image file name (`image_name(stem(...), fmt)`) carries, or None
    for any other name (a receipt, a failure receipt, a file of someone else's)."""
    match = _IMAGE_NAME.search(name)
    if match is None:
        return None
    return StemParts(match["request"], int(match["index"]))
