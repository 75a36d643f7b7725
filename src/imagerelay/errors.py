"""Every error imagerelay raises, and the typed outcome each one stands for.

```
ImageRelayError                      base of everything raised here
├── UserError                        your input or configuration: fix it and run again (exit 2)
│   ├── InvalidRequest               prompt, size, n, provider name … cannot be honoured
│   ├── InvalidReference             a reference/mask file or URL that cannot be used
│   ├── ConfigError                  broken TOML, unknown key, bad environment value
│   ├── MissingKey                   the key a pinned provider needs is not set
│   ├── OutputError                  the output directory cannot be written
│   ├── ManifestError                a batch manifest with bad items; `.problems` lists each one
│   └── LedgerError                  the output directory's ledger cannot be opened, or is not ours
├── BudgetExceeded                   the estimate is over --max-cost / the budget (request-condemning)
├── ProviderError                    one attempt at one model failed; `.outcome` says what to do next
│   ├── TransientError               429, 5xx, connection error: retry the same model
│   │   ├── RateLimited              429 (honour `.retry_after`)
│   │   ├── ServerError              5xx
│   │   ├── ConnectionFailed         refused, reset, dropped mid-response
│   │   ├── MalformedResponse        a body that is not what the API documents
│   │   ├── DownloadFailed           an output URL that expired or served a broken image
│   │   └── ReadTimedOut             no answer in time; `.maybe_billed` on a generation POST
│   ├── ProviderCondemned            this model cannot serve us now: fall back to the next one
│   │   ├── AuthenticationFailed     bad or missing key (names the key's variable, never its value)
│   │   ├── QuotaExhausted           no credit / spending limit
│   │   ├── ModelUnavailable         retired, not found, or deadline passed on a stuck prediction
│   │   └── ArgumentRejected         the model refused a parameter after translation
│   ├── ContentBlocked               moderation refused the prompt or the output
│   └── EmptyResult                  HTTP 200 and no image: never a success
├── GenerationFailed                 no image was made; `.failures` holds each error, `.receipt`
│                                    the run's receipt (every attempt, what may be billed)
└── SaveFailed                       paid images could not be written into the output directory
                                     (disk full, read-only …): kept elsewhere, as the message says
```

`GenerationFailed` is not an `ExceptionGroup`: it is also raised where there is no exception to
group — every model is cooling down after failing in earlier requests, the cost cap or the
deadline stopped the request before any call, a failure is rebuilt from a stored receipt — and a
group cannot be empty. Test `.failures` (`any(isinstance(f, RateLimited) for f in exc.failures)`).

Backends map vendor errors to these at exactly one seam each, by exception type and status
code, and always chain the cause (`raise … from`).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .receipt import Receipt

__all__ = [
    "ArgumentRejected",
    "AuthenticationFailed",
    "BudgetExceeded",
    "ConfigError",
    "ConnectionFailed",
    "ContentBlocked",
    "DownloadFailed",
    "EmptyResult",
    "ExitCode",
    "GenerationFailed",
    "ImageRelayError",
    "InvalidReference",
    "InvalidRequest",
    "LedgerError",
    "MalformedResponse",
    "ManifestError",
    "MissingKey",
    "ModelUnavailable",
    "Outcome",
    "OutputError",
    "ProviderCondemned",
    "ProviderError",
    "QuotaExhausted",
    "RateLimited",
    "ReadTimedOut",
    "SaveFailed",
    "ServerError",
    "TransientError",
    "UserError",
]


class Outcome(StrEnum):
    """How one attempt ended; decides what the relay does next."""

    SUCCESS = "success"
    TRANSIENT = "transient"  # retry the same model
    PROVIDER = "provider"  # fall back to the next model
    REQUEST = "request"  # stop: the request itself cannot be served
    CONTENT_BLOCKED = "content_blocked"  # stop by default (configurable)
    EMPTY = "empty"  # 200 and no image: retry once, then fall back


class ExitCode(IntEnum):
    """The exit codes of every `imagerelay` command (the README's table)."""

    OK = 0  # done: everything asked for
    FAILED = 1  # not done, at run time: no image made, over budget, or paid output not writable
    REFUSED = 2  # refused before anything was spent: usage, input, configuration
    PARTIAL = 3  # some of what was asked for was saved, not all (4 images of 6, 5 items of 6)
    INTERRUPTED = 130  # Ctrl-C: what was saved is kept


class ImageRelayError(Exception):
    """Base of every error raised by imagerelay."""

    exit_code: int = ExitCode.FAILED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


# ---------------------------------------------------------------------------------------------
# Your side: bad input or configuration. The CLI prints one line and exits 2.


class UserError(ImageRelayError):
    """A problem with the input or configuration; the message names it and the fix."""

    exit_code = ExitCode.REFUSED


class InvalidRequest(UserError):
    """The request cannot be honoured as given (prompt, size, n, provider …)."""


class InvalidReference(UserError):
    """A reference image or mask cannot be used (missing, not an image, too large …)."""


class ConfigError(UserError):
    """The configuration is broken: unreadable TOML, unknown key, bad value."""


class MissingKey(UserError):
    """A provider that was asked for explicitly has no API key set."""


class OutputError(UserError):
    """The output directory cannot be created or written."""


class ManifestError(UserError):
    """The manifest cannot be used; `.problems` lists each bad item as `"line 4: ..."`."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class LedgerError(UserError):
    """The ledger cannot be opened or is not one of ours."""


class BudgetExceeded(ImageRelayError):
    """The estimated cost is over the configured limit; nothing was spent past it."""

    exit_code = ExitCode.FAILED


# ---------------------------------------------------------------------------------------------
# Their side: one attempt at one model failed.


class ProviderError(ImageRelayError):
    """One attempt at one provider/model failed.

    `provider`, `model` and `status` (HTTP status, when there was one) locate it; `outcome` is
    what the relay should do next. Messages never contain keys.
    """

    outcome: Outcome = Outcome.PROVIDER

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        model: str = "",
        status: int | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.model = model
        self.status = status
        self.request_id = request_id

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, provider={self.provider!r}, "
            f"model={self.model!r}, status={self.status!r})"
        )


class TransientError(ProviderError):
    """Worth retrying on the same model (after `retry_after` seconds if the provider said so) —
    unless `maybe_billed`: the provider may already have done, and charged, the work."""

    outcome = Outcome.TRANSIENT
    _billed_by_default = False

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        maybe_billed: bool | None = None,
        **kw: object,
    ) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after
        self._maybe_billed = self._billed_by_default if maybe_billed is None else maybe_billed

    @property
    def maybe_billed(self) -> bool:
        """True when the generation was accepted before it failed: a 200 whose body or image was
        broken, an image URL that could not be fetched, an answer cut off or never sent in time."""
        return self._maybe_billed or self.status == 200


class RateLimited(TransientError):
    """HTTP 429: too many requests (or, at xAI, possibly no credit left)."""


class ServerError(TransientError):
    """HTTP 5xx from the provider."""


class ConnectionFailed(TransientError):
    """The connection was refused, reset or dropped before a full response arrived."""


class MalformedResponse(TransientError):
    """The provider answered with a body that does not match its documented shape."""


class DownloadFailed(TransientError):
    """The image was generated but its URL could not be fetched (expired) or served broken bytes."""

    _billed_by_default = True


class ReadTimedOut(TransientError):
    """No response in time. After a generation POST the call may have been billed, so the relay
    never re-sends it to the same model."""

    _billed_by_default = True


class ProviderCondemned(ProviderError):
    """This model cannot serve requests now; the relay falls back to the next candidate."""

    outcome = Outcome.PROVIDER


class AuthenticationFailed(ProviderCondemned):
    """The key was refused. The message names the environment variable, never the key."""


class QuotaExhausted(ProviderCondemned):
    """No credit or spending limit reached."""


class ModelUnavailable(ProviderCondemned):
    """The model is retired, unknown to the provider, or did not finish before the deadline."""


class ArgumentRejected(ProviderCondemned):
    """The model rejected a parameter even after translation (a catalog that needs an update)."""


class ContentBlocked(ProviderError):
    """Moderation refused the prompt or the result."""

    outcome = Outcome.CONTENT_BLOCKED


class EmptyResult(ProviderError):
    """HTTP 200 with no image in it. Never counted as a success."""

    outcome = Outcome.EMPTY


class GenerationFailed(ImageRelayError):
    """No image was made: every candidate failed, the relay stopped (content blocked, the cap, the
    deadline), or every model that could serve the request is cooling down.

    `failures` holds one error per failed attempt, in order (empty when nothing was tried);
    `receipt` is the receipt of the whole run, so even a failure can be inspected and saved.
    """

    exit_code = ExitCode.FAILED

    def __init__(self, message: str, failures: list[ImageRelayError], receipt: Receipt) -> None:
        super().__init__(message)
        self.failures = failures
        self.receipt = receipt
        #: Where the receipt of the failed request was written (None: nowhere, or not yet).
        self.receipt_path: str | None = None


class SaveFailed(ImageRelayError):
    """Images were delivered (and paid for), but the output directory could not take them.

    Not the user's input (exit 1, not 2): the bytes were kept in a rescue directory when possible,
    the message says what was paid and where each image is, and `receipt` records it all.
    """

    exit_code = ExitCode.FAILED

    def __init__(self, message: str, receipt: Receipt) -> None:
        super().__init__(message)
        self.receipt = receipt
