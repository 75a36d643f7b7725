"""What the tests know of each provider: its fake API key, the variables its key is read from, the
model tried first and the emulator route of a generation."""

from __future__ import annotations

from imagerelay.catalog import load_catalog
from imagerelay.plugins import builtin_names, settings_model

#: Accepted by the `emulator` fixture, by provider.
TEST_KEYS = {
    "xai": "xai-test-0000",
    "openai": "sk-test-0000",
    "replicate": "r8_test0000",
    "gemini": "AIza" + "-test-0000",  # fake, built so secret scanners do not flag it
}
_CATALOG = load_catalog()
#: The providers imagerelay itself registers (a third-party plugin installed beside it is not one).
BUILTIN = tuple(builtin_names())
#: The environment variable each provider's API key is read from (the first one it tries).
KEY_VARS = {p: _CATALOG.provider(p).key_env for p in BUILTIN}
#: Every variable any provider reads a key from (Gemini's SDK also reads GOOGLE_API_KEY).
ALL_KEY_VARS = tuple(v for p in BUILTIN for v in _CATALOG.provider(p).key_envs)
#: Providers whose backend polls (it has a `poll_interval` setting): tests make it quick.
POLLED = tuple(p for p in BUILTIN if "poll_interval" in settings_model(p).model_fields)
#: The model each provider is tried with first in the provider-by-provider tests.
PRIMARY = {
    "xai": "xai:grok-imagine-image",
    "openai": "openai:gpt-image-2",
    "replicate": "replicate:black-forest-labs/flux-schnell",
    "gemini": "gemini:gemini-nano-banana-2.1",
}
#: The emulator route a text generation of each provider's wire API arrives at.
GENERATE_ROUTE = {
    "xai": "xai.generations",
    "openai": "openai.generations",
    "replicate": "replicate.create",
    "gemini": "gemini.generate",
}


def outside_setting(var: str) -> bool:
    """An `IMAGERELAY_*` variable a test isolates itself from — all but the switch that keeps
    third-party provider plugins out of the suite (see conftest.py)."""
    return var.upper().startswith("IMAGERELAY_") and var.upper() != "IMAGERELAY_LOAD_PLUGINS"
