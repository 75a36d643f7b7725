"""Gemini's error shapes: `{"error": {"code", "message", "status", "details"}}` by status, the
key errors (403 without a key, 400 API_KEY_INVALID with a wrong one), a 429's QuotaFailure, Help
and RetryInfo, and the HTML page a 502 is."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imagerelay.emulator.wire import DialectError, Fault, Reply, json_reply

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["JSON", "auth_error", "error", "error_reply", "invalid", "not_found", "presented_key"]

JSON = "application/json; charset=UTF-8"
_STATUS = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    409: ("ABORTED", "The operation was aborted."),
    429: (
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. For more "
        "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.",
    ),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}
_HTML_502 = (
    b"<!DOCTYPE html><html lang=en><meta charset=utf-8><title>Error 502 (Server Error)!!1</title>"
    b"<p><b>502.</b> <ins>That's an error.</ins><p>The server encountered a temporary error and "
    b"could not complete your request.<p>Please try again in 30 seconds. <ins>That's all we know.</ins>"
)


def error(status: int, message: str | None = None, details: list[Any] | None = None) -> DialectError:
    """A Google error for `status` (its default message unless given), ready to raise."""
    name, default = _STATUS.get(status, ("UNKNOWN", f"HTTP {status}"))
    body: dict[str, Any] = {"code": status, "message": message or default, "status": name}
    if details:
        body["details"] = details
    return DialectError(json_reply(status, {"error": body}, JSON))


def invalid(message: str) -> DialectError:
    """400 INVALID_ARGUMENT."""
    return error(400, message)


def presented_key(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    key = headers.get("x-goog-api-key", "").strip() or query.get("key", "").strip()
    return key or None


def auth_error(key: str | None) -> Reply:
    if not key:
        return error(
            403,
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
        ).reply
    info = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }
    localized = {
        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
        "locale": "en-US",
        "message": "API key not valid. Please pass a valid API key.",
    }
    return error(400, "API key not valid. Please pass a valid API key.", [info, localized]).reply


def _retry_info(fault: Fault | None) -> str:
    seconds = fault.seconds if fault is not None and fault.seconds is not None else 1.0
    return f"{seconds:g}s"


def error_reply(status: int, fault: Fault | None) -> Reply:
    if status == 502:
        return Reply(502, _HTML_502, "text/html; charset=UTF-8")
    message = fault.error if fault is not None and fault.error else None
    details: list[Any] = []
    if status == 429:
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/generate_requests_per_model",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                        "quotaDimensions": {"location": "global"},
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": _retry_info(fault)},
        ]
    return error(status, message, details).reply


def not_found(method: str, path: str) -> Reply:
    return error(404, f"Method not found: {method} {path.removeprefix('/gemini')}.").reply
