"""The request for an image, as a caller states it (before any provider is chosen)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .validation import plain, shown

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

__all__ = [
    "MAX_N",
    "MAX_PROMPT_CHARS",
    "ImageRequest",
    "as_request",
    "parse_aspect_ratio",
    "parse_size",
    "problem_of",
]

#: The longest prompt any current model takes (OpenAI's limit); models with less say so in the catalog.
MAX_PROMPT_CHARS = 32_000
#: Images in one request; more belong in a batch manifest.
MAX_N = 10

_SIZE = re.compile(r"^\s*(\d{1,5})\s*[xX×]\s*(\d{1,5})\s*$")
_RATIO = re.compile(r"^\s*(\d{1,3}(?:\.\d{1,2})?)\s*:\s*(\d{1,3}(?:\.\d{1,2})?)\s*$")


def parse_size(value: str) -> tuple[int, int]:
    """'1792x1024' → (1792, 1024); ValueError with a plain message otherwise."""
    m = _SIZE.match(value)
    if not m:
        raise ValueError(f"size {value!r} is not WIDTHxHEIGHT in pixels (e.g. 1024x1024)")
    w, h = int(m.group(1)), int(m.group(2))
    if not (64 <= w <= 8192 and 64 <= h <= 8192):
        raise ValueError(f"size {value!r} is out of range: each side must be 64–8192 pixels")
    return w, h


def parse_aspect_ratio(value: str) -> float:
    """'16:9' → 1.777…; ValueError with a plain message otherwise."""
    m = _RATIO.match(value)
    if not m:
        raise ValueError(f"aspect ratio {value!r} is not W:H (e.g. 16:9)")
    w, h = float(m.group(1)), float(m.group(2))
    if w <= 0 or h <= 0 or not (1 / 4 <= w / h <= 4):
        raise ValueError(f"aspect ratio {value!r} is out of range: use a ratio between 1:4 and 4:1")
    return w / h


class ImageRequest(BaseModel):
    """One request for one or more images.

    `references` are local paths or https URLs; `provider` is `auto`, a provider name (`xai`) or
    one model (`xai:grok-imagine-image`). `extras` passes provider-specific fields through,
    keyed by provider name, and only to models that declare them.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str
    references: tuple[str, ...] = ()
    mask: str | None = None
    n: int = Field(default=1)
    size: str | None = None
    aspect_ratio: str | None = None
    resolution: Literal["1k", "2k", "4k"] | None = None
    quality: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    output_format: Literal["png", "jpeg", "webp"] | None = None
    provider: str = "auto"
    extras: dict[str, dict[str, Any]] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt_is_text(cls, v: Any) -> Any:
        if not isinstance(v, str):
            raise ValueError(f"the prompt must be text saying what the image should show (got {shown(v)})")
        return v

    @field_validator("references", mode="before")
    @classmethod
    def _refs_as_paths(cls, v: Any) -> Any:
        # One path or URL is one reference (a string is never meant as a list of letters); a
        # `Path` is taken as its string, like everywhere else a file is named.
        if isinstance(v, (str, os.PathLike)):
            v = (v,)
        if isinstance(v, (list, tuple)):
            return tuple(os.fspath(s) if isinstance(s, os.PathLike) else s for s in v)
        return v

    @field_validator("mask", mode="before")
    @classmethod
    def _mask_as_path(cls, v: Any) -> Any:
        return os.fspath(v) if isinstance(v, os.PathLike) else v

    @field_validator("resolution", "quality", "output_format", mode="before")
    @classmethod
    def _word_in_any_case(cls, v: Any) -> Any:
        # These are words from a fixed list: `4K`, `HIGH` and `JPG` mean what they say.
        if isinstance(v, str):
            v = v.strip().lower()
            return "jpeg" if v == "jpg" else v
        return v

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, v: str) -> str:
        if "\x00" in v:
            raise ValueError("the prompt contains a NUL byte: remove it")
        if not v.strip():
            raise ValueError("the prompt is empty: say what the image should show")
        if len(v) > MAX_PROMPT_CHARS:
            raise ValueError(
                f"the prompt is {len(v):,} characters, over the {MAX_PROMPT_CHARS:,} limit: shorten it"
            )
        return v

    @field_validator("n")
    @classmethod
    def _n(cls, v: int) -> int:
        if not 1 <= v <= MAX_N:
            raise ValueError(f"n must be between 1 and {MAX_N} (got {v}): use a batch manifest for more")
        return v

    @field_validator("size")
    @classmethod
    def _size(cls, v: str | None) -> str | None:
        if v is None or v == "auto":
            return v
        w, h = parse_size(v)
        return f"{w}x{h}"

    @field_validator("aspect_ratio")
    @classmethod
    def _ratio(cls, v: str | None) -> str | None:
        if v is None or v == "auto":
            return v
        parse_aspect_ratio(v)
        return v.replace(" ", "")

    @field_validator("references")
    @classmethod
    def _refs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(v) > 16:
            raise ValueError(f"{len(v)} references given; no model takes more than 16")
        for i, source in enumerate(v, 1):
            if not source.strip():  # Path("") is ".", which would be refused as "a directory"
                raise ValueError(f"reference {i} is an empty string: pass the path of an image file or a URL")
        return v

    @field_validator("mask")
    @classmethod
    def _mask(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():  # an empty --mask was silently ignored
            raise ValueError("the mask is an empty string: pass the path of a PNG mask, or leave --mask out")
        return v

    @model_validator(mode="after")
    def _one_shape(self) -> ImageRequest:
        if self.size and self.aspect_ratio:
            raise ValueError("give --size or --aspect-ratio, not both")
        if self.mask and not self.references:
            raise ValueError("a mask needs a reference image to apply to: add --reference")
        return self

    @property
    def mode(self) -> Literal["text", "reference"]:
        """`reference` when any reference image is given."""
        return "reference" if self.references else "text"


def problem_of(
    err: ErrorDetails, *, in_manifest: bool = False, name: Callable[[str], str] | None = None
) -> str:
    """One plain sentence for one of pydantic's complaints about a request: the same sentence for
    the same mistake, whether it came from the library, the command line, a manifest or the gateway.

    Our own validators' messages name the field already and say how to fix it, so they stand
    alone; pydantic's own ("Input should be a valid integer") are prefixed with the field, as
    `name` calls it (the gateway says `imagerelay.seed`). Only the fix for too many images depends
    on where the request came from: a manifest item cannot be told to use a manifest.
    """
    loc = ".".join(str(p) for p in err["loc"])
    shown = name(loc) if name is not None and loc else loc
    if err["type"] == "extra_forbidden":
        return f"unknown request field {shown!r}"
    ours = err.get("ctx", {}).get("error")
    if ours is None:
        return f"{shown}: {plain(err)}" if shown else plain(err)
    if in_manifest and loc == "n":
        return f"n must be between 1 and {MAX_N}: split the item into several items for more"
    return str(ours)


def as_request(request: ImageRequest | str, fields: Mapping[str, Any] | None = None) -> ImageRequest:
    """`request` (a prompt, or a request with `fields` replacing some of its own) as a validated
    `ImageRequest`; `InvalidRequest` with one plain line (see `problem_of`) if it is not valid."""
    from .errors import InvalidRequest

    if isinstance(request, ImageRequest):
        if not fields:
            return request
        # model_copy(update=…) would skip validation: build a new request from both instead.
        data = {**request.model_dump(), **fields}
    else:
        data = {"prompt": request, **(fields or {})}
    try:
        return ImageRequest(**data)
    except ValidationError as exc:
        raise InvalidRequest(problem_of(exc.errors()[0])) from exc
