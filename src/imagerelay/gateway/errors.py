"""Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with the status
codes the OpenAI SDKs map to their exception classes (400 BadRequestError, 401
AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError, 429 RateLimitError, 5xx
InternalServerError). Messages are imagerelay's own one-line messages: never a stack trace,
never a provider key (the errors raised below the gateway name key variables, not keys)."""

from __future__ import annotations

import math
import re
from typing import Any

from ..errors import (
    BudgetExceeded,
    ConfigError,
    ContentBlocked,
    GenerationFailed,
    ImageRelayError,
    InvalidReference,
    MissingKey,
    OutputError,
    RateLimited,
    SaveFailed,
    UserError,
)

__all__ = ["BILLED_STATUS", "GatewayError", "from_relay_error", "gateway_terms", "possibly_billed"]

#: The status of an answer whose request may have been billed (see `possibly_billed`).
BILLED_STATUS = 424
#: Retry-After when every model was rate limited and none said how long to wait, and its cap.
_RATE_LIMIT_WAIT = 30.0
_RATE_LIMIT_WAIT_MAX = 3600.0

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
}


#: The library's fixes name CLI flags; an HTTP client fixes a request field (or asks whoever runs
#: the gateway to change its config) instead.
_TERMS = [
    (
        re.compile(r"raise --max-cost or ask for fewer images"),
        "raise imagerelay.max_cost or ask for fewer images (n); the gateway's own cap per request "
        "is budget.max_cost_per_request in its config",
    ),
    (re.compile(r"pass --max-cost ([\d.]+), say"), r"send imagerelay.max_cost \1, say"),
    (
        re.compile(r"set a provider's key, pass --provider, or list models in \[routing\] (\w+)"),
        r"ask for another model (GET /v1/models lists them), or have a provider's key or [routing] \1 "
        "set in the gateway's config",
    ),
    (re.compile(r"pass --provider ([\w.-]+)"), r"ask for model \1"),
    (re.compile(r"\(see `imagerelay providers`\)"), "(GET /v1/models lists them)"),
    (re.compile(r"use a batch manifest for more"), "send several requests for more"),
    (
        re.compile(r"pass --out( with a writable directory| DIR)"),
        "give the gateway a writable output directory (serve --out, or [output] dir in its config)",
    ),
]


def gateway_terms(message: str) -> str:
    """`message` with the CLI's flags replaced by the request fields and config an HTTP client has."""
    for pattern, replacement in _TERMS:
        message = pattern.sub(replacement, message)
    return message


class GatewayError(Exception):
    """An answer other than success, ready to be sent."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        type: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.type = type or _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        self.headers = dict(headers or {})
        #: imagerelay's own detail (receipt id, attempts), sent as `error.imagerelay`.
        self.extra = extra

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "param": self.param,
            "code": self.code,
        }
        if self.extra:
            error["imagerelay"] = self.extra
        return {"error": error}


def _attempts(receipt: Any) -> list[dict[str, Any]]:
    return [
        {
            "provider": a.provider,
            "model": a.model,
            "outcome": a.outcome,
            "status": a.status,
            "error": a.error,
            "error_type": a.error_type,
            "maybe_billed": a.maybe_billed,
        }
        for a in getattr(receipt, "attempts", [])
    ]


def _failed_message(receipt: Any, message: str) -> str:
    """The relay's `no image was made — …` line, each attempt that may be billed saying so."""
    attempts = getattr(receipt, "attempts", [])
    if not attempts or not message.startswith("no image was made"):
        return message
    lines = []
    for a in attempts:
        line = f"{a.provider}:{a.model} {a.outcome}" + (f" ({a.error})" if a.error else "")
        if a.maybe_billed and "may be billed" not in line:
            line += " (it may be billed)"
        lines.append(line)
    return "no image was made — " + " | ".join(lines)


def possibly_billed(
    message: str, *, receipt_id: str | None, code: str, extra: dict[str, Any] | None = None
) -> GatewayError:
    """The answer for a request that made no image and may have been billed: one no SDK retries.

    The OpenAI SDKs (Python, Node) retry 408, 409, 429 and 5xx twice unless the answer says
    `x-should-retry: false`; the AI SDK retries the same statuses and ignores that header. Each
    retry would be a new generation (none of them sends an Idempotency-Key), so it is a 424 (not
    retried by any of them; the OpenAI SDKs raise their `APIStatusError`), with the header too."""
    where = f": see GET /v1/receipts/{receipt_id}" if receipt_id else ""
    return GatewayError(
        BILLED_STATUS,
        f"{message}. Sending the request again may pay again{where}",
        code=code,
        type="upstream_error",
        headers={"x-should-retry": "false"},
        extra=extra,
    )


def from_relay_error(exc: ImageRelayError, *, param: str | None = None) -> GatewayError:
    """The answer for an error the relay raised; `param` names the field a user error is about."""
    text = gateway_terms(exc.message)
    if isinstance(exc, GenerationFailed):
        receipt = exc.receipt
        extra: dict[str, Any] = {
            "receipt_id": getattr(receipt, "id", None),
            "attempts": _attempts(receipt),
            "possibly_billed_usd": round(getattr(receipt, "possibly_billed_usd", 0.0), 6),
        }
        blocked = any(isinstance(f, ContentBlocked) for f in exc.failures) or any(
            a["outcome"] == "content_blocked" for a in extra["attempts"]
        )
        if blocked:
            return GatewayError(
                400,
                f"the request was refused by the provider's moderation: {text}",
                code="content_policy_violation",
                param="prompt",
                extra=extra,
            )
        if not extra["attempts"]:  # nothing was tried: every model that could serve it is cooling
            return GatewayError(
                503, text, code="upstream_unavailable", headers={"Retry-After": "30"}, extra=extra
            )
        message = _failed_message(receipt, text)
        billed = [f"{a['provider']}:{a['model']}" for a in extra["attempts"] if a["maybe_billed"]]
        if billed:
            return possibly_billed(
                f"{message}; up to ${extra['possibly_billed_usd']:.4f} may have been billed "
                f"({', '.join(dict.fromkeys(billed))})",
                receipt_id=extra["receipt_id"],
                code="possibly_billed",
                extra=extra,
            )
        limited = [a for a in extra["attempts"] if a["status"] == 429 or a["error_type"] == "RateLimited"]
        if len(limited) == len(extra["attempts"]):
            # Every model was rate limited: the client may wait and ask again (nothing was billed).
            waits = [f.retry_after for f in exc.failures if isinstance(f, RateLimited) and f.retry_after]
            wait = math.ceil(min(max(waits, default=_RATE_LIMIT_WAIT), _RATE_LIMIT_WAIT_MAX))
            return GatewayError(
                429,
                f"{message}: every model is rate limited, try again in {wait} s",
                code="upstream_rate_limited",
                headers={"Retry-After": str(wait)},
                extra=extra,
            )
        return GatewayError(502, message, code="upstream_failed", type="upstream_error", extra=extra)
    if isinstance(exc, SaveFailed):  # paid for, and the gateway's disk could not take the images
        return possibly_billed(
            f"the gateway could not store what it paid for: {text}",
            receipt_id=getattr(exc.receipt, "id", None),
            code="paid_not_stored",
        )
    if isinstance(exc, BudgetExceeded):
        return GatewayError(400, text, code="over_max_cost", param=param or "imagerelay.max_cost")
    if isinstance(exc, OutputError):
        # The server's disk, not the client's request.
        return GatewayError(500, f"the gateway cannot store images: {text}", code="storage_error")
    if isinstance(exc, ConfigError):  # the gateway's configuration, not the client's request
        return GatewayError(500, f"the gateway is misconfigured: {text}", code="config_error")
    if isinstance(exc, MissingKey):
        return GatewayError(400, text, code="model_not_available", param="model")
    if isinstance(exc, InvalidReference):
        return GatewayError(400, text, code="invalid_image", param=param or "image")
    if isinstance(exc, UserError):
        return GatewayError(400, text, code="invalid_request", param=param)
    return GatewayError(500, f"the gateway failed: {text}", code="internal_error")
