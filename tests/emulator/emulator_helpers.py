"""Small image helpers for the emulator's tests."""

from __future__ import annotations

import base64
import io

from PIL import Image


def solid(
    colour: tuple[int, int, int] = (255, 0, 0), size: tuple[int, int] = (64, 48), fmt: str = "PNG"
) -> bytes:
    """Image bytes of one flat colour."""
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, fmt)
    return out.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def open_image(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img


def mean_rgb(data: bytes) -> tuple[int, int, int]:
    px = open_image(data).convert("RGB").resize((1, 1), Image.Resampling.BOX).getpixel((0, 0))
    assert isinstance(px, tuple)
    return int(px[0]), int(px[1]), int(px[2])


def is_reddish(rgb: tuple[int, int, int]) -> bool:
    r, g, b = rgb
    return r > 150 and g < 110 and b < 110
