"""Pillow in one place: verify image bytes (`decode`), normalise them for a provider
(`normalize`), embed provenance (`xmp`).

Importing this package is cheap: Pillow and pillow_heif load inside the functions that need them.
"""

from __future__ import annotations

from .decode import (
    MAX_PIXELS,
    CorruptImage,
    ImageInfo,
    ImageTooLarge,
    NotAnImage,
    image_size,
    open_image,
    probe,
)
from .normalize import DoesNotFit, NotAMask, human_bytes, human_bytes_over, mask_png, normalize, thumbnail
from .xmp import DIGITAL_SOURCE_TYPE, embed_metadata, read_metadata

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
