"""Replicate as data: its own settings, predictions' statuses and output, and which listed
prediction an interrupted run made (so that it is re-attached to, never paid for twice)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field

from ..settings import ProviderSettings

if TYPE_CHECKING:
    from .base import Adopt, Call

__all__ = [
    "MAX_LIST_PAGES",
    "NSFW_MARKERS",
    "RUNNING",
    "TERMINAL",
    "ReplicateSettings",
    "Unrecorded",
    "dead",
    "output_urls",
]

#: A failed prediction carries only free text in `error`: Replicate has no machine-readable code
#: for a safety refusal. This one check on text is deliberate; every other outcome is decided by
#: status. Matched case-insensitively against the prediction's `error`.
NSFW_MARKERS = ("nsfw",)

TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
RUNNING = frozenset({"starting", "processing"})
#: Predictions listed this long before the interrupted run began still count (clocks differ).
CLOCK_SKEW = dt.timedelta(minutes=2)
#: Pages of `GET /v1/predictions` (100 each) read at most when looking for an unrecorded one.
MAX_LIST_PAGES = 20


class ReplicateSettings(ProviderSettings):
    """`[providers.replicate]` (or any provider served by this backend): the common settings, and
    how predictions are waited for."""

    model_config = ConfigDict(extra="forbid")

    #: Seconds between polls of a running prediction.
    poll_interval: float = Field(default=1.0, gt=0)
    #: A prediction still unfinished after this long is cancelled.
    prediction_deadline: float = Field(default=600.0, gt=0)


def dead(prediction: dict[str, Any]) -> bool:
    """Ended without output for a reason a new prediction may not share (not a safety refusal)."""
    status = prediction.get("status")
    if status in ("canceled", "aborted"):
        return True
    error = str(prediction.get("error") or "").lower()
    return status == "failed" and not any(marker in error for marker in NSFW_MARKERS)


def output_urls(output: Any) -> list[str]:
    """One URL or a list of them, whichever the model gives (the catalog says which; accept both)."""
    if isinstance(output, str):
        return [output] if output else []
    if isinstance(output, list):
        return [u for u in output if isinstance(u, str) and u]
    return []


@dataclass(frozen=True)
class Unrecorded:
    """What the prediction an interrupted run made for a call looks like in `GET /v1/predictions`:
    same model, same input, created since that run began, not known to the ledger."""

    path: str  # owner/name
    inp: dict[str, Any]
    known: frozenset[str]
    since: dt.datetime
    #: The reference's input field: an uploaded reference has a new URL each time, so the rest of
    #: the input is compared.
    reference: str | None

    @classmethod
    def of(cls, call: Call, inp: dict[str, Any], adopt: Adopt) -> Unrecorded:
        reference = None
        if call.references:
            reference = call.model.wire("reference") if call.model.accepts("reference") else "image"
        return cls(call.model.path or call.model.id, inp, adopt.known, adopt.since - CLOCK_SKEW, reference)

    def find(self, results: Any) -> tuple[dict[str, Any] | None, bool]:
        """(the matching prediction of one page, newest first, or None; whether to stop looking)."""
        for p in results if isinstance(results, list) else []:
            if not isinstance(p, dict) or p.get("model") != self.path or p.get("id") in self.known:
                continue
            created = _parse_time(p.get("created_at"))
            if created is not None and created < self.since:
                return None, True  # newest first: everything further is older
            given: dict[str, Any] = p["input"] if isinstance(p.get("input"), dict) else {}
            if self.reference is not None and self.reference not in given:
                continue
            if {k: v for k, v in given.items() if k != self.reference} == self.inp and (
                isinstance(p.get("id"), str) and p.get("status") in TERMINAL | RUNNING
            ):
                return p, True
        return None, False


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)
