"""Normalising for a provider: orientation, pixel modes, formats, sizes and byte limits; masks
and thumbnails. Pillow is imported inside the functions that need it."""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, cast

from .decode import ImageInfo, display_name, info_of, open_image

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["DoesNotFit", "NotAMask", "human_bytes", "human_bytes_over", "mask_png", "normalize", "thumbnail"]

JPEG_QUALITY = 92
# Below this long side, shrinking further to meet a byte limit makes a reference useless; lower
# the JPEG/WebP quality instead.
_MIN_LONG_SIDE = 512
_QUALITY_STEPS = (85, 75, 65, 50)
_WRITABLE = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}


class DoesNotFit(ValueError):
    """The image cannot be made small enough for the byte limit without becoming useless."""


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
    info = info_of(im)
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
        note(f"{info.display_format} converted to {display_name(mime)}")
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
                note(f"{display_name(mime)} quality lowered to {quality} to fit {human_bytes(max_bytes)}")
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
