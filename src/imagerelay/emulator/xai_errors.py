"""xAI's error shapes: `{"code": <gRPC status text>, "error": <message>}` by status, a bad key
(400, the key shown by its ends only), and the 422s of a body that does not deserialize."""

from __future__ import annotations

from typing import Any

from imagerelay.emulator.wire import DialectError, Fault, Reply, json_reply

__all__ = [
    "auth_error",
    "bad_type",
    "bad_variant",
    "error",
    "error_reply",
    "mask_key",
    "missing_field",
    "model_not_found",
    "not_found",
]

_CODES = {
    400: "Client specified an invalid argument",
    401: "The request does not have valid authentication credentials for the operation",
    403: "The caller does not have permission to execute the specified operation",
    404: "Some requested entity was not found",
    415: "Client specified an invalid argument",
    422: "Client specified an invalid argument",
    429: "Some resource has been exhausted",
    500: "Internal error",
    502: "Internal error",
    503: "The service is currently unavailable",
    504: "The deadline expired before the operation could complete",
}
_MESSAGES = {
    401: "Unauthenticated.",
    403: "Your team does not have permission to use this model.",
    404: "The requested resource was not found.",
    429: "Your team has either used all available credits or reached its monthly spending limit, "
    "or has exceeded its rate limit. Please try again later.",
    500: "An internal error occurred.",
    502: "Bad gateway.",
    503: "The service is temporarily unavailable. Please try again later.",
    504: "The request timed out.",
}


def error(status: int, message: str) -> DialectError:
    return DialectError(json_reply(status, {"code": _CODES.get(status, "Unknown error"), "error": message}))


def mask_key(key: str) -> str:
    """xAI's way to show a key in an error: two characters each end."""
    return f"{key[:2]}***{key[-2:]}" if len(key) >= 8 else "***"


def auth_error(key: str | None) -> Reply:
    shown = mask_key(key) if key else ""
    return error(
        400, f"Incorrect API key provided: {shown}. You can obtain an API key from https://console.x.ai."
    ).reply


def error_reply(status: int, fault: Fault | None) -> Reply:
    message = (fault.error if fault and fault.error else None) or _MESSAGES.get(status, f"HTTP {status}")
    return error(status, message).reply


def not_found(method: str, path: str) -> Reply:
    return error(404, f"No handler for {method} {path}.").reply


def model_not_found(model: str) -> DialectError:
    return error(
        404,
        f"The model {model} does not exist or your team 00000000-0000-4000-8000-000000000000 "
        "does not have access to it.",
    )


def bad_type(field: str, expected: str) -> DialectError:
    return error(
        422, f"Failed to deserialize the JSON body into the target type: {field}: expected {expected}."
    )


def missing_field(field: str) -> DialectError:
    """422 for a required field the body lacks."""
    return error(422, f"Failed to deserialize the JSON body into the target type: missing field `{field}`.")


def bad_variant(field: str, value: Any, allowed: list[str]) -> DialectError:
    expected = ", ".join(f"`{a}`" for a in allowed)
    return error(
        422,
        f"Failed to deserialize the JSON body into the target type: {field}: unknown variant `{value}`, "
        f"expected one of {expected}.",
    )
