"""Reference images and masks: loaded and verified once, before anything is spent, then prepared
for each provider (format, size, orientation) with a note for every change.

Everything a user can get wrong here raises `InvalidReference` with one line that names the file
and the fix. Loading accepts anything Pillow can decode in full (HEIC, WebP, animated GIF, CMYK,
16-bit …); `prepare` converts it to what the provider takes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from . import imaging
from .errors import InvalidReference
from .imaging import ImageInfo, human_bytes, human_bytes_over

if TYPE_CHECKING:
    from collections.abc import Sequence

    import httpx

    from .catalog import ProviderSpec

__all__ = [
    "MAX_REFERENCE_FILE_BYTES",
    "ImageLimits",
    "PreparedImage",
    "Reference",
    "aload_reference",
    "as_mask",
    "load_mask",
    "load_reference",
    "prepare",
    "prepare_for",
    "reference_from_bytes",
]

MAX_REFERENCE_FILE_BYTES = 100 * 1024 * 1024
"""A reference file larger than this is refused outright, before it is read."""

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/gif": "gif"}


@dataclass(frozen=True)
class Reference:
    """One reference as the user gave it, loaded and verified.

    `data` holds the bytes as given, except for a mask converted by `as_mask` (then it is the
    converted PNG); `sha256` is always of the bytes as given, so receipts identify the user's file.
    """

    source: str  # the path or URL as given
    data: bytes = field(repr=False, compare=False)  # sha256 stands for it in ==/hash
    info: ImageInfo
    sha256: str

    @property
    def name(self) -> str:
        """Short display name: the file name (of a path or a URL)."""
        path = self.source.split("?", 1)[0].split("#", 1)[0].rstrip("/")
        return path.replace("\\", "/").rsplit("/", 1)[-1] or self.source


@dataclass(frozen=True)
class PreparedImage:
    """A reference as one provider will receive it."""

    data: bytes = field(repr=False)
    mime: str
    width: int
    height: int
    notes: tuple[str, ...] = ()
    label: str = "reference"  # "reference 1", "mask": names the upload

    def data_uri(self) -> str:
        """The image as a `data:image/jpeg;base64,...` URI."""
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"

    @property
    def filename(self) -> str:
        """A file name for multipart uploads, from the label: "reference-1.jpg", "mask.png"."""
        stem = re.sub(r"[^a-z0-9]+", "-", self.label.lower()).strip("-") or "image"
        return f"{stem}.{_EXTENSIONS.get(self.mime, 'bin')}"


@dataclass(frozen=True)
class ImageLimits:
    """What one provider/model accepts as an input image; built by the caller from the catalog."""

    accept: frozenset[str] = frozenset({"image/jpeg", "image/png"})
    max_bytes: int = 20 * 1024 * 1024
    max_side: int | None = None
    max_pixels: int | None = None


def _verified(source: str, data: bytes, what: str) -> Reference:
    """Decode `data` in full and wrap it; `what` starts every message ("reference 'cat.jpg'")."""
    if not data:
        raise InvalidReference(f"{what} is empty (0 bytes): pass an image file with something in it")
    try:
        info = imaging.probe(data)
    except imaging.ImageTooLarge as exc:
        size = f"{exc.width}x{exc.height} pixels" if exc.width else "more pixels than can be decoded safely"
        raise InvalidReference(
            f"{what} has {size}, over the {exc.max_pixels / 1e6:g}-megapixel limit: downscale it first"
        ) from exc
    except imaging.NotAnImage as exc:
        raise InvalidReference(
            f"{what} is not an image (Pillow cannot identify it): pass a JPEG, PNG, WebP, GIF or HEIC file"
        ) from exc
    except imaging.CorruptImage as exc:
        raise InvalidReference(f"{what} is truncated or corrupt: re-export it") from exc
    return Reference(source=source, data=data, info=info, sha256=hashlib.sha256(data).hexdigest())


def reference_from_bytes(data: bytes, *, source: str, label: str = "reference") -> Reference:
    """Verify image bytes received some other way (an upload, a data URI) as a reference.

    `source` names it in receipts and messages (e.g. "upload:photo.png"); it is never opened.
    """
    return _verified(source, data, f"{label} '{source}'")


def load_reference(source: str | os.PathLike[str], *, label: str = "reference") -> Reference:
    """Load and fully verify a local image file. Raises InvalidReference naming the problem."""
    shown = os.fspath(source)
    what = f"{label} '{shown}'"
    path = Path(shown).expanduser()
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise InvalidReference(f"{what} not found: check the path") from exc
    except PermissionError as exc:
        raise InvalidReference(f"{what} cannot be read (permission denied): check its permissions") from exc
    except OSError as exc:
        raise InvalidReference(f"{what} cannot be read ({exc.strerror}): check the path") from exc
    if stat.S_ISDIR(st.st_mode):
        raise InvalidReference(f"{what} is a directory: pass the path of an image file")
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
        raise InvalidReference(f"{what} is not a regular file: pass the path of an image file")
    if st.st_size > MAX_REFERENCE_FILE_BYTES:
        size, cap = human_bytes_over(st.st_size, MAX_REFERENCE_FILE_BYTES)
        raise InvalidReference(
            f"{what} is {size}, over the {cap} limit for a reference: downscale or recompress it first"
        )
    try:
        with path.open("rb") as f:
            data = f.read(MAX_REFERENCE_FILE_BYTES + 1)  # the file may have grown since stat()
    except PermissionError as exc:
        raise InvalidReference(f"{what} cannot be read (permission denied): check its permissions") from exc
    except OSError as exc:
        raise InvalidReference(f"{what} cannot be read ({exc.strerror}): check the file") from exc
    if len(data) > MAX_REFERENCE_FILE_BYTES:
        raise InvalidReference(
            f"{what} is over the {human_bytes(MAX_REFERENCE_FILE_BYTES)} limit for a reference: "
            "downscale or recompress it first"
        )
    return _verified(shown, data, what)


async def aload_reference(
    source: str,
    *,
    client: httpx.AsyncClient,
    allow_private: bool = False,
    label: str = "reference",
) -> Reference:
    """Load a reference from a local path or an https URL (see `netfetch.fetch_image_url`).

    Decoding runs in a worker thread so a large image does not stall the event loop.
    """
    if not _URL.match(source):
        return await asyncio.to_thread(load_reference, source, label=label)
    from .netfetch import fetch_image_url, shown_url

    data, _ = await fetch_image_url(
        source, client=client, max_bytes=MAX_REFERENCE_FILE_BYTES, allow_private=allow_private, label=label
    )
    return await asyncio.to_thread(_verified, source, data, f"{label} URL '{shown_url(source)}'")


def as_mask(ref: Reference, *, label: str = "mask") -> Reference:
    """Turn a loaded image into an edit mask: a PNG whose transparent pixels mark the area to edit.

    A PNG with real transparency is kept as it is; another image with transparency becomes an
    RGBA PNG; a greyscale image becomes the alpha channel with white = edit (transparent).
    Anything else, or a mask with nothing transparent, raises InvalidReference.
    """
    what = f"{label} '{ref.source}'"
    try:
        data = imaging.mask_png(ref.data, ref.info)
    except imaging.NotAMask as exc:
        raise InvalidReference(f"{what} {exc}") from exc
    if data is ref.data:
        return ref
    return Reference(source=ref.source, data=data, info=imaging.probe(data), sha256=ref.sha256)


def load_mask(source: str | os.PathLike[str], *, label: str = "mask") -> Reference:
    """Load a local mask file: `load_reference` then `as_mask`."""
    return as_mask(load_reference(source, label=label), label=label)


def prepare(ref: Reference, limits: ImageLimits, *, label: str = "reference 1") -> PreparedImage:
    """The reference as a provider with these limits will receive it (see `imaging.normalize`).

    Cached per (reference, limits, label): several candidates with the same limits share one
    conversion. Raises InvalidReference when the image cannot be made small enough.
    """
    return _prepare(ref, limits, label)


def prepare_for(
    provider: ProviderSpec,
    refs: Sequence[Reference],
    *,
    has_mask: bool,
    cache: dict[tuple[str, str], PreparedImage],
) -> tuple[tuple[PreparedImage, ...], PreparedImage | None, list[str]]:
    """`refs` (the mask last, when `has_mask`) converted to what `provider` takes: (the images, the
    mask, the notes of conversions made now). Each is converted once per `cache` and provider."""
    lim = provider.reference_limits
    limits = ImageLimits(
        accept=frozenset(lim.accept),
        max_bytes=lim.max_bytes,
        max_side=lim.max_side,
        max_pixels=lim.max_pixels,
    )
    # Masks stay PNG with alpha.
    masks = ImageLimits(accept=frozenset({"image/png"}), max_bytes=lim.mask_max_bytes or lim.max_bytes)
    images: list[PreparedImage] = []
    mask: PreparedImage | None = None
    notes: list[str] = []
    for i, ref in enumerate(refs):
        is_mask = has_mask and i == len(refs) - 1
        key = (provider.name, ref.sha256 + (":mask" if is_mask else ""))
        if key not in cache:
            cache[key] = prepare(
                ref, masks if is_mask else limits, label="mask" if is_mask else f"reference {i + 1}"
            )
            notes += cache[key].notes
        if is_mask:
            mask = cache[key]
        else:
            images.append(cache[key])
    return tuple(images), mask, notes


@lru_cache(maxsize=8)  # each entry holds image bytes: keep the cache small
def _prepare(ref: Reference, limits: ImageLimits, label: str) -> PreparedImage:
    try:
        data, mime, notes = imaging.normalize(
            ref.data,
            accept=limits.accept,
            max_bytes=limits.max_bytes,
            max_side=limits.max_side,
            max_pixels=limits.max_pixels,
            label=label,
        )
    except imaging.DoesNotFit as exc:
        raise InvalidReference(
            f"{label} '{ref.name}' cannot be made small enough for this provider ({exc}): "
            "crop or recompress it first"
        ) from exc
    except imaging.CorruptImage as exc:  # verified at load time; only a changed Reference gets here
        raise InvalidReference(f"{label} '{ref.name}' is truncated or corrupt: re-export it") from exc
    if data is ref.data:
        width, height = ref.info.width, ref.info.height
    else:
        width, height = imaging.image_size(data)
    return PreparedImage(data=data, mime=mime, width=width, height=height, notes=tuple(notes), label=label)
