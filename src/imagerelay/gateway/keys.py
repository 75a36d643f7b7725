"""Gateway keys: made once, stored as hashes, checked on every request, each with its own limits.

A gateway key is not a provider key: it admits a client to this gateway, which spends with the
provider keys only it holds. Keys are 256 random bits, so one SHA-256 is a safe hash for them
(no salt or slow hash is needed for a secret that cannot be guessed).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from ..ledger.gateway import BudgetWindow, KeyStanding
from .config import LOCAL_KEY, GatewayKey
from .errors import GatewayError

if TYPE_CHECKING:
    from ..catalog import Catalog
    from ..ledger import Ledger

__all__ = ["Budgets", "KeyRing", "Principal", "Standing", "hash_key", "new_key"]

_PREFIX = "irk_"


def new_key() -> str:
    """A fresh gateway key: `irk_` and 43 URL-safe characters (256 random bits)."""
    return _PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The form a key is configured in: `sha256:<hex>`."""
    return "sha256:" + hashlib.sha256(key.strip().encode()).hexdigest()


@dataclass
class Principal:
    """Who is asking: a configured key by name, or the loopback client when no key is configured."""

    name: str
    spec: GatewayKey | None = None
    _recent: deque[float] = field(default_factory=deque, repr=False)

    def allows(self, model: str, catalog: Catalog) -> bool:
        """Whether this key may ask for `model` (already resolved to auto, a route, a provider or
        PROVIDER:MODEL)."""
        if self.spec is None or self.spec.models is None:
            return True
        allowed = set(self.spec.models)
        if model in allowed:
            return True
        provider, sep, _ = model.partition(":")
        return bool(sep) and provider in catalog.providers and provider in allowed

    def take_request(self, now: float) -> float | None:
        """Count one request against the key's rate; the seconds to wait when it is over, else None."""
        rate = self.spec.requests_per_minute if self.spec is not None else None
        if rate is None:
            return None
        recent = self._recent
        while recent and recent[0] <= now - 60.0:
            recent.popleft()
        if len(recent) >= rate:
            return max(0.001, recent[0] + 60.0 - now)
        recent.append(now)
        return None


class KeyRing:
    """The configured keys, by hash; with none configured every (loopback) request is `local`."""

    def __init__(self, keys: dict[str, GatewayKey]) -> None:
        self._by_hash = {spec.hash: Principal(name, spec) for name, spec in keys.items()}
        self._local = Principal(LOCAL_KEY)

    @property
    def open(self) -> bool:
        """True when no key is configured (the gateway then listens on loopback only)."""
        return not self._by_hash

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal for an `Authorization` header; raises a 401 GatewayError otherwise."""
        if self.open:
            return self._local
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GatewayError(
                401,
                "no gateway key given: send `Authorization: Bearer <key>` (the SDKs' api_key)",
                code="missing_api_key",
            )
        digest = hash_key(token)
        found = None
        for known, principal in self._by_hash.items():  # compare every one, in constant time each
            if hmac.compare_digest(known, digest):
                found = principal
        if found is None:
            raise GatewayError(401, "the gateway key given is not known here", code="invalid_api_key")
        return found


def _day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def _month_start(now: datetime) -> datetime:
    return _day_start(now).replace(day=1)


def _next_month(now: datetime) -> datetime:
    start = _month_start(now)
    return (start + timedelta(days=32)).replace(day=1)


@dataclass(frozen=True)
class Standing:
    """Where a key stands in its tightest budget window, and when that window renews."""

    standing: KeyStanding
    per: str  # "a day" or "a month"
    reset: float  # seconds until the window renews

    @property
    def left(self) -> float:
        return self.standing.left


class Budgets:
    """Per-key budgets per UTC day and month: what the ledger says was spent, plus what requests
    in flight hold (a row each in the ledger, shared by every worker process), so that concurrent
    requests cannot overshoot."""

    def __init__(
        self, ledger: Ledger, *, max_hold_age: float, now: Callable[[], datetime] | None = None
    ) -> None:
        self._ledger = ledger
        self._now = now or (lambda: datetime.now(UTC))
        #: A hold older than this is stale whatever its process (no request runs that long).
        self.max_hold_age = max_hold_age
        ledger.drop_own_holds()

    def _windows(self, spec: GatewayKey) -> list[tuple[BudgetWindow, str, float]]:
        now = self._now()
        out = []
        for budget, per, start, end in (
            (spec.budget_per_day, "a day", _day_start(now), _day_start(now) + timedelta(days=1)),
            (spec.budget_per_month, "a month", _month_start(now), _next_month(now)),
        ):
            if budget is not None:
                out.append((BudgetWindow(budget, start), per, max(1.0, (end - now).total_seconds())))
        return out

    def standing(self, principal: Principal) -> Standing | None:
        """The key's tightest budget window now, or None when it has no budget."""
        spec = principal.spec
        if spec is None:
            return None
        best: Standing | None = None
        for window, per, reset in self._windows(spec):
            got = self._ledger.key_standing(principal.name, window, max_age=self.max_hold_age)
            if best is None or got.left < best.left:
                best = Standing(got, per, reset)
        return best

    def hold(self, principal: Principal, receipt_id: str, usd: float) -> Standing | None:
        """Hold `usd` of the key's budget for one request, checked against every window and
        written in one ledger transaction. None when held (or the key has no budget), else the
        standing of the window it does not fit in; `release` gives it back."""
        spec = principal.spec
        if spec is None:
            return None
        windows = self._windows(spec)
        if not windows:
            return None
        refused = self._ledger.hold_budget(
            receipt_id, principal.name, usd, [w for w, _, _ in windows], max_age=self.max_hold_age
        )
        if refused is None:
            return None
        _, per, reset = next(w for w in windows if w[0].usd == refused.budget)
        return Standing(refused, per, reset)

    def release(self, principal: Principal, receipt_id: str) -> None:
        """Give back what `hold` took (the request's receipt now records what it spent)."""
        if principal.spec is None or (
            principal.spec.budget_per_day is None and principal.spec.budget_per_month is None
        ):
            return
        self._ledger.release_budget(receipt_id)
