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
from .paths import deep_merge, read_toml, user_providers_dirs
from .pricing import Price

__all__ = [
    "Catalog",
    "ExtraRule",
    "ModelSpec",
    "Price",
    "ProviderSpec",
    "SizeRule",
    "TierRule",
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
    min_pixels: int = 0


class TierRule(_Strict):
    """How a model sizes a resolution tier: sides a multiple of `multiple`, within the caps."""

    multiple: int = 16
    max_side: int | None = None
    max_pixels: int | None = None
    #: "nearest" multiple, or "down" (never more pixels than the tier, e.g. when billed per MP).
    round: Literal["nearest", "down"] = "nearest"


class ModelSpec(_Strict):
    """What one model accepts and costs."""

    id: str = ""
    provider: str = ""
    label: str = ""
    status: Literal["active", "deprecated", "retired"] = "active"
    #: For deprecated models: the day it stops serving. For retired ones: the day it did.
    shutdown: date | None = None
    #: When these facts were last checked against the provider, and where.
    checked: date | None = None
    source: str = ""
    #: Facts that could not be confirmed, each set to its safest value: what and why.
    unconfirmed: tuple[str, ...] = ()
    #: Other names the provider answers to for this model (retired names it now serves).
    aliases: tuple[str, ...] = ()
    #: For a retired or deprecated model: the model to use instead.
    replaced_by: str | None = None
    modes: tuple[Mode, ...] = ("text",)
    max_references: int = 0
    max_n: int = 1
    max_prompt_chars: int = 32_000
    aspect_ratios: tuple[str, ...] = ()
    #: What the model does when no aspect ratio is sent (e.g. "1:1", "match_input_image").
    default_aspect_ratio: str | None = None
    resolutions: tuple[str, ...] = ()
    #: Area of each resolution tier in megapixels (1 MP = 1024x1024), e.g. {"1k" = 1, "2k" = 4}.
    resolution_megapixels: dict[str, float] = Field(default_factory=dict)
    #: The tier the model makes when none is sent.
    default_resolution: str | None = None
    tier_rule: TierRule | None = None
    sizes: tuple[str, ...] = ()
    size_rule: SizeRule | None = None
    qualities: tuple[str, ...] = ()
    #: The quality sent when the request names none, so that the price is known before the call.
    default_quality: str | None = None
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
    #: What the provider's model listing publishes as the model's token limits (Gemini:
    #: `input`, `output`), kept so `catalog check` notices a change; nothing is planned on them.
    token_limits: dict[Literal["input", "output"], int] = Field(default_factory=dict)
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
        instead = f" (use {self.replaced_by})" if self.replaced_by else ""
        if self.status == "retired":
            when = f" on {self.shutdown.isoformat()}" if self.shutdown else ""
            return f"retired{when}{instead}"
        if self.shutdown and today >= self.shutdown:
            return f"shut down on {self.shutdown.isoformat()}{instead}"
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
    #: A mask's own limit, when stricter than a reference's (OpenAI: a PNG under 4 MB).
    mask_max_bytes: int | None = None


class ExtraRule(_Strict):
    """What one provider field (an entry of a model's `extra_fields`) takes, as the provider's schema
    states it: a value none of its models accept is refused before anything is sent. Bounds are
    the loosest any model of the provider allows; a model's stricter limit is its own to refuse."""

    type: Literal["boolean", "integer", "number", "string"]
    enum: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    #: The API takes the words in any case (Gemini's thinking levels: the backend capitalises them).
    ignore_case: bool = False


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
    #: The chat model that describes a reference in words for the `describe` fallback (`[vision]`
    #: picks the first provider that names one, unless set), if its backend can describe.
    vision_model: str | None = None
    reference_limits: ReferenceLimits = Field(default_factory=ReferenceLimits)
    #: The provider fields its models' `extra_fields` name: type, words, range (see `extras.py`).
    extras: dict[str, ExtraRule] = Field(default_factory=dict)
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
    from .validation import plain

    return f"{loc}: {plain(err)}"


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
    """The registered providers' catalog files, merged with the user's `providers/*.toml` (an
    override of a registered provider, or a provider declared as data), into a `Catalog`."""
    from .plugins import registry

    plugins = registry()
    raw: dict[str, dict[str, Any]] = {}
    layers: dict[str, list[tuple[Path, dict[str, Any]]]] = {}

    def add(name: str, path: Path) -> None:
        layer = read_toml(path)
        layers.setdefault(name, []).append((path, layer))
        raw[name] = deep_merge(raw.get(name, {}), layer)

    for plugin in plugins.values():
        if plugin.catalog is not None:
            add(plugin.name, Path(str(plugin.catalog)))
    for d in [*user_providers_dirs(), *(extra_dirs or [])]:
        if d.is_dir():
            for path in sorted(d.glob("*.toml")):
                add(path.stem, path)
    providers: dict[str, ProviderSpec] = {}
    for name, data in raw.items():
        models = data.get("models", {})
        if isinstance(models, dict):
            _resolve_likes(name, models)
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
        if providers[name].backend not in plugins:
            where = str(layers[name][-1][0])
            raise ConfigError(
                f"{where}: backend {providers[name].backend!r} is no registered provider: "
                f"use one of {', '.join(plugins)} (the wire API this provider speaks)"
            )
    # Registered providers in their order, then those declared as data alone, by name.
    order = {name: i for i, name in enumerate(plugins)}
    return Catalog(dict(sorted(providers.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))))


def _resolve_likes(provider: str, models: dict[str, Any]) -> None:
    """`like = "other-model"`: start from that model's table (a snapshot, a sibling) and change
    only what this one sets. Resolved in file order, so a model may be like one defined above it."""
    done: dict[str, dict[str, Any]] = {}
    for mid, m in models.items():
        if isinstance(m, dict) and "like" in m:
            base_id = m.pop("like")
            base = done.get(base_id) if isinstance(base_id, str) else None
            if base is None:
                raise ConfigError(
                    f"providers/{provider}.toml: {mid} is `like` {base_id!r}, which is not a model "
                    "defined above it: fix the catalog entry"
                )
            inherited = {k: v for k, v in base.items() if k not in ("id", "label", "aliases", "notes")}
            models[mid] = m = deep_merge(inherited, m)
        if isinstance(m, dict):
            done[mid] = m


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
