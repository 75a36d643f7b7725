"""OpenAI's error shapes: `{"error": {"message", "type", "param", "code"}}` by status, the key
errors (the key shown masked, never whole), and a 429's rate-limit headers."""

from __future__ import annotations

from imagerelay.emulator.wire import DialectError, Fault, Reply, json_reply

__all__ = [
    "auth_error",
    "error",
    "error_reply",
    "invalid",
    "mask_key",
    "model_not_found",
    "not_found",
    "unsupported",
]

_STATUS_ERRORS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model.", "invalid_request_error", None),
    404: ("The requested resource was not found.", "invalid_request_error", None),
    409: ("The request conflicted with another request.", "invalid_request_error", None),
    429: (
        "Rate limit reached for images per minute. Please try again in 1s.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
}


def error(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> DialectError:
    """An OpenAI error answer, ready to raise."""
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return DialectError(json_reply(status, body))


def mask_key(key: str) -> str:
    """Show a key the way the error message does: a few characters, never the whole key."""
    tail = key[-4:] if len(key) >= 16 else ""
    return f"{key[:5]}***{tail}"


def auth_error(key: str | None) -> Reply:
    if not key:
        return error(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        ).reply
    return error(
        401,
        f"Incorrect API key provided: {mask_key(key)}. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
        code="invalid_api_key",
    ).reply


def error_reply(status: int, fault: Fault | None) -> Reply:
    message, type_, code = _STATUS_ERRORS.get(status, (f"HTTP {status}", "server_error", None))
    if fault is not None and fault.error:
        message = fault.error
    reply = error(status, message, type_, None, code).reply
    if status == 429:
        headers = {k.lower(): v for k, v in (fault.headers if fault else {}).items()}
        seconds = headers.get("retry-after", "1")
        try:
            ms = str(int(float(seconds) * 1000))
        except ValueError:
            ms = "1000"
        reply.headers.update(
            {
                "retry-after": seconds,
                "retry-after-ms": headers.get("retry-after-ms", ms),
                "x-ratelimit-limit-requests": "50",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": f"{seconds}s",
                "x-ratelimit-limit-tokens": "100000",
                "x-ratelimit-remaining-tokens": "0",
                "x-ratelimit-reset-tokens": f"{seconds}s",
            }
        )
    return reply


def not_found(method: str, path: str) -> Reply:
    api_path = path.removeprefix("/openai")
    return error(404, f"Invalid URL ({method} {api_path})").reply


def model_not_found(model: str) -> DialectError:
    return error(
        404, f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
    )


def invalid(param: str, message: str, code: str = "invalid_value") -> DialectError:
    """400 naming the parameter at fault."""
    return error(400, message, param=param, code=code)


def unsupported(param: str, model: str) -> DialectError:
    return error(
        400,
        f"Unsupported parameter: '{param}' is not supported with this model.",
        param=param,
        code="unsupported_parameter",
    )
