"""imagerelay: one interface to the image APIs of xAI, OpenAI and Replicate.

```python
import imagerelay
receipt = imagerelay.generate("a red fox in snow", env="sandbox")
print(receipt.images[0].path)
```

Importing this package is cheap: the SDKs, Pillow and even pydantic load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ArgumentRejected",
    "AuthenticationFailed",
    "BudgetExceeded",
    "ConfigError",
    "ContentBlocked",
    "EmptyResult",
    "GenerationFailed",
    "ImageRelayError",
    "ImageRequest",
    "InvalidReference",
    "InvalidRequest",
    "Plan",
    "Provider",
    "ProviderError",
    "Receipt",
    "Relay",
    "SaveFailed",
    "TransientError",
    "UserError",
    "__version__",
    "agenerate",
    "generate",
    "load_catalog",
    "load_settings",
    "register_provider",
]

_LAZY = {
    "agenerate": "api",
    "generate": "api",
    "Relay": "relay",
    "ImageRequest": "request",
    "Receipt": "receipt",
    "Plan": "planner",
    "load_catalog": "catalog",
    "load_settings": "settings",
    "Provider": "plugins",
    "register_provider": "plugins",
}
_ERRORS = {
    "ArgumentRejected",
    "AuthenticationFailed",
    "BudgetExceeded",
    "ConfigError",
    "ContentBlocked",
    "EmptyResult",
    "GenerationFailed",
    "ImageRelayError",
    "InvalidReference",
    "InvalidRequest",
    "ProviderError",
    "SaveFailed",
    "TransientError",
    "UserError",
}

if TYPE_CHECKING:
    from .api import agenerate, generate
    from .catalog import load_catalog
    from .errors import (
        ArgumentRejected,
        AuthenticationFailed,
        BudgetExceeded,
        ConfigError,
        ContentBlocked,
        EmptyResult,
        GenerationFailed,
        ImageRelayError,
        InvalidReference,
        InvalidRequest,
        ProviderError,
        SaveFailed,
        TransientError,
        UserError,
    )
    from .planner import Plan
    from .plugins import Provider, register_provider
    from .receipt import Receipt
    from .relay import Relay
    from .request import ImageRequest
    from .settings import load_settings


def __getattr__(name: str) -> Any:
    module = "errors" if name in _ERRORS else _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'imagerelay' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
