"""Test images, made on the fly: good ones in every format imagerelay meets, and bad ones.

Each `*_bytes` function returns the encoded file; `write(directory, name, data)` puts it in a
temporary directory and returns the path. `decode(data)` gives back the first frame as a loaded
image and `pixel(im, xy)` one pixel as a tuple, for pixel assertions. Colours are chosen so that
lossy formats still decode close to the requested value (compare with `close`).

    from tests.images import jpeg_bytes, write
    path = write(tmp_path, "cat.jpg", jpeg_bytes((640, 480)))
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

RED = (220, 30, 30)
GREEN = (30, 180, 60)
BLUE = (30, 60, 200)

Color = tuple[int, ...]


def write(directory: Path, name: str, data: bytes) -> Path:
    """Write `data` to `directory/name` and return the path."""
    path = directory / name
    path.write_bytes(data)
    return path


def decode(data: bytes) -> Image.Image:
    """Decode the first frame of `data` (any format, HEIC too) as a loaded image."""
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def pixel(im: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    """The pixel at `xy` as a tuple of ints in every mode ((v,) for L)."""
    value = im.getpixel(xy)
    if isinstance(value, tuple):
        return tuple(int(v) for v in value)
    assert value is not None
    return (int(value),)


def close(a: Color, b: Color, tolerance: int = 12) -> bool:
    """Whether two pixel values agree channel by channel within `tolerance` (lossy codecs)."""
    return len(a) == len(b) and all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def _save(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def solid(size: tuple[int, int] = (64, 48), color: Color | int = RED, mode: str = "RGB") -> Image.Image:
    """An in-memory image of one colour."""
    from PIL import Image

    return Image.new(mode, size, color)


def jpeg_bytes(size: tuple[int, int] = (64, 48), color: Color = RED, quality: int = 92) -> bytes:
    """A plain sRGB JPEG of one colour."""
    return _save(solid(size, color), "JPEG", quality=quality)


def png_bytes(size: tuple[int, int] = (64, 48), color: Color = RED) -> bytes:
    """An opaque RGB PNG of one colour."""
    return _save(solid(size, color), "PNG")


def rgba_png_bytes(size: tuple[int, int] = (64, 48), color: Color = (*RED, 128)) -> bytes:
    """An RGBA PNG whose alpha is really used (half transparent by default)."""
    return _save(solid(size, color, "RGBA"), "PNG")


def palette_png_with_transparency_bytes(size: tuple[int, int] = (32, 32)) -> bytes:
    """A palette (P-mode) PNG: left half red, right half fully transparent (tRNS)."""
    from PIL import Image

    im = Image.new("P", size, 0)
    im.putpalette([*RED, *BLUE] + [0] * (256 - 2) * 3)
    im.paste(1, (size[0] // 2, 0, size[0], size[1]))
    return _save(im, "PNG", transparency=1)


def png16_bytes(size: tuple[int, int] = (32, 24), value: int = 40000) -> bytes:
    """A 16-bit greyscale PNG (opens in Pillow as mode I;16) with every pixel at `value`."""
    return _save(solid(size, value, "I;16"), "PNG")


def webp_bytes(
    size: tuple[int, int] = (64, 48),
    color: Color = GREEN,
    *,
    alpha: int | None = None,
    lossless: bool = False,
) -> bytes:
    """A WebP of one colour; with `alpha` set it is RGBA with that alpha value."""
    if alpha is None:
        return _save(solid(size, color), "WEBP", quality=90, lossless=lossless)
    return _save(solid(size, (*color[:3], alpha), "RGBA"), "WEBP", quality=90, lossless=lossless)


def gif_bytes(size: tuple[int, int] = (40, 30), color: Color = BLUE) -> bytes:
    """A single-frame GIF of one colour."""
    return _save(solid(size, color).convert("P"), "GIF")


ANIMATION_COLORS = [RED, GREEN, BLUE]


def animated_gif_bytes(size: tuple[int, int] = (40, 30), frames: int = 12) -> bytes:
    """An animated GIF with `frames` frames cycling through ANIMATION_COLORS; frame 0 is RED."""
    images = [solid(size, ANIMATION_COLORS[i % len(ANIMATION_COLORS)]).convert("P") for i in range(frames)]
    return _save(images[0], "GIF", save_all=True, append_images=images[1:], duration=80, loop=0)


def heic_bytes(size: tuple[int, int] = (64, 48), color: Color = GREEN, *, alpha: int | None = None) -> bytes:
    """A HEIC image (via pillow_heif) of one colour; with `alpha` set it is RGBA."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    im = solid(size, color) if alpha is None else solid(size, (*color[:3], alpha), "RGBA")
    return _save(im, "HEIF", quality=90)


def exif_rotated_jpeg_bytes(size: tuple[int, int] = (80, 40), orientation: int = 6) -> bytes:
    """A JPEG stored `size` wide-by-high with an EXIF Orientation tag (6 = rotate 90° clockwise).

    The stored left half is RED and the right half BLUE, so after orientation 6 is applied the
    upright image is `size` transposed, with RED on top and BLUE at the bottom.
    """
    from PIL import Image

    im = solid(size, RED)
    im.paste(Image.new("RGB", (size[0] // 2, size[1]), BLUE), (size[0] // 2, 0))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _save(im, "JPEG", quality=95, exif=exif.tobytes())


def cmyk_jpeg_bytes(
    size: tuple[int, int] = (48, 32), cmyk: Color = (0, 255, 255, 0), *, icc_profile: bytes | None = None
) -> bytes:
    """A CMYK JPEG (mode CMYK in Pillow); the default ink is pure red. `icc_profile` is embedded as is."""
    return _save(solid(size, cmyk, "CMYK"), "JPEG", quality=95, icc_profile=icc_profile)


def int32_tiff_bytes(size: tuple[int, int] = (32, 16), low: int = 0, high: int = 1000) -> bytes:
    """A 32-bit integer greyscale TIFF (mode I): left half `low`, right half `high`."""
    from PIL import Image

    im = Image.new("I", size, low)
    im.paste(high, (size[0] // 2, 0, size[0], size[1]))
    return _save(im, "TIFF")


def noise_jpeg_bytes(size: tuple[int, int] = (1600, 1200), seed: int = 7, quality: int = 92) -> bytes:
    """A JPEG of random noise: nearly incompressible, so it is large for its dimensions."""
    from PIL import Image

    rng = random.Random(seed)
    im = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    return _save(im, "JPEG", quality=quality)


def noise_png_bytes(size: tuple[int, int] = (512, 512), seed: int = 7) -> bytes:
    """An RGB PNG of random noise (about 3 bytes per pixel)."""
    from PIL import Image

    rng = random.Random(seed)
    return _save(Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3)), "PNG")


def truncated_jpeg_bytes(size: tuple[int, int] = (256, 256)) -> bytes:
    """A noisy JPEG cut off at 60 %: the header is intact, the scan data is not."""
    whole = noise_jpeg_bytes(size)
    return whole[: len(whole) * 6 // 10]


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png_bytes(width: int = 200_000, height: int = 200_000) -> bytes:
    """A decompression bomb: a few hundred bytes of PNG whose header declares `width`x`height`."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    idat = zlib.compress(b"\x00" * (1 + 3 * 1024) * 4)  # a few rows; decoding never gets this far
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


TEXT_BYTES = b"shopping list:\n- cat food\n- film\n"
"""Plain text: a file that is not an image at all."""

EMPTY_BYTES = b""
"""A 0-byte file."""
