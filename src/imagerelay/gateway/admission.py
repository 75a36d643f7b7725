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
    from .keys import Principal, Standing
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


#: Retry-After for a budget held by requests in flight: they end within seconds, as a rule.
HELD_RETRY_AFTER = 5


def over_budget(principal: Principal, at: Standing, need: float | None = None) -> GatewayError:
    """429 for a key whose budget cannot take a request that may cost up to `need` (None: any).

    Said apart: a budget that is spent (it renews in hours: a long Retry-After), and one held by
    requests in flight that would fit once they end (a short one)."""
    st = at.standing
    budget = f"${st.budget:g} {at.per}"
    in_flight = f"${st.held:.4f} held by {st.holds} request(s) in flight" if st.holds else ""
    renews = f"it renews in {math.ceil(at.reset)} s"
    if st.spent >= st.budget - 1e-9:
        message = (
            f"gateway key {principal.name!r} has spent its budget (${st.spent:.4f} of {budget}): {renews}"
        )
        wait = math.ceil(at.reset)
    elif st.holds and (need is None or st.spent + need <= st.budget + 1e-9):
        message = (
            f"gateway key {principal.name!r} has {in_flight} of its {budget} budget "
            f"(${st.spent:.4f} spent): try again in a few seconds, once they end"
        )
        return GatewayError(429, message, code="budget_held", headers={"Retry-After": str(HELD_RETRY_AFTER)})
    else:
        cost = f", and this request may cost up to ${need:.4f}" if need is not None else ""
        held = f", {in_flight}" if in_flight else ""
        message = (
            f"gateway key {principal.name!r} has ${st.left:.4f} left of its {budget} budget "
            f"(${st.spent:.4f} spent{held}){cost}: {renews} (a cheaper model or fewer images may fit)"
        )
        wait = math.ceil(at.reset)
    return GatewayError(
        429,
        message,
        code="budget_exceeded",
        type="insufficient_quota",
        headers={"Retry-After": str(wait)},
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
    ledger: Ledger,
    receipt_id: str,
    principal: Principal,
    idempotency_key: str,
    fingerprint: str,
    *,
    sandbox: bool,
) -> None:
    """Record a request under its Idempotency-Key before anything is sent; 409 when another process
    of this gateway took the key just now, 500 when the ledger cannot be written."""
    try:
        ledger.start_gateway_request(
            receipt_id,
            gateway_key=principal.name,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
            sandbox=sandbox,
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
