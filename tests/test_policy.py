"""The retry/fallback policy as a pure function: one rule per typed outcome."""

from __future__ import annotations

from imagerelay.errors import (
    ArgumentRejected,
    AuthenticationFailed,
    ConnectionFailed,
    ContentBlocked,
    EmptyResult,
    ModelUnavailable,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    ReadTimedOut,
    ServerError,
)
from imagerelay.policy import Action, Decision, backoff, decide
from imagerelay.settings import RetrySettings, RoutingSettings

RETRY = RetrySettings(attempts=3, backoff_initial=0.5, backoff_max=4.0, jitter=0.0, retry_after_cap=60.0)


def run(
    exc: ProviderError, attempt: int = 1, empties: int = 0, time_left: float = 900.0, **routing: str
) -> Decision:
    return decide(
        exc,
        ref="xai:grok-imagine-image",
        key_env="XAI_API_KEY",
        attempt=attempt,
        empties=empties,
        time_left=time_left,
        retry=RETRY,
        routing=RoutingSettings(**routing),  # type: ignore[arg-type]
    )


def test_content_blocked_stops_by_default() -> None:
    """A moderation refusal stops the request unless the environment says fall back."""
    assert run(ContentBlocked("no")).action == Action.STOP
    assert run(ContentBlocked("no"), on_content_blocked="fallback").action == Action.NEXT


def test_empty_result_retries_once_then_moves_on() -> None:
    """An empty 200 is retried `empty_retries` times, then the model is left and cooled."""
    assert run(EmptyResult("none"), empties=0).action == Action.RETRY
    second = run(EmptyResult("none"), empties=1)
    assert second.action == Action.NEXT
    assert second.cool


def test_read_timeout_after_post_is_never_retried() -> None:
    """A timed-out generation that may be billed moves on at once, saying why."""
    decision = run(ReadTimedOut("slow", maybe_billed=True))
    assert decision.action == Action.NEXT
    assert decision.note is not None
    assert "may have been billed" in decision.note


def test_transient_retries_until_attempts_run_out() -> None:
    """503s retry the same model with growing waits, then fall back and cool the model."""
    assert run(ServerError("x"), attempt=1) == Decision(Action.RETRY, delay=0.5)
    assert run(ServerError("x"), attempt=2) == Decision(Action.RETRY, delay=1.0)
    last = run(ServerError("x"), attempt=3)
    assert last.action == Action.NEXT
    assert last.cool
    assert not last.cool_provider


def test_retry_after_is_honoured_and_capped() -> None:
    """Retry-After sets the wait; one over the cap is not waited out (fall back instead)."""
    assert run(RateLimited("x", retry_after=7.0)).delay == 7.0
    over = run(RateLimited("x", retry_after=3600.0))
    assert over.action == Action.NEXT
    assert over.note is not None
    assert "over the 60s cap" in over.note


def test_wait_past_the_deadline_moves_on() -> None:
    """A retry whose wait would end after the request's deadline is not attempted: next model."""
    assert run(ConnectionFailed("x"), time_left=0.1).action == Action.NEXT


def test_bad_key_cools_the_whole_provider_and_warns() -> None:
    """A refused key falls back, cools every model of that provider, and names the variable."""
    decision = run(AuthenticationFailed("refused"))
    assert decision.action == Action.NEXT
    assert decision.cool_provider
    assert decision.warning == "xai: the key in XAI_API_KEY was refused; falling back"
    assert run(QuotaExhausted("no credit")).cool_provider


def test_retired_model_falls_back_and_cools_that_model_only() -> None:
    """A retired/unknown model moves on and is cooled, but its siblings are not."""
    decision = run(ModelUnavailable("gone"))
    assert decision.action == Action.NEXT
    assert decision.cool
    assert not decision.cool_provider


def test_rejected_argument_falls_back_without_cooling() -> None:
    """A 400 about this request's arguments moves on but keeps the model for other requests."""
    decision = run(ArgumentRejected("Prompt must not contain X"))
    assert decision.action == Action.NEXT
    assert not decision.cool


def test_backoff_is_exponential_with_bounded_jitter() -> None:
    """Backoff doubles per attempt up to the maximum; jitter adds at most its fraction."""
    retry = RetrySettings(backoff_initial=1.0, backoff_max=3.0, jitter=0.5)
    exc = ServerError("x")
    assert backoff(exc, 1, retry, rand=lambda: 0.0) == 1.0
    assert backoff(exc, 2, retry, rand=lambda: 0.0) == 2.0
    assert backoff(exc, 5, retry, rand=lambda: 0.0) == 3.0
    assert backoff(exc, 2, retry, rand=lambda: 1.0) == 3.0


def test_broken_answer_after_a_200_is_never_resent() -> None:
    """A 200 whose image or body was broken was probably billed: move on, do not re-send."""
    from imagerelay.errors import DownloadFailed, MalformedResponse

    assert run(MalformedResponse("cut", status=200)).action == Action.NEXT
    assert run(DownloadFailed("expired", status=404)).action == Action.NEXT
    assert run(MalformedResponse("garbled 502 page", status=502)).action == Action.RETRY


def test_a_rejected_argument_with_caller_extras_stops() -> None:
    """ArgumentRejected while the caller's provider fields were sent stops the request (the next
    models would drop those fields), without cooling the model; without extras it moves on."""
    stopped = decide(
        ArgumentRejected("422 input.num_inference_steps"),
        ref="replicate:black-forest-labs/flux-schnell",
        key_env="REPLICATE_API_TOKEN",
        attempt=1,
        empties=0,
        time_left=900.0,
        retry=RETRY,
        routing=RoutingSettings(),
        extras=("num_inference_steps",),
    )
    assert stopped.action == Action.STOP
    assert not stopped.cool
    assert stopped.note is not None
    assert "replicate.num_inference_steps" in stopped.note
    assert run(ArgumentRejected("422")).action == Action.NEXT
