"""What every backend receives and returns (the error layer they share is in `http`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from ..hooks import OnCallEvent
from .http import ErrorContext

if TYPE_CHECKING:
    from pydantic import SecretStr

    from ..catalog import ModelSpec, ProviderSpec
    from ..imaging import ImageInfo
    from ..references import PreparedImage
    from ..settings import ProviderSettings

__all__ = [
    "Adopt",
    "Backend",
    "Call",
    "CallResult",
    "Deliver",
    "Delivered",
    "OnEvent",
    "images_summary",
]


@dataclass(frozen=True)
class Call:
    """One API call to one model, already translated by the planner.

    `params` uses canonical names (`aspect_ratio`, `resolution`, `size`, `quality`, `seed`,
    `output_format`) with values valid for this model; the backend renames them with
    `model.wire(...)`. `extras` are passed through under the names the caller gave (the planner
    kept only those the model declares in `extra_fields`).
    """

    model: ModelSpec
    provider: ProviderSpec
    prompt: str
    n: int
    params: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    references: tuple[PreparedImage, ...] = ()
    mask: PreparedImage | None = None
    #: A prediction created earlier (e.g. before a crash) to re-attach to by id, for this attempt
    #: only: once it is resumed it ends, one way or another (see `next_attempt`).
    resume_id: str | None = None
    #: Replicate: an earlier run of this request was cut short; a prediction it created that was
    #: never recorded is looked for before creating another (see `Adopt`).
    adopt: Adopt | None = None
    #: Replicate: cancel the prediction in flight when the call is interrupted (Ctrl-C) — unless
    #: the caller resumes later (a batch), which re-attaches to it instead.
    cancel_on_interrupt: bool = False

    def next_attempt(self, *, n: int, known: frozenset[str]) -> Call:
        """The call for the next attempt at this model, asking for `n` images: never the resumed
        prediction again (the backend polled it until it ended, or gave up on it, and a retry must
        make a fresh one), and never adopting a prediction this run has made itself (`known`)."""
        adopt = self.adopt if self.adopt is None else replace(self.adopt, known=self.adopt.known | known)
        return replace(self, n=n, resume_id=None, adopt=adopt)


@dataclass(frozen=True)
class Adopt:
    """Where to look for a prediction an interrupted run created but never recorded."""

    since: datetime  # when that run began: only predictions created after it are candidates
    known: frozenset[str] = frozenset()  # ids already recorded (by any item): never taken twice


@dataclass(frozen=True)
class Delivered:
    """One image exactly as the provider delivered it (after download when it came as a URL)."""

    data: bytes
    mime: str | None = None
    revised_prompt: str | None = None
    #: What `imaging.probe` found when the backend verified the bytes (saves decoding them again).
    info: ImageInfo | None = None
    #: Where it was fetched from (provider URLs stay valid for a while): a last resort when the
    #: bytes can be written nowhere.
    url: str | None = None


@dataclass
class CallResult:
    """What a successful call reports besides its images (those went to `deliver`)."""

    images: int = 0
    reported_cost_usd: float | None = None
    request_id: str | None = None
    prediction_id: str | None = None
    #: The parameters actually sent, with image data replaced by short descriptions.
    sent: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)


#: Persists one delivered image at once (bytes first) — called before anything else can fail.
Deliver = Callable[[Delivered], Awaitable[None]]
#: Reports progress the caller must record before it is too late (`hooks.CallEvent`): `Sent` just
#: before the generation is sent, `PredictionCreated` once a prediction exists (or is re-attached
#: to), `PredictionCancelled` when an interrupted call cancelled it.
OnEvent = OnCallEvent


class Backend(ABC):
    """Speaks one provider's wire API and maps its errors to `imagerelay.errors` at one seam."""

    #: The model of this backend's own knobs: settings built in code as the common model are
    #: checked against it (and typed by it) here too.
    settings_model: ClassVar[type[ProviderSettings] | None] = None

    def __init__(
        self,
        provider: ProviderSpec,
        settings: ProviderSettings,
        key: SecretStr | None,
        http: httpx.AsyncClient,
    ) -> None:
        if self.settings_model is not None and not isinstance(settings, self.settings_model):
            settings = self.settings_model.model_validate(settings.model_dump())
        self.provider = provider
        self.settings = settings
        self._key = key
        self.http = http
        self.base_url = (settings.base_url or provider.base_url).rstrip("/")

    def __repr__(self) -> str:  # never shows the key
        return f"{type(self).__name__}(provider={self.provider.name!r}, base_url={self.base_url!r})"

    def ctx(
        self, model: str = "", *, status: int | None = None, request_id: str | None = None
    ) -> ErrorContext:
        """Where an error happened, named as the catalog names this provider."""
        return ErrorContext(
            self.provider.name, model, status, request_id, keys=" or ".join(self.provider.key_envs)
        )

    def key(self) -> str:
        """The API key; none set is the one missing-key error, naming the variable(s) to set."""
        if self._key is None:
            raise self.ctx().missing_key()
        return self._key.get_secret_value()

    @abstractmethod
    async def generate(self, call: Call, deliver: Deliver, on_event: OnEvent) -> CallResult:
        """Make `call`, pass every image to `deliver` as soon as its bytes are in hand."""

    async def describe(self, image: PreparedImage, *, model: str, instruction: str) -> str:
        """Describe an image in words (vision). Backends without a vision API raise ConfigError."""
        from ..errors import ConfigError

        raise ConfigError(
            f"{self.provider.name} has no vision model: set [vision] provider and model to one that "
            "describes images (see `imagerelay providers`)"
        )

    async def aclose(self) -> None:
        """Release SDK clients (the shared httpx client belongs to the caller)."""


def images_summary(images: tuple[PreparedImage, ...], what: str) -> str:
    """What a receipt shows instead of image bytes: "<2 images, 345 KB>"."""
    from ..imaging import human_bytes

    total = sum(len(i.data) for i in images)
    count = f"{len(images)} {what}{'s' if len(images) != 1 else ''}"
    return f"<{count}, {human_bytes(total)}>"
