"""Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, with the status
codes the OpenAI SDKs map to their exception classes (400 BadRequestError, 401
AuthenticationError, 403 PermissionDeniedError, 404 NotFoundError, 429 RateLimitError, 5xx
InternalServerError). Messages are imagerelay's own one-line messages: never a stack trace,
never a provider key (the errors raised below the gateway name key variables, not keys)."""

from __future__ import annotations

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
    UserError,
)

__all__ = ["GatewayError", "from_relay_error"]

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
            "maybe_billed": a.maybe_billed,
        }
        for a in getattr(receipt, "attempts", [])
    ]


def from_relay_error(exc: ImageRelayError, *, param: str | None = None) -> GatewayError:
    """The answer for an error the relay raised; `param` names the field a user error is about."""
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
                f"the request was refused by the provider's moderation: {exc.message}",
                code="content_policy_violation",
                param="prompt",
                extra=extra,
            )
        if not extra["attempts"]:  # nothing was tried: every model that could serve it is cooling
            return GatewayError(
                503, exc.message, code="upstream_unavailable", headers={"Retry-After": "30"}, extra=extra
            )
        return GatewayError(502, exc.message, code="upstream_failed", type="upstream_error", extra=extra)
    if isinstance(exc, BudgetExceeded):
        return GatewayError(400, exc.message, code="over_max_cost", param=param or "imagerelay.max_cost")
    if isinstance(exc, OutputError):
        # The server's disk, not the client's request.
        return GatewayError(500, f"the gateway cannot store images: {exc.message}", code="storage_error")
    if isinstance(exc, ConfigError):  # the gateway's configuration, not the client's request
        return GatewayError(500, f"the gateway is misconfigured: {exc.message}", code="config_error")
    if isinstance(exc, MissingKey):
        return GatewayError(400, exc.message, code="model_not_available", param="model")
    if isinstance(exc, InvalidReference):
        return GatewayError(400, exc.message, code="invalid_image", param=param or "image")
    if isinstance(exc, UserError):
        return GatewayError(400, exc.message, code="invalid_request", param=param)
    return GatewayError(500, f"the gateway failed: {exc.message}", code="internal_error")
