"""The `[gateway]` settings: keys (as hashes), named routes, size caps and the drain deadline."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["LOCAL_KEY", "GatewayKey", "GatewayRoute", "GatewaySettings"]

#: The name recorded for requests served without gateway keys (loopback only).
LOCAL_KEY = "local"

_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GatewayKey(_Section):
    """One gateway key: its hash (never the key itself) and what it may do."""

    hash: str
    #: What the key may ask for as `model`: "auto", a provider, PROVIDER:MODEL or a route name.
    #: A provider allows each of its models pinned too. None: anything.
    models: list[str] | None = None
    budget_per_day: float | None = Field(default=None, ge=0)  # USD, UTC calendar day
    budget_per_month: float | None = Field(default=None, ge=0)  # USD, UTC calendar month
    requests_per_minute: int | None = Field(default=None, gt=0)

    @field_validator("hash")
    @classmethod
    def _hash(cls, v: str) -> str:
        if not _HASH.match(v.strip().lower()):
            # Never echo the value: it may be the key itself, pasted in the wrong place.
            raise ValueError(
                "not a key hash (sha256:<64 hex digits>): run `imagerelay serve keys new NAME` "
                "and paste the hash line it prints; never put the key itself in config"
            )
        return v.strip().lower()


class GatewayRoute(_Section):
    """A named route: the models a request naming it tries, in order."""

    models: list[str] = Field(min_length=1)


class GatewaySettings(_Section):
    """How `imagerelay serve` admits, caps and drains requests."""

    keys: dict[str, GatewayKey] = Field(default_factory=dict)
    routes: dict[str, GatewayRoute] = Field(default_factory=dict)
    #: Largest request body, JSON or multipart, in bytes.
    max_request_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    #: Largest single image (an uploaded part, or a data URI once decoded), in bytes.
    max_image_bytes: int = Field(default=25 * 1024 * 1024, gt=0)
    #: Seconds a SIGTERM waits for requests in flight before it cancels them.
    drain_seconds: float = Field(default=120.0, ge=0)
    #: Base of the image URLs in answers (e.g. https://images.example.com); else the Host asked for.
    public_url: str | None = None

    @field_validator("keys", "routes")
    @classmethod
    def _names(cls, v: dict[str, object]) -> dict[str, object]:
        for name in v:
            if not _NAME.match(name):
                raise ValueError(f"{name[:64]!r} is not a plain name (letters, digits, '_', '.', '-')")
        return v

    @field_validator("keys")
    @classmethod
    def _not_local(cls, v: dict[str, GatewayKey]) -> dict[str, GatewayKey]:
        if LOCAL_KEY in v:
            raise ValueError(f"{LOCAL_KEY!r} names requests served without keys: pick another key name")
        return v
