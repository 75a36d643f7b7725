"""Helpers for tests that drive a `Relay` against the emulator over real HTTP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from imagerelay.emulator import Emulator
from imagerelay.relay import Relay
from imagerelay.settings import Settings, load_settings
from tests.keys import BUILTIN, POLLED

PROVIDERS = BUILTIN


def emulator_settings(emulator: Emulator, env: str = "development", **overrides: Any) -> Settings:
    """Settings of `env` with every provider pointed at `emulator` and quick retries."""
    providers: dict[str, dict[str, Any]] = {
        p: {
            "base_url": emulator.base_url(p),
            "timeout": 10.0,
            "max_requests_per_minute": None,
            **({"poll_interval": 0.05} if p in POLLED else {}),
        }
        for p in PROVIDERS
    }
    for name, values in overrides.pop("providers", {}).items():
        providers.setdefault(name, {}).update(values)
    retry = {"backoff_initial": 0.01, "backoff_max": 0.05, **overrides.pop("retry", {})}
    budget = overrides.pop("budget", {"max_cost_per_request": None})
    return load_settings(env, providers=providers, retry=retry, budget=budget, **overrides)


class Sleeps:
    """An injectable sleep that records every wait and returns at once (no real waiting)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def make_relay(
    emulator: Emulator,
    tmp_path: Path,
    keys: dict[str, str],
    *,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    **overrides: Any,
) -> Relay:
    """A Relay against `emulator`, writing into `tmp_path / "out"`."""
    settings = emulator_settings(emulator, **overrides)
    kwargs: dict[str, Any] = {"keys": keys, "out_dir": tmp_path / "out"}
    if sleep is not None:
        kwargs["sleep"] = sleep
    return Relay(settings, **kwargs)


def routes(emulator: Emulator) -> list[str]:
    """The route of every request the emulator received, in order (image downloads left out)."""
    return [r.route for r in emulator.requests if r.route != "files"]
