"""imagerelay: one interface to the image APIs of xAI, OpenAI, Replicate and Google Gemini.

```python
import imagerelay
receipt = imagerelay.generate("a red fox in snow", env="sandbox")
print(receipt.images[0].path)
```

Importing this package is cheap: the SDKs, Pillow and even pydantic load on first use.
The public API is `_PUBLIC` below (every name, and the module it comes from); `__all__` and the
lazy lookup are made from it, and a test keeps the `TYPE_CHECKING` imports equal to it.
"""

# ruff: noqa: I001  (the `X as X` re-exports below stay grouped by module, one statement each)

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

#: Every public name → the module (under `imagerelay.`) that defines it.
_PUBLIC: dict[str, str] = {
    # the front door
    "agenerate": "api",
    "generate": "api",
    "Relay": "relay",
    "RunHooks": "hooks",
    "Budget": "hooks",
    "PredictionCreated": "hooks",
    # requests, plans, receipts
    "ImageRequest": "request",
    "Plan": "planner",
    "Candidate": "planner",
    "Exclusion": "planner",
    "Receipt": "receipt",
    "Attempt": "receipt",
    "SavedImage": "receipt",
    "ReferenceRecord": "receipt",
    # configuration and the catalog
    "Settings": "settings",
    "load_settings": "settings",
    "Catalog": "catalog",
    "ModelSpec": "catalog",
    "ProviderSpec": "catalog",
    "load_catalog": "catalog",
    # providers as plugins (see docs/writing-a-provider.md)
    "Provider": "plugins",
    "register_provider": "plugins",
    # the whole error tree (errors.py draws it), the outcome each error stands for, exit codes
    "ImageRelayError": "errors",
    "UserError": "errors",
    "InvalidRequest": "errors",
    "InvalidReference": "errors",
    "ConfigError": "errors",
    "MissingKey": "errors",
    "OutputError": "errors",
    "ManifestError": "errors",
    "LedgerError": "errors",
    "BudgetExceeded": "errors",
    "ProviderError": "errors",
    "TransientError": "errors",
    "RateLimited": "errors",
    "ServerError": "errors",
    "ConnectionFailed": "errors",
    "MalformedResponse": "errors",
    "DownloadFailed": "errors",
    "ReadTimedOut": "errors",
    "ProviderCondemned": "errors",
    "AuthenticationFailed": "errors",
    "QuotaExhausted": "errors",
    "ModelUnavailable": "errors",
    "ArgumentRejected": "errors",
    "ContentBlocked": "errors",
    "EmptyResult": "errors",
    "GenerationFailed": "errors",
    "SaveFailed": "errors",
    "Outcome": "errors",
    "ExitCode": "errors",
}

__all__ = sorted([*_PUBLIC, "__version__"])

if TYPE_CHECKING:  # `X as X`: exported, for type checkers (they cannot read a computed __all__)
    from .api import (
        agenerate as agenerate,
        generate as generate,
    )
    from .catalog import (
        Catalog as Catalog,
        ModelSpec as ModelSpec,
        ProviderSpec as ProviderSpec,
        load_catalog as load_catalog,
    )
    from .errors import (
        ArgumentRejected as ArgumentRejected,
        AuthenticationFailed as AuthenticationFailed,
        BudgetExceeded as BudgetExceeded,
        ConfigError as ConfigError,
        ConnectionFailed as ConnectionFailed,
        ContentBlocked as ContentBlocked,
        DownloadFailed as DownloadFailed,
        EmptyResult as EmptyResult,
        ExitCode as ExitCode,
        GenerationFailed as GenerationFailed,
        ImageRelayError as ImageRelayError,
        InvalidReference as InvalidReference,
        InvalidRequest as InvalidRequest,
        LedgerError as LedgerError,
        MalformedResponse as MalformedResponse,
        ManifestError as ManifestError,
        MissingKey as MissingKey,
        ModelUnavailable as ModelUnavailable,
        Outcome as Outcome,
        OutputError as OutputError,
        ProviderCondemned as ProviderCondemned,
        ProviderError as ProviderError,
        QuotaExhausted as QuotaExhausted,
        RateLimited as RateLimited,
        ReadTimedOut as ReadTimedOut,
        SaveFailed as SaveFailed,
        ServerError as ServerError,
        TransientError as TransientError,
        UserError as UserError,
    )
    from .hooks import (
        Budget as Budget,
        PredictionCreated as PredictionCreated,
        RunHooks as RunHooks,
    )
    from .planner import (
        Candidate as Candidate,
        Exclusion as Exclusion,
        Plan as Plan,
    )
    from .plugins import (
        Provider as Provider,
        register_provider as register_provider,
    )
    from .receipt import (
        Attempt as Attempt,
        Receipt as Receipt,
        ReferenceRecord as ReferenceRecord,
        SavedImage as SavedImage,
    )
    from .relay import Relay as Relay
    from .request import ImageRequest as ImageRequest
    from .settings import (
        Settings as Settings,
        load_settings as load_settings,
    )

    __version__: str


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value: Any = _version()
    elif name in _PUBLIC:
        value = getattr(import_module(f".{_PUBLIC[name]}", __name__), name)
    else:
        raise AttributeError(f"module 'imagerelay' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)


def _version() -> str:
    """The installed distribution's version (pyproject.toml is the one place it is written)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("imagerelay")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"
