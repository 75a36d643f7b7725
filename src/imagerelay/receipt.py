"""What a request produced: saved images, every attempt, every translation, and the cost."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from .errors import ImageRelayError
    from .request import ImageRequest

__all__ = ["Attempt", "Receipt", "ReferenceRecord", "SavedImage", "public_request", "redact_url"]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class SavedImage(BaseModel):
    """One image file on disk."""

    model_config = ConfigDict(extra="forbid")

    path: str
    sha256: str  # of the file on disk (metadata included)
    delivered_sha256: str | None = None  # of the bytes exactly as the provider delivered them
    width: int
    height: int
    format: str
    bytes: int
    provider: str
    model: str
    receipt_path: str | None = None
    #: The prompt as the model rewrote it, when it did (GPT-image and Grok may).
    revised_prompt: str | None = None


class Attempt(BaseModel):
    """One call to one model, and how it ended."""

    model_config = ConfigDict(extra="forbid")

    provider: str
    model: str
    outcome: str  # an errors.Outcome value
    status: int | None = None
    error: str | None = None
    error_type: str | None = None
    wait_s: float = 0.0  # time waited before this attempt (backoff / Retry-After)
    duration_s: float = 0.0
    started_at: str = Field(default_factory=_now)
    request_id: str | None = None
    prediction_id: str | None = None
    images: int = 0
    maybe_billed: bool = False
    sent: dict[str, Any] = Field(default_factory=dict)  # the parameters actually sent (no image bytes)
    usage: dict[str, Any] = Field(default_factory=dict)  # as the provider reported it (tokens, ticks)

    @classmethod
    def failed(
        cls, exc: ImageRelayError, *, provider: str, model: str, wait: float = 0.0, duration: float = 0.0
    ) -> Attempt:
        """The record of an attempt that failed with `exc` (a provider's answer, or our own error)."""
        from .errors import Outcome, ProviderError

        return cls(
            provider=provider,
            model=model,
            outcome=exc.outcome.value if isinstance(exc, ProviderError) else Outcome.REQUEST.value,
            status=getattr(exc, "status", None),
            error=str(exc)[:500],
            error_type=type(exc).__name__,
            wait_s=round(wait, 4),
            duration_s=round(duration, 4),
            request_id=getattr(exc, "request_id", None),
            maybe_billed=bool(getattr(exc, "maybe_billed", False)),
        )


class ReferenceRecord(BaseModel):
    """A reference image as received: where from, and a hash that identifies it."""

    model_config = ConfigDict(extra="forbid")

    source: str
    sha256: str
    width: int
    height: int
    format: str


class Receipt(BaseModel):
    """Everything known about one request: the JSON written beside each image."""

    model_config = ConfigDict(extra="forbid")

    id: str
    created_at: str = Field(default_factory=_now)
    env: str = ""
    prompt: str
    request: dict[str, Any] = Field(default_factory=dict)
    provider: str | None = None
    model: str | None = None
    images: list[SavedImage] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    #: Models the plan left out, and why ("no key: set XAI_API_KEY", "retired on 2026-05-12" …).
    left_out: dict[str, str] = Field(default_factory=dict)
    references: list[ReferenceRecord] = Field(default_factory=list)
    seed: int | None = None
    estimated_cost_usd: float = 0.0
    reported_cost_usd: float | None = None
    cost_usd: float = 0.0  # the provider's figure when it gave one, else our estimate
    #: Estimated cost of attempts that failed after the provider may have charged for them.
    possibly_billed_usd: float = 0.0
    #: Made by the sandbox (the emulator): nothing was paid, `cost_usd` is 0 and counts against
    #: no budget, and `would_cost_usd` is what the same run would have cost for real.
    sandbox: bool = False
    would_cost_usd: float | None = None
    described_reference: str | None = None  # set when a reference was described, not matched
    metadata: dict[str, Any] = Field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when at least one image was saved."""
        return bool(self.images)

    def settle_sandbox(self) -> None:
        """Sandbox output costs nothing: what it would have cost moves to `would_cost_usd`, so that
        no budget, history total or batch spend ever counts it. Does nothing outside the sandbox."""
        if not self.sandbox or self.would_cost_usd is not None:
            return
        self.would_cost_usd = self.cost_usd + self.possibly_billed_usd
        self.cost_usd = 0.0
        self.reported_cost_usd = None
        self.possibly_billed_usd = 0.0


def redact_url(source: str) -> str:
    """Drop query strings and credentials from URLs: signed URLs carry tokens."""
    if "://" not in source:
        return source
    parts = urlsplit(source)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def public_request(req: ImageRequest) -> dict[str, Any]:
    """The request as a receipt shows it: fields given, URLs redacted."""
    data = req.model_dump(mode="json", exclude_defaults=True)
    if "references" in data:
        data["references"] = [redact_url(s) for s in data["references"]]
    if data.get("mask"):
        data["mask"] = redact_url(data["mask"])
    return data
