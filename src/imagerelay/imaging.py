"""Pillow in one place: verify image bytes, normalise them for a provider, embed provenance.

Every decode in imagerelay (references, masks, provider responses, thumbnails) goes through
`open_image`/`probe`, which refuse decompression bombs and truncated files. Pillow (and
pillow_heif) are imported inside the functions that need them, so importing this module is cheap.

Problems with the bytes raise `CorruptImage` (or a subclass); they are internal errors that the
caller turns into a user-facing one (`references` turns them into `InvalidReference`).
"""

from __future__ import annotations

import html
import io
import math
import re
import struct
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "DIGITAL_SOURCE_TYPE",
    "MAX_PIXELS",
    "CorruptImage",
    "DoesNotFit",
    "ImageInfo",
    "ImageTooLarge",
    "NotAMask",
    "NotAnImage",
    "embed_metadata",
    "human_bytes",
    "human_bytes_over",
    "image_size",
    "mask_png",
    "normalize",
    "open_image",
    "probe",
    "read_metadata",
    "thumbnail",
]

MAX_PIXELS = 64_000_000
"""Images declaring more pixels than this are refused before any pixel is decoded."""

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
"""IPTC digital source type for media created by a trained model: the 'AI-generated' label."""

JPEG_QUALITY = 92
# Below this long side, shrinking further to meet a byte limit makes a reference useless; lower
# the JPEG/WebP quality instead.
_MIN_LONG_SIDE = 512
_QUALITY_STEPS = (85, 75, 65, 50)

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
_WRITABLE = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}

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


class DoesNotFit(ValueError):
    """The image cannot be made small enough for the byte limit without becoming useless."""


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


# ---------------------------------------------------------------------------------------------
# Decoding, guarded


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
    from PIL import Image

    im = _open(data, max_pixels)
    try:
        with _bomb_guard():
            im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(im.width, im.height, max_pixels) from exc
    except _DECODE_ERRORS as exc:
        raise CorruptImage(f"truncated or corrupt ({exc})") from exc
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
    from PIL import Image

    im = _open(data, max_pixels)
    info = _describe(im)  # from the header, before any reduced decode changes the size
    try:
        with _bomb_guard():
            if im.format == "PNG":
                im.verify()
            else:
                if im.format == "JPEG":
                    im.draft(im.mode, (max(1, im.width // 8), max(1, im.height // 8)))
                im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(info.width, info.height, max_pixels) from exc
    except _DECODE_ERRORS as exc:
        raise CorruptImage(f"truncated or corrupt ({exc})") from exc
    return info


def _describe(im: Image.Image) -> ImageInfo:
    try:
        with _bomb_guard():
            return _info(im)  # counting frames walks the file: a broken later frame fails here
    except _DECODE_ERRORS as exc:
        raise CorruptImage(f"truncated or corrupt ({exc})") from exc


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height from the header alone (no decode); for bytes already verified."""
    return _open(data, MAX_PIXELS).size


# ---------------------------------------------------------------------------------------------
# Normalising for a provider


def human_bytes(n: int) -> str:
    """1048576 -> "1 MiB", 1536 -> "1.5 KiB"."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"


def human_bytes_over(n: int, limit: int) -> tuple[str, str]:
    """`n` and `limit` for "is N, over the LIMIT limit": exact byte counts when rounding would
    show both the same ("100 MiB, over the 100 MiB limit" explains nothing)."""
    shown, cap = human_bytes(n), human_bytes(limit)
    if shown == cap:
        return f"{n:,} bytes", f"{limit:,} bytes"
    return shown, cap


def _needs_8bit(mode: str) -> bool:
    """Pixels no provider should be sent even in a format it takes: CMYK, 16/32-bit, float."""
    return mode in ("CMYK", "I", "F") or mode.startswith("I;16")


def _to_8bit(im: Image.Image) -> tuple[Image.Image, str | None]:
    """Bring any Pillow mode to one of L, LA, RGB, RGBA; say so when it is a real change."""
    mode = im.mode
    if mode == "CMYK":
        icc = im.info.get("icc_profile")
        if icc:
            from PIL import ImageCms

            # Convert through the embedded profile: Pillow's plain CMYK->RGB ignores it and
            # shifts colours noticeably.
            try:
                src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
                converted = ImageCms.profileToProfile(
                    im, src, ImageCms.createProfile("sRGB"), outputMode="RGB"
                )
                if converted is not None:
                    return converted, "CMYK converted to RGB"
            except (ImageCms.PyCMSError, OSError):
                pass  # a broken profile: fall back to the plain conversion
        return im.convert("RGB"), "CMYK converted to RGB"
    if mode.startswith("I;16"):
        return im.point(lambda v: v / 256).convert("L"), "16-bit converted to 8-bit"
    if mode in ("I", "F"):
        lo, hi = cast("tuple[float, float]", im.getextrema())  # single band: (min, max)
        if lo < 0 or hi > 255:
            span = (hi - lo) or 1
            im = im.point(lambda v: (v - lo) * 255 / span)
        return im.convert("L"), "32-bit converted to 8-bit"
    if mode in ("L", "LA", "RGB", "RGBA"):
        if mode in ("L", "RGB") and "transparency" in im.info:
            return im.convert(mode + "A"), None  # a tRNS colour key becomes a real alpha channel
        return im, None
    if mode == "1":
        return im.convert("L"), None
    if mode in ("La", "PA"):
        return im.convert("LA" if mode == "La" else "RGBA"), None
    # P (palette; with transparency -> RGBA), RGBa, RGBX, YCbCr, LAB, HSV …
    return im.convert("RGBA" if im.has_transparency_data else "RGB"), None


def _alpha_in_use(im: Image.Image) -> bool:
    if im.mode not in ("LA", "RGBA"):
        return False
    low, _ = cast("tuple[int, int]", im.getchannel("A").getextrema())
    return low < 255


def _fit_within(size: tuple[int, int], max_side: int | None, max_pixels: int | None) -> tuple[int, int]:
    """Largest size with the same aspect ratio within both limits (never larger than `size`)."""
    w, h = size
    scale = 1.0
    if max_side is not None and max(w, h) > max_side:
        scale = max_side / max(w, h)
    if max_pixels is not None and w * h * scale * scale > max_pixels:
        scale = math.sqrt(max_pixels / (w * h))
    if scale >= 1.0:
        return size
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    # Rounding can overshoot a limit by a pixel; trim until both hold.
    while (max_side is not None and max(nw, nh) > max_side) or (
        max_pixels is not None and nw * nh > max_pixels
    ):
        if nw >= nh:
            nw -= 1
            nh = max(1, round(h * nw / w))
        else:
            nh -= 1
            nw = max(1, round(w * nh / h))
    return nw, nh


def _choose_mime(source_mime: str, alpha: bool, accept: frozenset[str]) -> str:
    """Keep the source format when the provider takes it; else PNG for alpha, JPEG otherwise."""
    if alpha:
        preferred = ("image/png", "image/webp", "image/jpeg")
    else:
        preferred = ("image/jpeg", "image/png", "image/webp")
    for mime in (source_mime, *preferred):
        if mime in accept and mime in _WRITABLE:
            return mime
    raise ValueError(f"accept={sorted(accept)} names no format imagerelay can write (JPEG, PNG, WebP)")


def _encode(im: Image.Image, mime: str, quality: int, icc: bytes | None) -> bytes:
    buf = io.BytesIO()
    if mime == "image/jpeg":
        im.save(buf, "JPEG", quality=quality, optimize=True, icc_profile=icc)
    elif mime == "image/webp":
        im.save(buf, "WEBP", quality=quality, icc_profile=icc)
    else:
        im.save(buf, "PNG", icc_profile=icc)
    return buf.getvalue()


def normalize(
    data: bytes,
    *,
    accept: frozenset[str],
    max_bytes: int,
    max_side: int | None = None,
    max_pixels: int | None = None,
    label: str = "image",
) -> tuple[bytes, str, list[str]]:
    """Make `data` acceptable to a provider; return (bytes, mime, notes).

    Applies EXIF orientation, converts CMYK / 16-bit / palette-with-transparency pixels, takes the
    first frame of an animation, converts formats not in `accept` (PNG when there is alpha, else
    JPEG), and downscales (then lowers JPEG quality) to fit `max_side`, `max_pixels` and
    `max_bytes`. Each change adds a note starting with `label`. When nothing needs to change the
    original bytes are returned untouched, with no notes.

    Raises CorruptImage for unusable bytes and DoesNotFit when `max_bytes` cannot be met.
    """
    from PIL import Image, ImageOps

    im = open_image(data)
    info = _describe(im)
    notes: list[str] = []

    def note(text: str) -> None:
        notes.append(f"{label}: {text}")

    # Providers differ in whether they honour EXIF orientation, so bake it into the pixels.
    orientation = im.getexif().get(0x0112, 1)  # 0x0112: EXIF Orientation
    rotated = orientation in range(2, 9)
    upright = (info.height, info.width) if orientation in (5, 6, 7, 8) else (info.width, info.height)
    target_size = _fit_within(upright, max_side, max_pixels)
    untouched = (
        info.frames == 1
        and not rotated
        and info.mime in accept
        and not _needs_8bit(info.mode)
        and target_size == upright
        and len(data) <= max_bytes
    )
    if untouched:
        return data, info.mime, notes

    icc = None if info.mode == "CMYK" else im.info.get("icc_profile")
    if info.frames > 1:
        note(f"animated {info.display_format}, first frame of {info.frames} used")
    if rotated:
        im = ImageOps.exif_transpose(im)
        note("EXIF rotation applied")
    im, mode_note = _to_8bit(im)
    if mode_note:
        note(mode_note)
    alpha = _alpha_in_use(im)
    if not alpha and im.mode in ("LA", "RGBA"):
        im = im.convert(im.mode[:-1])  # an all-opaque alpha channel carries nothing

    mime = _choose_mime(info.mime, alpha, accept)
    if mime != info.mime:
        note(f"{info.display_format} converted to {_DISPLAY_BY_MIME[mime]}")
    if alpha and mime == "image/jpeg":
        flat = Image.new("RGB", im.size, "white")
        flat.paste(im.convert("RGBA"), mask=im.getchannel("A"))
        im = flat
        note("transparency flattened onto white (JPEG has no alpha)")

    start_size = im.size
    reasons: list[str] = []
    if target_size != im.size:
        im = im.resize(target_size, Image.Resampling.LANCZOS)
        if max_side is not None and max(start_size) > max_side:
            reasons.append(f"{max_side} px")
        if max_pixels is not None and start_size[0] * start_size[1] > max_pixels:
            megapixels = max_pixels / 1e6
            reasons.append(f"{megapixels:g} megapixel" + ("" if megapixels == 1 else "s"))

    quality = JPEG_QUALITY
    out = _encode(im, mime, quality, icc)
    shrunk_for_bytes = False
    while len(out) > max_bytes and max(im.size) > _MIN_LONG_SIDE:
        # Encoded size scales roughly with pixel count; aim a little under and never step
        # by less than 10 % or more than half, so the loop ends in a few rounds.
        factor = min(0.9, max(0.5, math.sqrt(max_bytes / len(out)) * 0.95))
        long_side = max(_MIN_LONG_SIDE, int(max(im.size) * factor))
        im = im.resize(_fit_within(im.size, long_side, None), Image.Resampling.LANCZOS)
        shrunk_for_bytes = True
        out = _encode(im, mime, quality, icc)
    if shrunk_for_bytes:
        reasons.append(human_bytes(max_bytes))
    if im.size != start_size:
        before, after = f"{start_size[0]}x{start_size[1]}", f"{im.width}x{im.height}"
        note(f"downscaled {before} → {after} to fit {' and '.join(reasons)}")

    if len(out) > max_bytes and mime != "image/png":
        for quality in _QUALITY_STEPS:
            out = _encode(im, mime, quality, icc)
            if len(out) <= max_bytes:
                note(f"{_DISPLAY_BY_MIME[mime]} quality lowered to {quality} to fit {human_bytes(max_bytes)}")
                break
    if len(out) > max_bytes:
        size, cap = human_bytes_over(len(out), max_bytes)
        raise DoesNotFit(f"{size} even at {im.width}x{im.height}, over the {cap} limit")
    return out, mime, notes


class NotAMask(ValueError):
    """The image cannot serve as an edit mask; the message says why and what to pass instead."""


def mask_png(data: bytes, info: ImageInfo) -> bytes:
    """An edit mask as an RGBA PNG whose transparent pixels mark the area to edit.

    A single-frame PNG with real transparency is returned untouched. Other images with
    transparency are re-encoded as RGBA PNG. An image without transparency must be greyscale
    (a colour image whose channels agree counts, since masks are often exported as RGB JPEG):
    its brightness becomes the alpha channel inverted, so white = edit, black = keep.
    Raises NotAMask otherwise, or when nothing would be edited.
    """
    from PIL import Image, ImageChops, ImageOps

    im = open_image(data)
    if info.format == "png" and info.mode in ("RGBA", "LA") and info.frames == 1 and _alpha_in_use(im):
        return data
    pixels, _ = _to_8bit(im)
    if _alpha_in_use(pixels):
        mask = pixels.convert("RGBA")
    else:
        grey = pixels.convert("L")
        if pixels.mode.startswith("RGB"):
            spread = ImageChops.difference(pixels.convert("RGB"), grey.convert("RGB")).getextrema()
            if max(high for _, high in cast("tuple[tuple[int, int], ...]", spread)) > 24:
                raise NotAMask(
                    "has no transparency and is not greyscale: pass a PNG whose transparent pixels "
                    "mark the area to edit, or a black-and-white image (white = edit)"
                )
        mask = Image.new("RGBA", grey.size, (0, 0, 0, 255))
        mask.putalpha(ImageOps.invert(grey))
    if not _alpha_in_use(mask):
        raise NotAMask(
            "has no transparent pixels, so nothing would be edited: make the area to edit "
            "transparent (or white, in a black-and-white mask)"
        )
    return _encode(mask, "image/png", 0, None)


def thumbnail(data: bytes, max_side: int = 384) -> bytes:
    """A small upright copy for a contact sheet: PNG when it has transparency, else JPEG."""
    from PIL import Image, ImageOps

    im = open_image(data)
    transposed = ImageOps.exif_transpose(im)
    im, _ = _to_8bit(transposed)
    im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if _alpha_in_use(im):
        return _encode(im, "image/png", 0, None)
    if im.mode in ("LA", "RGBA"):
        im = im.convert(im.mode[:-1])
    return _encode(im, "image/jpeg", 85, None)


# ---------------------------------------------------------------------------------------------
# Provenance metadata (XMP) inside the file, without re-encoding pixels

_NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "imagerelay": "https://imagerelay.dev/ns/1.0/",
}
_XMP_JPEG_SIGNATURE = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_JPEG_MAX = 65533 - len(_XMP_JPEG_SIGNATURE)  # one APP1 segment; longer needs "extended XMP"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Patterns stay strings (re caches them on first use): compiling at import would slow start-up.
_FIELD_NAME = r"[A-Za-z_][A-Za-z0-9_.-]*"
# Characters XML 1.0 cannot carry at all (most C0 controls, lone surrogates, U+FFFE/FFFF).
_XML_INVALID = "[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"


def _xml_text(value: str) -> str:
    return html.escape(re.sub(_XML_INVALID, "", value), quote=False)


def _xmp_packet(description: str, fields: dict[str, str]) -> bytes:
    props = "".join(f"\n   <imagerelay:{k}>{_xml_text(v)}</imagerelay:{k}>" for k, v in fields.items())
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        f'<x:xmpmeta xmlns:x="{_NS["x"]}">\n'
        f' <rdf:RDF xmlns:rdf="{_NS["rdf"]}">\n'
        '  <rdf:Description rdf:about=""\n'
        f'    xmlns:dc="{_NS["dc"]}"\n'
        f'    xmlns:Iptc4xmpExt="{_NS["Iptc4xmpExt"]}"\n'
        f'    xmlns:imagerelay="{_NS["imagerelay"]}"\n'
        f'    Iptc4xmpExt:DigitalSourceType="{DIGITAL_SOURCE_TYPE}">\n'
        "   <dc:description><rdf:Alt>"
        f'<rdf:li xml:lang="x-default">{_xml_text(description)}</rdf:li>'
        f"</rdf:Alt></dc:description>{props}\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


def _fitting_packet(description: str, fields: dict[str, str], limit: int | None) -> bytes:
    """The XMP packet, with the longest values shortened (marked "…") until it fits `limit`.

    Only JPEG has a hard limit (one APP1 segment); the full values are in the sidecar receipt.
    """
    values = {"": description, **fields}
    while True:
        packet = _xmp_packet(values[""], {k: v for k, v in values.items() if k})
        if limit is None or len(packet) <= limit:
            return packet
        longest = max(values, key=lambda k: len(values[k]))
        if len(values[longest]) < 16:
            raise ValueError("too many metadata fields to fit in a JPEG XMP segment")
        values[longest] = values[longest][: len(values[longest]) // 2] + "…"


def embed_metadata(data: bytes, info: ImageInfo, *, description: str, fields: dict[str, str]) -> bytes:
    """Return `data` with an XMP packet marking it AI-generated and summarising its receipt.

    The packet holds Iptc4xmpExt:DigitalSourceType = trainedAlgorithmicMedia, dc:description and
    one `imagerelay:<name>` property per field. It replaces any XMP already in the file. JPEG gets
    an APP1 segment, PNG `iTXt` chunks (XMP and Description), WebP an `XMP ` RIFF chunk: the
    compressed pixel data is copied byte for byte. Raises ValueError for other formats.
    """
    for name in fields:
        if not re.fullmatch(_FIELD_NAME, name):
            raise ValueError(f"metadata field name {name!r} is not a valid XML name")
    if info.mime == "image/jpeg" and data.startswith(b"\xff\xd8"):
        return _jpeg_with_xmp(data, _fitting_packet(description, fields, _XMP_JPEG_MAX))
    packet = _fitting_packet(description, fields, None)
    if info.mime == "image/png" and data.startswith(_PNG_SIGNATURE):
        return _png_with_xmp(data, packet, description)
    if info.mime == "image/webp" and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_with_xmp(data, packet, info)
    raise ValueError(f"cannot embed metadata in {info.display_format} (JPEG, PNG or WebP only)")


def _jpeg_with_xmp(data: bytes, packet: bytes) -> bytes:
    payload = _XMP_JPEG_SIGNATURE + packet
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    kept: list[bytes] = []
    insert_at = 0  # after the leading JFIF APP0 / Exif APP1 segments, which readers expect first
    leading = True
    pos = 2
    # Walk the marker segments up to the first that is not APPn/COM (DQT, SOF, SOS …).
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if not (0xE0 <= marker <= 0xEF or marker == 0xFE):
            break
        end = pos + 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        seg = data[pos:end]
        pos = end
        if marker == 0xE1 and seg[4:].startswith(_XMP_JPEG_SIGNATURE):
            continue  # the old XMP packet is replaced
        kept.append(seg)
        leading = leading and (marker == 0xE0 or seg[4:10] == b"Exif\x00\x00")
        if leading:
            insert_at = len(kept)
    kept.insert(insert_at, segment)
    return data[:2] + b"".join(kept) + data[pos:]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _itxt(keyword: str, text: str) -> bytes:
    # keyword NUL, compression flag 0, method 0, empty language tag NUL, empty translation NUL
    return _png_chunk(b"iTXt", keyword.encode("latin-1") + b"\x00\x00\x00\x00\x00" + text.encode())


def _png_with_xmp(data: bytes, packet: bytes, description: str) -> bytes:
    replaced = {b"XML:com.adobe.xmp", b"Description"}
    out = [_PNG_SIGNATURE]
    pos = len(_PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos : pos + 12 + length]
        pos += 12 + length
        if kind in (b"iTXt", b"tEXt", b"zTXt") and chunk[8:].split(b"\x00", 1)[0] in replaced:
            continue
        if kind == b"IEND":
            out += [_itxt("XML:com.adobe.xmp", packet.decode()), _itxt("Description", description), chunk]
            return b"".join(out)
        out.append(chunk)
    raise ValueError("PNG has no IEND chunk: cannot embed metadata")


def _webp_with_xmp(data: bytes, packet: bytes, info: ImageInfo) -> bytes:
    chunks: list[tuple[bytes, bytes]] = []
    end = min(len(data), 8 + struct.unpack("<I", data[4:8])[0])  # ignore bytes after the RIFF
    pos = 12
    while pos + 8 <= end:
        kind, size = struct.unpack("<4sI", data[pos : pos + 8])
        chunks.append((kind, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    chunks = [(k, body) for k, body in chunks if k != b"XMP "]
    if chunks and chunks[0][0] == b"VP8X":
        header = bytearray(chunks[0][1])
        header[0] |= 0x04  # XMP present
        chunks[0] = (b"VP8X", bytes(header))
    else:
        # A simple (lossy VP8 / lossless VP8L) file: metadata needs the extended VP8X header,
        # which carries the canvas size minus one in 24-bit fields.
        flags = 0x04 | (0x10 if info.has_alpha else 0)
        canvas = (info.width - 1).to_bytes(3, "little") + (info.height - 1).to_bytes(3, "little")
        vp8x = struct.pack("<I", flags) + canvas
        chunks.insert(0, (b"VP8X", vp8x))
    chunks.append((b"XMP ", packet))  # XMP comes last in an extended WebP
    body = b"".join(k + struct.pack("<I", len(c)) + c + (b"\x00" if len(c) & 1 else b"") for k, c in chunks)
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body


def read_metadata(data: bytes) -> dict[str, str]:
    """Read back what `embed_metadata` wrote: DigitalSourceType, description and the fields.

    Finds the XMP packet by scanning for its `<?xpacket` wrapper, as the XMP specification
    allows for any file format. Returns {} when there is none.
    """
    import xml.etree.ElementTree as ET

    start = data.find(b"<?xpacket begin=")
    end = data.find(b"<?xpacket end=", start)
    if start < 0 or end < 0:
        return {}
    end = data.find(b"?>", end) + 2
    try:
        root = ET.fromstring(data[start:end])
    except ET.ParseError:
        return {}
    result: dict[str, str] = {}
    source_type_key = f"{{{_NS['Iptc4xmpExt']}}}DigitalSourceType"
    ours = f"{{{_NS['imagerelay']}}}"
    for desc in root.iter(f"{{{_NS['rdf']}}}Description"):
        if source_type_key in desc.attrib:
            result["DigitalSourceType"] = desc.attrib[source_type_key]
        for child in desc:
            if child.tag == source_type_key:
                result["DigitalSourceType"] = (child.text or "").strip()
            elif child.tag == f"{{{_NS['dc']}}}description":
                li = child.find(f".//{{{_NS['rdf']}}}li")
                result["description"] = (li.text or "") if li is not None else ""
            elif child.tag.startswith(ours):
                result[child.tag.removeprefix(ours)] = child.text or ""
    return result
