"""Guarded decoding: verify image bytes and describe them, refusing bombs and truncated files.

Every decode in imagerelay (references, masks, provider responses, thumbnails) goes through
`open_image`/`probe`. Pillow (and pillow_heif) are imported inside the functions that need them,
so importing this module is cheap. Problems with the bytes raise `CorruptImage` (or a subclass);
they are internal errors that the caller turns into a user-facing one.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "MAX_PIXELS",
    "CorruptImage",
    "ImageInfo",
    "ImageTooLarge",
    "NotAnImage",
    "display_name",
    "image_size",
    "info_of",
    "open_image",
    "probe",
]

MAX_PIXELS = 64_000_000
"""Images declaring more pixels than this are refused before any pixel is decoded."""

# Pillow format name -> (our format name, MIME type, display name). MPO is what Pillow calls a
# camera JPEG that carries extra preview images; every JPEG decoder reads its first image.
_FORMATS: dict[str, tuple[str, str, str]] = {
    "JPEG": ("jpeg", "image/jpeg", "JPEG"),
    "MPO": ("jpeg", "image/jpeg", "JPEG"),
    "PNG": ("png", "image/png", "PNG"),
    "WEBP": ("webp", "image/webp", "WebP"),
    "GIF": ("gif", "image/gif", "GIF"),
    "HEIF": ("heic", "image/heic", "HEIC"),
    "AVIF": ("avif", "image/avif", "AVIF"),
}
_DISPLAY_BY_MIME = {mime: display for _, mime, display in _FORMATS.values()}


def display_name(mime: str) -> str:
    """Human name of a format by MIME type: "JPEG", "WebP", "HEIC" …"""
    return _DISPLAY_BY_MIME.get(mime, mime.rpartition("/")[2].upper())


# What Pillow raises, besides its own bomb errors, when the bytes are not a decodable image.
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    TypeError,
    KeyError,
    struct.error,
    zlib.error,
)


class CorruptImage(ValueError):
    """The bytes cannot be used as an image: truncated, corrupt, unidentifiable or too large."""


class NotAnImage(CorruptImage):
    """Pillow cannot identify the bytes as any image format."""


class ImageTooLarge(CorruptImage):
    """The image declares more pixels than allowed (a possible decompression bomb).

    `width`/`height` are the declared dimensions, or None if even the header could not be read.
    """

    def __init__(self, width: int | None, height: int | None, max_pixels: int) -> None:
        dims = f"{width}x{height} pixels" if width and height else "more pixels than Pillow allows"
        super().__init__(f"image has {dims}, over the {max_pixels / 1e6:g}-megapixel limit")
        self.width = width
        self.height = height
        self.max_pixels = max_pixels


@dataclass(frozen=True)
class ImageInfo:
    """What `probe` found in a fully decoded image."""

    format: str  # "jpeg" | "png" | "webp" | "gif" | "heic" | … (lower-case)
    mime: str
    width: int
    height: int
    mode: str  # Pillow mode of the first frame: "RGB", "RGBA", "CMYK", "I;16", "P" …
    frames: int
    has_alpha: bool

    @property
    def display_format(self) -> str:
        """Human name of the format: "JPEG", "WebP", "HEIC" …"""
        return _DISPLAY_BY_MIME.get(self.mime, self.format.upper())


def _looks_like_heif(data: bytes) -> bool:
    # ISO-BMFF files (HEIC, HEIF, AVIF) start with a box whose type is "ftyp".
    return data[4:8] == b"ftyp"


@cache
def _register_heif() -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()


@contextmanager
def _bomb_guard() -> Iterator[None]:
    """Turn Pillow's DecompressionBombWarning into an error for the duration of a decode.

    Pillow's own MAX_IMAGE_PIXELS is left as it is (other code in the process relies on it); our
    stricter MAX_PIXELS is checked on the declared size right after the header is read.
    """
    from PIL import Image

    # catch_warnings is process-wide, so threads decoding at once may briefly see each other's
    # filters; harmless, since the size check in _open refuses whatever the warning would have.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


@contextmanager
def _decoding(width: int, height: int, max_pixels: int) -> Iterator[None]:
    """Decode pixels under the bomb guard: a bomb is `ImageTooLarge`, a broken file `CorruptImage`."""
    from PIL import Image

    try:
        with _bomb_guard():
            yield
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(width, height, max_pixels) from exc
    except _DECODE_ERRORS as exc:
        raise CorruptImage(f"truncated or corrupt ({exc})") from exc


def _declared_size(data: bytes) -> tuple[int | None, int | None]:
    """Dimensions from the header of an image that Pillow refused as a bomb, for the message.

    Pillow checks the size only after a format plugin has parsed the header, so asking the plugin
    directly reads the header and decodes nothing.
    """
    from PIL import Image

    Image.init()
    prefix = data[:16]
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        if accept is not None and accept(prefix) is not True:
            continue
        try:
            with _bomb_guard():
                size = factory(io.BytesIO(data), "").size
        except Exception:  # any plugin failure just means "unknown"; the refusal stands
            continue
        return size
    return None, None


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Open lazily (header only), refusing non-images and images over `max_pixels`."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise NotAnImage("no bytes at all")
    if _looks_like_heif(data):
        _register_heif()
    try:
        with _bomb_guard():
            im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise NotAnImage("Pillow cannot identify the bytes as an image") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(*_declared_size(data), max_pixels) from exc
    except _DECODE_ERRORS as exc:
        raise CorruptImage(f"unreadable header ({exc})") from exc
    width, height = im.size
    if width * height > max_pixels:
        raise ImageTooLarge(width, height, max_pixels)
    return im


def open_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode the first frame of `data` fully, refusing bombs, truncated and corrupt files.

    The returned image still knows its format and frame count (`n_frames`).
    """

    im = _open(data, max_pixels)
    with _decoding(im.width, im.height, max_pixels):
        im.load()
    return im


def _info(im: Image.Image) -> ImageInfo:
    pil_format = im.format or ""
    fmt, mime, _ = _FORMATS.get(pil_format, (pil_format.lower(), _pil_mime(pil_format), pil_format))
    # MPO's extra images are previews or stereo pairs, not animation frames.
    frames = 1 if pil_format == "MPO" else int(getattr(im, "n_frames", 1))
    return ImageInfo(
        format=fmt,
        mime=mime,
        width=im.width,
        height=im.height,
        mode=im.mode,
        frames=frames,
        has_alpha=im.has_transparency_data,
    )


def _pil_mime(pil_format: str) -> str:
    from PIL import Image

    return Image.MIME.get(pil_format, "application/octet-stream")


def probe(data: bytes, *, max_pixels: int = MAX_PIXELS) -> ImageInfo:
    """Verify that `data` is a complete, decodable image of sane size and describe it.

    Raises NotAnImage, ImageTooLarge or CorruptImage (truncated/corrupt). Every delivered image
    passes through here, so the two common formats are checked the cheap way: a JPEG is decoded
    at 1/8 scale (libjpeg still reads every entropy-coded byte, so truncation fails just the same)
    and a PNG has every chunk's CRC checked through IEND instead of inflating its pixels.
    """

    im = _open(data, max_pixels)
    info = info_of(im)  # from the header, before any reduced decode changes the size
    with _decoding(info.width, info.height, max_pixels):
        if im.format == "PNG":
            im.verify()
        else:
            if im.format == "JPEG":
                im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
            im.load()
    return info


def info_of(im: Image.Image) -> ImageInfo:
    """Describe an opened image (counting its frames walks the file)."""
    try:
        with _bomb_guard():
            return _info(im)  # counting frames walks the file: a broken later frame fails here
    except _DECODE_ERRORS as exc:
        raise CorruptImage(f"truncated or corrupt ({exc})") from exc


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height from the header alone (no decode); for bytes already verified."""
    return _open(data, MAX_PIXELS).size
