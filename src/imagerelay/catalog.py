"""The catalog: every provider and model, its capabilities, limits and prices — read from TOML.

Capabilities are per *model*, never per provider: updating a model or a price is an edit to
`providers/<name>.toml`, not to code. The shipped files can be overridden key by key by files of
the same name in `$IMAGERELAY_CONFIG_DIR/providers/` (or `./config/providers/` beside the user's
own `imagerelay.toml`).
"""

from __future__ import annotations

import math
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import ConfigError
from .paths import catalog_dirs, deep_merge, read_toml

__all__ = [
    "Catalog",
    "ModelSpec",
    "Price",
    "ProviderSpec",
    "SizeRule",
    "load_catalog",
]

Mode = Literal["text", "reference", "mask"]
#: The request fields a model may accept; `fields` in the TOML maps each to its wire name.
CANONICAL_FIELDS = (
    "prompt",
    "n",
    "size",
    "aspect_ratio",
    "resolution",
    "quality",
    "seed",
    "output_format",
    "reference",
    "mask",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SizeRule(_Strict):
    """Free-form sizes (gpt-image-2 and later): sides divisible by `multiple`, bounded ratio and sides."""

    multiple: int = 16
    min_ratio: float = 1 / 3
    max_ratio: float = 3.0
    max_long: int = 3840
    max_short: int = 2160


class Price(_Strict):
    """Price of one output image, as data. `confirmed = false` marks figures from third parties."""

    basis: Literal["image", "tokens"] = "image"
    per_image: float = 0.0
    #: Overrides of `per_image` keyed by "quality,resolution", "quality" or "resolution".
    per_image_by: dict[str, float] = Field(default_factory=dict)
    per_input_image: float = 0.0
    #: Token pricing (USD per million tokens) for `basis = "tokens"`.
    input_text_per_mtok: float = 0.0
    input_image_per_mtok: float = 0.0
    output_image_per_mtok: float = 0.0
    #: Output tokens of one 1024x1024 image by quality; scaled by pixel count for other sizes.
    output_tokens_1024: dict[str, int] = Field(default_factory=dict)
    input_tokens_per_reference: int = 0
    confirmed: bool = False

    def estimate(
        self,
        *,
        quality: str | None,
        resolution: str | None,
        pixels: int = 1024 * 1024,
        references: int = 0,
        prompt_chars: int = 0,
    ) -> float:
        """Estimated USD for one output image (input-image charges spread per image by caller)."""
        if self.basis == "tokens":
            q = quality or "medium"
            base = self.output_tokens_1024.get(q) or self.output_tokens_1024.get("medium", 1056)
            out_tokens = base * pixels / (1024 * 1024)
            text_tokens = prompt_chars / 4
            img_tokens = references * self.input_tokens_per_reference
            return (
                out_tokens * self.output_image_per_mtok
                + text_tokens * self.input_text_per_mtok
                + img_tokens * self.input_image_per_mtok
            ) / 1e6
        for key in (f"{quality},{resolution}", f"{quality}", f"{resolution}"):
            if key in self.per_image_by:
                return self.per_image_by[key] + references * self.per_input_image
        return self.per_image + references * self.per_input_image

    def from_usage(self, usage: dict[str, Any]) -> float | None:
        """USD from an OpenAI-style `usage` block, or None when it has no token counts."""
        if self.basis != "tokens" or not usage:
            return None
        out = usage.get("output_tokens")
        if not isinstance(out, int):
            return None
        details = usage.get("input_tokens_details") or {}
        text_in = details.get("text_tokens", 0) or 0
        image_in = details.get("image_tokens", 0) or 0
        return (
            out * self.output_image_per_mtok
            + text_in * self.input_text_per_mtok
            + image_in * self.input_image_per_mtok
        ) / 1e6


class ModelSpec(_Strict):
    """What one model accepts and costs."""

    id: str = ""
    provider: str = ""
    label: str = ""
    status: Literal["active", "deprecated", "retired"] = "active"
    #: For deprecated models: the day it stops serving. For retired ones: the day it did.
    shutdown: date | None = None
    modes: tuple[Mode, ...] = ("text",)
    max_references: int = 0
    max_n: int = 1
    max_prompt_chars: int = 32_000
    aspect_ratios: tuple[str, ...] = ()
    resolutions: tuple[str, ...] = ()
    #: Long side in pixels per resolution tier, e.g. {"1k" = 1024, "2k" = 2048}.
    resolution_long_side: dict[str, int] = Field(default_factory=dict)
    sizes: tuple[str, ...] = ()
    size_rule: SizeRule | None = None
    qualities: tuple[str, ...] = ()
    output_formats: tuple[str, ...] = ("jpeg",)
    default_output_format: str | None = None
    #: Canonical field → the name this model's API uses for it. A field not listed is not accepted.
    fields: dict[str, str] = Field(default_factory=dict)
    #: Fixed inputs always sent (e.g. Replicate's `go_fast`), and extra fields callers may pass.
    fixed: dict[str, Any] = Field(default_factory=dict)
    extra_fields: tuple[str, ...] = ()
    #: Replicate: "list" (several URLs) or "single" (one URL string).
    output: Literal["list", "single", "data"] = "data"
    #: Replicate: `owner/name`; defaults to the model id.
    path: str | None = None
    price: Price = Field(default_factory=Price)
    notes: str = ""

    @field_validator("fields")
    @classmethod
    def _known_fields(cls, v: dict[str, str]) -> dict[str, str]:
        # A misspelt request field would otherwise make the model silently "not accept" it.
        unknown = sorted(set(v) - set(CANONICAL_FIELDS))
        if unknown:
            raise ValueError(
                f"unknown request field(s) {unknown} in `fields`: use {', '.join(CANONICAL_FIELDS)}"
            )
        return v

    def accepts(self, field: str) -> bool:
        """Whether the model takes the canonical `field`."""
        return field in self.fields

    def wire(self, field: str) -> str:
        """The API's name for a canonical field."""
        return self.fields[field]

    def supports(self, mode: Mode) -> bool:
        return mode in self.modes

    def unavailable_reason(self, today: date) -> str | None:
        """Why this model must not be planned today, or None when it can be."""
        if self.status == "retired":
            when = f" on {self.shutdown.isoformat()}" if self.shutdown else ""
            return f"retired{when}"
        if self.shutdown and today >= self.shutdown:
            return f"shut down on {self.shutdown.isoformat()}"
        return None

    @property
    def ref(self) -> str:
        """`provider:model`."""
        return f"{self.provider}:{self.id}"


class ReferenceLimits(_Strict):
    """What one provider takes as an input image."""

    accept: tuple[str, ...] = ("image/jpeg", "image/png")
    max_bytes: int = 20 * 1024 * 1024
    max_side: int | None = None
    max_pixels: int | None = None
    #: Replicate: inline as a data URI below this many bytes, else upload through /v1/files.
    inline_max_bytes: int | None = None


class ProviderSpec(_Strict):
    """One provider: where its API lives, which key it needs, and its models."""

    name: str
    label: str = ""
    backend: str
    base_url: str
    key_env: str
    #: Variables read, in order, when `key_env` is unset (Gemini: GOOGLE_API_KEY, as its SDK does).
    key_env_also: tuple[str, ...] = ()
    docs: str = ""
    reference_limits: ReferenceLimits = Field(default_factory=ReferenceLimits)
    models: dict[str, ModelSpec] = Field(default_factory=dict)

    @property
    def key_envs(self) -> tuple[str, ...]:
        """Every variable the key may be in, the preferred one first."""
        return (self.key_env, *self.key_env_also)


class Catalog:
    """All providers and their models, in file order."""

    def __init__(self, providers: dict[str, ProviderSpec]) -> None:
        self.providers = providers

    @cached_property
    def models(self) -> list[ModelSpec]:
        """Every model of every provider, in catalog order."""
        return [m for p in self.providers.values() for m in p.models.values()]

    def key_envs(self) -> dict[str, tuple[str, ...]]:
        """Provider name → the variables its key is read from (see `settings.load_keys`)."""
        return {p.name: p.key_envs for p in self.providers.values()}

    def provider(self, name: str) -> ProviderSpec:
        try:
            return self.providers[name]
        except KeyError:
            known = ", ".join(self.providers) or "none"
            raise ConfigError(f"unknown provider {name!r}: use one of {known}") from None

    def model(self, ref: str) -> ModelSpec:
        """Look up `provider:model`."""
        provider, _, model = ref.partition(":")
        spec = self.provider(provider)
        try:
            return spec.models[model]
        except KeyError:
            known = ", ".join(spec.models)
            raise ConfigError(f"unknown model {model!r} for {provider}: use one of {known}") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"unknown key {loc!r}"
    return f"{loc}: {err['msg']}"


def _culprit(exc: ValidationError, layers: list[tuple[Path, dict[str, Any]]]) -> str | None:
    """The last file (shipped, then the user's) that sets the key the first error is about."""
    loc = exc.errors()[0]["loc"]
    for path, data in reversed(layers):
        node: Any = data
        for part in loc:
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            return str(path)
    return None


def load_catalog(extra_dirs: list[Path] | None = None) -> Catalog:
    """Read `providers/*.toml` (shipped), merged with the user's overrides, into a `Catalog`."""
    dirs = [*catalog_dirs(), *(extra_dirs or [])]
    raw: dict[str, dict[str, Any]] = {}
    layers: dict[str, list[tuple[Path, dict[str, Any]]]] = {}
    for d in dirs:
        if not d.is_dir():
            continue
        for path in sorted(d.glob("*.toml")):
            layer = read_toml(path)
            layers.setdefault(path.stem, []).append((path, layer))
            raw[path.stem] = deep_merge(raw.get(path.stem, {}), layer)
    providers: dict[str, ProviderSpec] = {}
    for name, data in raw.items():
        models = data.get("models", {})
        if isinstance(models, dict):
            for mid, m in models.items():
                if isinstance(m, dict):
                    m.setdefault("id", mid)
                    m.setdefault("provider", name)
        data.setdefault("name", name)
        try:
            providers[name] = ProviderSpec.model_validate(data)
        except ValidationError as exc:
            where = _culprit(exc, layers[name]) or f"providers/{name}.toml"
            raise ConfigError(f"{where}: {_first_error(exc)}: fix the catalog entry") from exc
    order = {"xai": 0, "openai": 1, "replicate": 2, "gemini": 3}
    return Catalog(dict(sorted(providers.items(), key=lambda kv: (order.get(kv[0], 9), kv[0]))))


def nearest_ratio(target: float, choices: tuple[str, ...]) -> str | None:
    """The choice ('W:H') closest to `target` on a log scale; `auto`/`custom`/`match_*` ignored."""
    best: tuple[float, str] | None = None
    for c in choices:
        w, sep, h = c.partition(":")
        try:
            r = float(w) / float(h)
        except (ValueError, ZeroDivisionError):
            continue
        if not sep:
            continue
        d = abs(math.log(r / target))
        if best is None or d < best[0]:
            best = (d, c)
    return best[1] if best else None
