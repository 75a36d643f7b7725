"""The gateway's state: one `Relay` per process (rate limits and cooldowns shared by every
client), the ledger, the keys and their budgets, and the generations in flight.

A generation runs in a task of its own, not in the request's: a client that hangs up does not
cancel it, so an image the provider was already paid for is still saved, recorded in the
ledger, and its receipt can be fetched by id (or the whole answer again, with the same
`Idempotency-Key`). SIGTERM stops new work and waits for the tasks in flight, up to
`gateway.drain_seconds`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import sqlite3
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ImageRelayError
from ..hooks import RunHooks
from ..ledger import Ledger
from ..receipt import Receipt
from ..relay import Relay
from ..settings_check import close_match, source_of
from ..store import Store
from .admission import (
    check_idempotency_key,
    check_model,
    check_rate,
    failed_again,
    over_budget,
    record_idempotent,
    request_fingerprint,
)
from .answers import answer
from .errors import GatewayError, from_relay_error, possibly_billed
from .keys import Budgets, KeyRing, Principal, Standing
from .metrics import Metrics
from .translate import Parsed

if TYPE_CHECKING:
    from ..planner import Plan
    from ..receipt import SavedImage
    from ..settings import Settings

__all__ = ["Gateway", "Generated"]

log = logging.getLogger("imagerelay.gateway")


@dataclass
class Generated:
    """How one generation ended: its receipt, or the error to answer with."""

    receipt: Receipt | None = None
    error: GatewayError | None = None
    #: Seconds inside `Relay.generate` (the rest of a request's time is the gateway's own).
    relay_s: float = 0.0


class Gateway:
    """Everything one gateway process shares between requests."""

    def __init__(self, settings: Settings, *, relay: Relay | None = None) -> None:
        self.settings = settings
        self.relay = relay or Relay(settings, record=False)  # recorded below, with the gateway key
        self.catalog = self.relay.catalog
        self.keys = KeyRing(settings.gateway.keys)
        self.metrics = Metrics()
        self._check_config()
        # Opened here, on the thread that will serve: a broken output directory or ledger is a
        # one-line error before the server starts, not a failed request later.
        Store(self.relay.out_dir).ensure()
        self.ledger = Ledger.open(self.relay.out_dir)
        # A hold outlives its process only when that process's id was reused: past the longest a
        # request can run (the relay's deadline, then the drain), it no longer counts.
        max_age = 2 * settings.retry.deadline + settings.gateway.drain_seconds
        self.budgets = Budgets(self.ledger, max_hold_age=max_age)
        self.relay.on_receipt.append(self._record)
        self.draining = False
        self.started = False
        #: Generations cancelled because the drain deadline passed (the exit code says so).
        self.cancelled = 0
        self.drain_deadline: float | None = None
        self._tasks: dict[str, asyncio.Task[Generated]] = {}  # by receipt id
        self._by_idempotency: dict[tuple[str, str], tuple[str, str]] = {}  # → (receipt id, fingerprint)
        self._key_of: dict[str, str] = {}  # receipt id → gateway key name

    def _check_config(self) -> None:
        """A route or a key's `models` entry that names nothing is refused here, before serving:
        else a typo would answer 400 or 403 to every request that needs it."""
        gw = self.settings.gateway
        refs = [m.ref for p in self.catalog.providers.values() for m in p.models.values()]
        for name, route in gw.routes.items():
            if name == "auto" or name in self.catalog.providers:
                where = source_of(self.settings.env, ["gateway", "routes", name])
                raise ConfigError(
                    f"{where}: [gateway.routes.{name}]: {name!r} is already a provider name: rename the route"
                )
            for ref in route.models:
                if ref not in refs:
                    self._unknown(["gateway", "routes", name, "models"], ref, refs, "provider:model")
        choices = ["auto", *gw.routes, *self.catalog.providers, *refs]
        for name, key in gw.keys.items():
            for ref in key.models or ():
                if ref not in choices:
                    self._unknown(
                        ["gateway", "keys", name, "models"],
                        ref,
                        choices,
                        "auto, a route, a provider or provider:model",
                    )

    def _unknown(self, loc: list[str], ref: str, choices: list[str], kinds: str) -> None:
        owners = [c for c in choices if c.partition(":")[2] == ref]  # a bare model id
        close = owners[0] if len(owners) == 1 else close_match(ref, choices)
        hint = f"did you mean {close!r}?" if close else f"use {kinds} as `imagerelay providers` lists them"
        shown = repr(ref) if len(ref) <= 80 else "an entry"
        raise ConfigError(
            f"{source_of(self.settings.env, loc)}: {'.'.join(loc)} lists {shown}, which names no "
            f"provider, model or route: {hint}"
        )

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        await self.relay.open()
        self.started = True

    def begin_drain(self) -> None:
        """Stop taking new generations; those in flight get until the deadline to finish."""
        if not self.draining:
            self.draining = True
            self.drain_deadline = time.monotonic() + self.settings.gateway.drain_seconds
            level = logging.WARNING if self._tasks else logging.INFO
            log.log(level, "draining: %d generation(s) in flight", len(self._tasks))

    async def stop(self) -> None:
        """Wait for the generations in flight (up to the drain deadline), then close everything."""
        self.begin_drain()
        assert self.drain_deadline is not None
        pending = [t for t in self._tasks.values() if not t.done()]
        if pending:
            left = max(0.0, self.drain_deadline - time.monotonic())
            _, late = await asyncio.wait(pending, timeout=left)
            for task in late:
                task.cancel()
            self.cancelled = len(late)
            if late:
                log.warning("drain deadline reached: %d generation(s) cancelled", len(late))
                await asyncio.wait(late, timeout=5)
        await self.relay.aclose()
        self.ledger.close()

    # -- the ledger hook ----------------------------------------------------------------------

    def _record(self, receipt: Receipt) -> None:
        key = self._key_of.get(receipt.id)
        self.ledger.record_receipt(receipt, gateway_key=key)
        if key is not None:
            self.metrics.record(receipt, key)

    # -- generations --------------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> Principal:
        return self.keys.authenticate(authorization)

    async def generate(self, principal: Principal, parsed: Parsed, idempotency_key: str | None) -> Generated:
        """Admit (model, rate, budget, idempotency), then run one generation in its own task."""
        check_model(principal, parsed.model, self.catalog)
        fingerprint = request_fingerprint(parsed)
        if idempotency_key is not None:
            check_idempotency_key(idempotency_key)
            earlier = self._earlier(principal, idempotency_key, fingerprint)
            if earlier is not None:
                return await earlier
        check_rate(principal)
        standing = self._standing(principal)
        remaining = None if standing is None else standing.left
        if standing is not None and standing.left <= 1e-9:
            raise over_budget(principal, standing)
        own = [c for c in (parsed.max_cost, self.settings.budget.max_cost_per_request) if c is not None]
        caps = [*own, *([] if remaining is None else [remaining])]
        max_cost = min(caps) if caps else None
        plan = self._plan(parsed, max_cost)
        if (
            standing is not None
            and not plan.candidates
            and not plan.describe
            and max_cost == remaining
            and any(e.over_budget for e in plan.excluded)
        ):
            # What the request needs, with the key's own caps only: does it wait for the requests
            # in flight, or for the budget to renew?
            need = self._plan(parsed, min(own) if own else None).worst_usd
            raise over_budget(principal, standing, need or None)
        # The most the request may cost, whichever candidate serves it (the relay holds each call to it).
        reserve = plan.worst_usd
        receipt_id = uuid.uuid4().hex
        # Checked again and held in one ledger transaction: the workers of a gateway share the
        # budget, and another may have taken some of it since it was read above.
        refused = self.budgets.hold(principal, receipt_id, reserve)
        if refused is not None:
            raise over_budget(principal, refused, reserve)
        try:
            if idempotency_key is not None:
                # Durable before anything is sent, so a retry finds it even across a restart.
                # (Without the header the receipt alone records the key: one ledger write fewer.)
                record_idempotent(
                    self.ledger,
                    receipt_id,
                    principal,
                    idempotency_key,
                    fingerprint,
                    sandbox=self.settings.sandbox,
                )
        except BaseException:
            self.budgets.release(principal, receipt_id)
            raise
        self._key_of[receipt_id] = principal.name
        if idempotency_key is not None:
            self._by_idempotency[(principal.name, idempotency_key)] = (receipt_id, fingerprint)
        task = asyncio.create_task(self._run(principal, parsed, receipt_id, max_cost))
        self._tasks[receipt_id] = task
        self.metrics.in_flight.inc()
        task.add_done_callback(lambda _t: self._done(receipt_id, principal.name, idempotency_key))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not self.draining:
                raise
            # The drain deadline passed: answer, rather than drop the connection.
            raise possibly_billed(
                f"the gateway shut down before generation {receipt_id} finished: it may still be billed",
                receipt_id=receipt_id,
                code="drain_deadline",
            ) from None

    def _done(self, receipt_id: str, key: str, idempotency_key: str | None) -> None:
        # What a finished request left is in the ledger now (receipt, key, idempotency row):
        # nothing of it stays in memory, however long the gateway runs.
        self._tasks.pop(receipt_id, None)
        self._key_of.pop(receipt_id, None)
        if idempotency_key is not None:
            self._by_idempotency.pop((key, idempotency_key), None)
        self.metrics.in_flight.dec()

    def _standing(self, principal: Principal) -> Standing | None:
        try:
            return self.budgets.standing(principal)
        except sqlite3.Error as exc:
            raise GatewayError(
                500, f"the gateway cannot read its ledger: {exc}", code="storage_error"
            ) from None

    def _plan(self, parsed: Parsed, max_cost: float | None) -> Plan:
        try:
            return self.relay.plan(parsed.request, max_cost=max_cost, routing=parsed.routing)
        except ImageRelayError as exc:
            raise from_relay_error(exc, param="model") from None

    async def _run(
        self, principal: Principal, parsed: Parsed, receipt_id: str, max_cost: float | None
    ) -> Generated:
        def on_image(saved: SavedImage, receipt: Receipt) -> None:
            # Each image is in the ledger the moment it is on disk, surviving a kill; the fsync is
            # left to the receipt's write, which follows (after any further call) and syncs both.
            self.ledger.record_image(receipt.id, saved, sync=False)

        start = time.perf_counter()
        try:
            hooks = RunHooks(receipt_id=receipt_id, name=parsed.name, on_image=on_image, loaded=parsed.loaded)
            receipt = await self.relay.generate(
                parsed.request, max_cost=max_cost, routing=parsed.routing, hooks=hooks
            )
            return Generated(receipt=receipt, relay_s=time.perf_counter() - start)
        except ImageRelayError as exc:
            if self.ledger.receipt(receipt_id) is None:
                # Refused before anything was sent (anything sent leaves a receipt): the same
                # Idempotency-Key may be used again once the request is fixed.
                self.ledger.forget_gateway_request(receipt_id)
            return Generated(error=from_relay_error(exc), relay_s=time.perf_counter() - start)
        except Exception:  # a bug of ours: logged here, one line to the client
            log.exception("generation %s failed unexpectedly", receipt_id)
            # A provider may have been called before it failed: answered as possibly billed, so no
            # SDK sends the generation again.
            return Generated(
                error=possibly_billed(
                    f"the gateway failed unexpectedly during generation {receipt_id}: it may be billed",
                    receipt_id=receipt_id,
                    code="internal_error",
                )
            )
        finally:
            try:
                self.budgets.release(principal, receipt_id)
            except sqlite3.Error as exc:  # the hold ages out; until then it only holds back
                log.warning("the budget held by %s was not released: %s", receipt_id, exc)

    def _earlier(
        self, principal: Principal, idempotency_key: str, fingerprint: str
    ) -> asyncio.Future[Generated] | None:
        """The outcome of an earlier request with this Idempotency-Key, or None if there was none."""
        known = self._by_idempotency.get((principal.name, idempotency_key))
        if known is None:
            row = self.ledger.gateway_request(principal.name, idempotency_key, sandbox=self.settings.sandbox)
            if row is None:
                return None
            known = row
        receipt_id, first = known
        if first != fingerprint:
            raise GatewayError(
                400,
                "this Idempotency-Key was used for a different request: use a new key for a new request",
                code="idempotency_key_reused",
            )
        task = self._tasks.get(receipt_id)
        if task is not None:
            return asyncio.ensure_future(asyncio.shield(task))
        future: asyncio.Future[Generated] = asyncio.get_running_loop().create_future()
        stored = self.stored_receipt(receipt_id)
        if stored is None:
            future.set_exception(
                GatewayError(
                    409,
                    f"the request with this Idempotency-Key (receipt {receipt_id}) started but did not "
                    f"finish (the gateway stopped): see GET /v1/receipts/{receipt_id}",
                    code="idempotency_unfinished",
                )
            )
        elif stored.images:
            future.set_result(Generated(receipt=stored))
        else:
            future.set_result(Generated(error=failed_again(stored)))
        return future

    # -- reading back -------------------------------------------------------------------------

    def stored_receipt(self, receipt_id: str, principal: Principal | None = None) -> Receipt | None:
        """A finished receipt by id; with `principal`, only one that key spent."""
        row = self.ledger.receipt(receipt_id)
        if row is None:
            return None
        body, key = row
        if principal is not None and not self.keys.open and key != principal.name:
            return None
        return Receipt.model_validate_json(body)

    def running(self, receipt_id: str, principal: Principal) -> bool:
        return receipt_id in self._tasks and self._key_of.get(receipt_id) == principal.name

    def image_path(self, receipt: Receipt, index: int) -> Path | None:
        """The file of one image of a receipt, only when it lies inside the output directory."""
        if not 1 <= index <= len(receipt.images):
            return None
        root = self.relay.out_dir.resolve()
        path = Path(receipt.images[index - 1].path).resolve()  # relative paths are the process's
        if not path.is_relative_to(root) or not path.is_file():
            return None
        return path

    async def render(self, receipt: Receipt, response_format: str, base_url: str) -> dict[str, Any]:
        """The OpenAI answer for a receipt, reading the stored images for b64_json."""
        b64 = None
        if response_format == "b64_json":
            paths = [self.image_path(receipt, i) for i in range(1, len(receipt.images) + 1)]
            if any(p is None for p in paths):
                raise GatewayError(
                    500,
                    f"an image of receipt {receipt.id} is no longer in the output directory",
                    code="image_missing",
                )
            found = [p for p in paths if p is not None]
            # Big images are encoded off the event loop; a thread hop costs more than a small one.
            if sum(image.bytes for image in receipt.images) > 1024 * 1024:
                b64 = await asyncio.to_thread(_encode, found)
            else:
                b64 = _encode(found)
        return answer(
            receipt,
            response_format="url" if b64 is None else "b64_json",
            base_url=base_url,
            b64=b64,
            sandbox=receipt.sandbox,  # the stored receipt's: a replay answers what was made
        )


def _encode(paths: list[Path]) -> list[str]:
    return [base64.b64encode(p.read_bytes()).decode("ascii") for p in paths]
