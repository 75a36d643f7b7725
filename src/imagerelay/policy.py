"""What to do after a failed attempt: retry the same model, move to the next one, or stop.

One pure function decides, from the typed outcome, the attempt count and the settings; the relay
only carries the decision out. Keeping it apart makes every rule testable without a server.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from .errors import (
    ArgumentRejected,
    AuthenticationFailed,
    ContentBlocked,
    EmptyResult,
    Outcome,
    ProviderError,
    QuotaExhausted,
    ReadTimedOut,
    TransientError,
)
from .settings import RetrySettings, RoutingSettings

__all__ = ["Action", "Decision", "backoff", "decide"]


class Action(StrEnum):
    RETRY = "retry"  # the same model again, after `delay`
    NEXT = "next"  # the next candidate
    STOP = "stop"  # nobody: the request ends here


@dataclass(frozen=True)
class Decision:
    action: Action
    delay: float = 0.0
    #: Keep this model out of later requests for `retry.cooldown` seconds …
    cool: bool = False
    #: … or every model of its provider (the key is shared by all of them).
    cool_provider: bool = False
    #: A line for the receipt, and a warning for the log when something needs the user's attention.
    note: str | None = None
    warning: str | None = None


def backoff(
    exc: TransientError, attempt: int, retry: RetrySettings, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait before attempt `attempt + 1`: Retry-After when given, else exponential + jitter."""
    if exc.retry_after is not None:
        return min(exc.retry_after, retry.retry_after_cap)
    base = min(retry.backoff_max, retry.backoff_initial * 2 ** (attempt - 1))
    return float(base * (1 + retry.jitter * rand()))


def decide(
    exc: ProviderError,
    *,
    ref: str,
    key_env: str,
    attempt: int,
    empties: int,
    time_left: float,
    retry: RetrySettings,
    routing: RoutingSettings,
    extras: tuple[str, ...] = (),
    rand: Callable[[], float] = random.random,
) -> Decision:
    """The decision after attempt number `attempt` (1-based) at model `ref` failed with `exc`.

    `empties` counts earlier empty results at this model; `time_left` is what remains of the
    request's deadline; `extras` names the caller's provider fields the call sent.
    """
    if isinstance(exc, ContentBlocked):
        if routing.on_content_blocked == "stop":
            return Decision(
                Action.STOP, note=f'{ref}: content blocked; stopped (on_content_blocked = "stop")'
            )
        return Decision(Action.NEXT)
    if isinstance(exc, EmptyResult):
        if empties < retry.empty_retries:
            return Decision(Action.RETRY)
        return Decision(Action.NEXT, cool=True)
    if isinstance(exc, TransientError) and exc.maybe_billed:
        # The provider accepted the generation (it may be rendering still, or its answer broke on
        # the way): sending it again to the same model could pay twice for one image.
        what = "no answer in time" if isinstance(exc, ReadTimedOut) else "the answer was lost or broken"
        return Decision(Action.NEXT, note=f"{ref}: {what}; not re-sent because the call may have been billed")
    if isinstance(exc, TransientError):
        if attempt >= retry.attempts:
            return Decision(Action.NEXT, cool=True)
        if exc.retry_after is not None and exc.retry_after > retry.retry_after_cap:
            return Decision(
                Action.NEXT,
                cool=True,
                note=f"{ref}: asked to wait {exc.retry_after:.0f}s, "
                f"over the {retry.retry_after_cap:.0f}s cap; moved on",
            )
        delay = backoff(exc, attempt, retry, rand)
        if delay > time_left:
            # Waiting would outlast the request; another model may answer at once.
            return Decision(Action.NEXT, note=f"{ref}: retrying would pass the request's deadline; moved on")
        return Decision(Action.RETRY, delay=delay)
    if exc.outcome == Outcome.REQUEST:
        return Decision(Action.STOP)
    if isinstance(exc, ArgumentRejected) and extras:
        # The caller's own field (or its value) is the likeliest culprit, and the next models are
        # those that do not take it: they would make the image without it, often at a higher price.
        names = ", ".join(f"{ref.split(':', 1)[0]}.{x}" for x in extras)
        return Decision(
            Action.STOP,
            note=f"{ref} refused an argument while {names} was sent: stopped rather than paying a model "
            "that would ignore it; fix or drop the field",
        )
    # Provider-condemning: bad key, no credit, retired model, argument rejected after translation.
    shared = isinstance(exc, AuthenticationFailed | QuotaExhausted)
    warning = None
    if isinstance(exc, AuthenticationFailed):
        provider = ref.split(":", 1)[0]
        warning = f"{provider}: the key in {key_env} was refused; falling back"
    # A rejected argument may be this request's alone (its prompt, an extra): later requests keep
    # the model.
    cool = not isinstance(exc, ArgumentRejected)
    return Decision(Action.NEXT, cool=cool, cool_provider=shared, note=warning, warning=warning)
