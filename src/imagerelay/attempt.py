"""One call to one model, as it happened: what it delivered, what it sent, how it ended, and the
row the receipt keeps of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .receipt import Attempt

if TYPE_CHECKING:
    from .backends.base import Call, CallResult
    from .errors import ProviderError
    from .receipt import SavedImage

__all__ = ["Attempted"]


@dataclass
class Attempted:
    """How one call to one model went, filled in as it happens."""

    call: Call
    wait: float  # seconds waited before it (backoff, Retry-After, the rate limit)
    duration: float = 0.0
    delivered: list[SavedImage] = field(default_factory=list)
    lost: int = 0  # paid images that could be kept nowhere
    sent: dict[str, Any] | None = None  # what was sent, once it was about to be: it may be billed
    prediction: str | None = None
    cancelled: bool = False  # interrupted, and its prediction cancelled
    interrupted: bool = False
    result: CallResult | None = None
    error: ProviderError | None = None
    #: When the attempt began (made just before its call): the receipt's `started_at`.
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))

    @property
    def served(self) -> bool:
        """The call succeeded (whatever became of its images on disk)."""
        return self.error is None and self.result is not None

    @property
    def paid(self) -> int:
        """Images delivered, kept or not: each was paid for."""
        return len(self.delivered) + self.lost

    @property
    def maybe_billed(self) -> bool:
        """It failed (or was cut short) after the provider may have charged for the whole call."""
        if self.interrupted:
            return self.sent is not None
        return self.error is not None and bool(getattr(self.error, "maybe_billed", False))

    def row(self, provider: str, model: str, *, resumable: bool = False) -> Attempt:
        """The receipt's record of this attempt."""
        row = self._row(provider, model, resumable)
        row.started_at = self.started_at
        return row

    def _row(self, provider: str, model: str, resumable: bool) -> Attempt:
        if self.interrupted:
            return self._interrupted_row(provider, model, resumable)
        if self.error is not None:
            row = Attempt.failed(
                self.error, provider=provider, model=model, wait=self.wait, duration=self.duration
            )
            row.prediction_id = self.prediction
            row.images = len(self.delivered)
            row.sent = self.sent or {}
            return row
        assert self.result is not None
        result = self.result
        return Attempt(
            provider=provider,
            model=model,
            outcome="success",
            status=200,
            wait_s=round(self.wait, 4),
            duration_s=round(self.duration, 4),
            request_id=result.request_id,
            prediction_id=result.prediction_id or self.prediction,
            images=len(self.delivered),
            sent=result.sent,
            usage=result.usage,
        )

    def _interrupted_row(self, provider: str, model: str, resumable: bool) -> Attempt:
        """An attempt an interruption cut short: once sent, it may be billed."""
        sent = self.sent is not None
        pid = self.prediction
        what = "interrupted" + ("" if sent else " before anything was sent")
        if pid and self.cancelled:
            what += f"; prediction {pid} was cancelled"
        elif pid:
            what += f"; prediction {pid} was left running" + (" to resume" if resumable else "")
        return Attempt(
            provider=provider,
            model=model,
            outcome="interrupted",
            error=what,
            wait_s=round(self.wait, 4),
            duration_s=round(self.duration, 4),
            prediction_id=pid,
            images=self.paid,
            maybe_billed=sent and self.paid < self.call.n,
            sent=self.sent or {},
        )
