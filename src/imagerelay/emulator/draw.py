"""Sandbox images: drawn with Pillow, deterministic from (prompt, seed, size, model).

Pillow is imported inside the functions so that importing the emulator stays cheap.
"""

from __future__ import annotations

import hashlib
import io
import math
import random
from contextvars import ContextVar
from typing import TYPE_CHECKING, Required, TypedDict, Unpack

from ..sandbox import EMULATOR_MARKER

if TYPE_CHECKING:
    from PIL.Image import Image


class Drawing(TypedDict, total=False):
    """What a sandbox picture is drawn from; the same prompt, seed, size, model and index always
    draw the same picture."""

    prompt: Required[str]
    model: Required[str]
    size: Required[tuple[int, int]]
    seed: int | None
    index: int
    #: Drawn over, lightly tinted, so that an edit visibly keeps its reference.
    reference: Image | None


MIME = {"jpeg": "image/jpeg", "jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}

#: What every image this emulator encodes says it is, in its EXIF `Software` tag: the relay books
#: an answer carrying it as sandbox output ($0), whatever environment it runs in (`sandbox`).
MARKER = EMULATOR_MARKER
#: Whether images encoded now carry `MARKER`: set per request by the server (an emulator made
#: with `marked=False` stands in for the real APIs, unmarked: the tests of real money paths).
MARKED: ContextVar[bool] = ContextVar("imagerelay_emulator_marked", default=True)

_NAMED_COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 60),
    "blue": (30, 60, 210),
    "yellow": (235, 220, 40),
    "orange": (240, 140, 30),
    "purple": (130, 50, 170),
    "cyan": (40, 200, 210),
    "magenta": (210, 40, 180),
    "white": (245, 245, 245),
    "black": (10, 10, 10),
    "gray": (128, 128, 128),
    "brown": (120, 75, 40),
}


def load(data: bytes) -> Image:
    """Decode image bytes fully; raises ValueError when they are not an image Pillow reads."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        img = PILImage.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ValueError(f"cannot decode image: {exc}") from exc
    return img


def _rng(prompt: str, seed: int | None, size: tuple[int, int], model: str, index: int) -> random.Random:
    key = f"{model}\x00{prompt}\x00{seed}\x00{size[0]}x{size[1]}\x00{index}".encode()
    return random.Random(int.from_bytes(hashlib.sha256(key).digest()[:8], "big"))


def draw(**drawing: Unpack[Drawing]) -> Image:
    """An RGB picture marked SANDBOX and the model name; built from `reference` when given."""
    from PIL import Image as PILImage
    from PIL import ImageDraw, ImageFont, ImageOps

    prompt, model, size = drawing["prompt"], drawing["model"], drawing["size"]
    seed, index, reference = drawing.get("seed"), drawing.get("index", 0), drawing.get("reference")

    w, h = size
    rng = _rng(prompt, seed, size, model, index)
    corners = PILImage.new("RGB", (2, 2))
    corners.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(4)])
    img = corners.resize(size, PILImage.Resampling.BILINEAR)
    canvas = ImageDraw.Draw(img)
    if reference is not None:
        # The reference fills the frame, lightly tinted, so its content and colour survive.
        fitted = ImageOps.fit(reference.convert("RGB"), size, PILImage.Resampling.BILINEAR)
        img = PILImage.blend(fitted, img, 0.2)
        canvas = ImageDraw.Draw(img)
        r = max(4, min(w, h) // 12)
        canvas.ellipse((r, r, 3 * r, 3 * r), fill=tuple(rng.randrange(256) for _ in range(3)))
    else:
        for _ in range(rng.randint(3, 6)):
            x0, y0 = rng.randrange(w), rng.randrange(h)
            x1, y1 = x0 + rng.randrange(w // 8 + 1, w // 2 + 2), y0 + rng.randrange(h // 8 + 1, h // 2 + 2)
            colour = tuple(rng.randrange(256) for _ in range(3))
            shape = canvas.ellipse if rng.random() < 0.5 else canvas.rectangle
            shape((x0, y0, x1, y1), fill=colour)
    band = max(12, h // 9)
    canvas.rectangle((0, h - band, w, h), fill=(0, 0, 0))
    big = ImageFont.load_default(size=max(8, band * 5 // 10))
    small = ImageFont.load_default(size=max(6, band * 3 // 10))
    canvas.text((band // 4, h - band + band // 12), "SANDBOX", font=big, fill=(255, 255, 255))
    caption = f"{model} · {prompt[:60]}"
    canvas.text((band // 4, h - band * 4 // 10), caption, font=small, fill=(255, 210, 0))
    return img


def mosaic(images: list[Image], size: tuple[int, int]) -> Image:
    """The images tiled in order, row by row, in a grid as square as their count allows."""
    from PIL import Image as PILImage
    from PIL import ImageOps

    if len(images) == 1:
        return images[0]
    w, h = size
    cols = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / cols)
    cell = (max(1, w // cols), max(1, h // rows))
    sheet = PILImage.new("RGB", (cell[0] * cols, cell[1] * rows))
    for i, img in enumerate(images):
        tile = ImageOps.fit(img.convert("RGB"), cell, PILImage.Resampling.BILINEAR)
        sheet.paste(tile, ((i % cols) * cell[0], (i // cols) * cell[1]))
    return sheet


def encode(img: Image, fmt: str = "jpeg", quality: int = 90, transparent: bool = False) -> bytes:
    """Encode as jpeg|jpg|png|webp; `transparent` clears a border in formats with alpha."""
    fmt = fmt.lower()
    out = io.BytesIO()
    if transparent and fmt in ("png", "webp"):
        from PIL import ImageDraw

        img = img.convert("RGBA")
        w, h = img.size
        alpha = img.getchannel("A")
        b = max(1, min(w, h) // 16)
        ImageDraw.Draw(alpha).rectangle((b, b, w - b - 1, h - b - 1), outline=0, width=b)
        img.putalpha(alpha)
    extra: dict[str, bytes] = {}
    if MARKED.get():
        exif = img.getexif()
        exif[0x0131] = MARKER  # Software
        extra["exif"] = exif.tobytes()
    if fmt in ("jpeg", "jpg"):
        img.convert("RGB").save(out, "JPEG", quality=max(1, min(quality, 95)), **extra)
    elif fmt == "png":
        img.save(out, "PNG", compress_level=1, **extra)  # speed over size: this is a sandbox
    elif fmt == "webp":
        img.save(out, "WEBP", quality=max(1, min(quality, 100)), method=0, **extra)
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return out.getvalue()


def render(
    *, fmt: str = "jpeg", quality: int = 90, transparent: bool = False, **drawing: Unpack[Drawing]
) -> bytes:
    """draw() then encode(): the bytes of one sandbox image."""
    return encode(draw(**drawing), fmt, quality, transparent)


def mean_colour(img: Image) -> tuple[int, int, int]:
    from PIL import Image as PILImage

    px = img.convert("RGB").resize((1, 1), PILImage.Resampling.BOX).getpixel((0, 0))
    assert isinstance(px, tuple)
    return (int(px[0]), int(px[1]), int(px[2]))


def colour_name(rgb: tuple[int, int, int]) -> str:
    """The nearest of a few plain colour names."""
    return min(
        _NAMED_COLOURS, key=lambda n: sum((a - b) ** 2 for a, b in zip(_NAMED_COLOURS[n], rgb, strict=True))
    )


def describe(img: Image) -> str:
    """A deterministic one-line description, used by the emulated vision chat."""
    rgb = mean_colour(img)
    w, h = img.size
    return (
        f"A sandbox description: a {w}x{h} image, mostly {colour_name(rgb)} "
        f"(mean colour #{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x})."
    )


def ratio_size(ratio_w: float, ratio_h: float, long_side: int, multiple: int = 2) -> tuple[int, int]:
    """Pixel size for an aspect ratio whose long side is `long_side`, rounded to `multiple`."""

    def snap(v: float) -> int:
        return max(multiple, round(v / multiple) * multiple)

    if ratio_w >= ratio_h:
        return long_side, snap(long_side * ratio_h / ratio_w)
    return snap(long_side * ratio_w / ratio_h), long_side


def megapixel_size(
    ratio_w: float, ratio_h: float, megapixels: float = 1.0, multiple: int = 16
) -> tuple[int, int]:
    """Pixel size of about `megapixels` at an aspect ratio, sides rounded to `multiple`."""
    area = megapixels * 1024 * 1024
    w = (area * ratio_w / ratio_h) ** 0.5
    h = area / w
    return max(multiple, round(w / multiple) * multiple), max(multiple, round(h / multiple) * multiple)
