"""Admitting a gateway request: the key may use the model and is within its request rate and its
budget; and what makes two requests one (an SDK's retry under the same `Idempotency-Key`)."""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import time
from typing import TYPE_CHECKING

from .errors import GatewayError, from_relay_error

if TYPE_CHECKING:
    from ..catalog import Catalog
    from ..ledger import Ledger
    from ..receipt import Receipt
    from .keys import Principal
    from .translate import Parsed

__all__ = [
    "check_idempotency_key",
    "check_model",
    "check_rate",
    "failed_again",
    "over_budget",
    "record_idempotent",
    "request_fingerprint",
]

_IDEMPOTENCY_MAX = 200


def check_model(principal: Principal, model: str, catalog: Catalog) -> None:
    """403 unless the key may use `model`."""
    if not principal.allows(model, catalog):
        allowed = ", ".join(principal.spec.models or []) if principal.spec else ""
        raise GatewayError(
            403,
            f"model {model!r} is not allowed for gateway key {principal.name!r} (it may use: {allowed})",
            code="model_not_allowed",
            param="model",
        )


def check_idempotency_key(idempotency_key: str) -> None:
    """400 for a key too long to be one."""
    if len(idempotency_key) > _IDEMPOTENCY_MAX:
        raise GatewayError(
            400,
            f"Idempotency-Key is over {_IDEMPOTENCY_MAX} characters",
            code="invalid_idempotency_key",
        )


def check_rate(principal: Principal) -> None:
    """Count one request against the key's rate; 429 (with Retry-After) when it is over."""
    wait = principal.take_request(time.monotonic())
    if wait is not None:
        raise GatewayError(
            429,
            f"gateway key {principal.name!r} is over its request rate "
            f"({principal.spec.requests_per_minute if principal.spec else 0} a minute): "
            "wait and try again",
            code="rate_limit_exceeded",
            headers={"Retry-After": str(math.ceil(wait))},
        )


def over_budget(principal: Principal, reset: float) -> GatewayError:
    """429 for a key that has spent its budget, renewing in `reset` seconds."""
    spec = principal.spec
    which = []
    if spec is not None and spec.budget_per_day is not None:
        which.append(f"${spec.budget_per_day:g} a day")
    if spec is not None and spec.budget_per_month is not None:
        which.append(f"${spec.budget_per_month:g} a month")
    return GatewayError(
        429,
        f"gateway key {principal.name!r} has spent its budget ({' and '.join(which)}): "
        f"it renews in {math.ceil(reset)} s",
        code="budget_exceeded",
        type="insufficient_quota",
        headers={"Retry-After": str(math.ceil(reset))},
    )


def request_fingerprint(parsed: Parsed) -> str:
    """What makes two requests the same request (an SDK's retry), whatever their encoding."""
    data = {
        "request": parsed.request.model_dump(mode="json"),
        "model": parsed.model,
        "format": parsed.response_format,
        "max_cost": parsed.max_cost,
        "name": parsed.name,
        "loaded": sorted((k, r.sha256) for k, r in parsed.loaded.items()),
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def record_idempotent(
    ledger: Ledger, receipt_id: str, principal: Principal, idempotency_key: str, fingerprint: str
) -> None:
    """Record a request under its Idempotency-Key before anything is sent; 409 when another process
    of this gateway took the key just now, 500 when the ledger cannot be written."""
    try:
        ledger.start_gateway_request(
            receipt_id,
            gateway_key=principal.name,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
        )
    except sqlite3.IntegrityError:
        raise GatewayError(
            409,
            "a request with this Idempotency-Key is already running: retry it",
            code="idempotency_conflict",
        ) from None
    except sqlite3.Error as exc:
        raise GatewayError(500, f"the gateway cannot write its ledger: {exc}", code="storage_error") from None


def failed_again(receipt: Receipt) -> GatewayError:
    """The error a finished request without images answered with, rebuilt from its receipt."""
    from ..errors import GenerationFailed
    from ..failures import failure_message

    return from_relay_error(GenerationFailed(failure_message(receipt), [], receipt))
