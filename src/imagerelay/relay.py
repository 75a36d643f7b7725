"""The relay: what outlives one request — the HTTP client, the backends, the per-provider rate
limits, the cooldown of failing models — and the public calls, `plan` and `generate`.

Running one request (candidates, attempts, retries, fallback, accounting) is `run.RequestRun`'s;
the describe fallback is `describe`'s; writing images and receipts is `store`'s.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import SecretStr

from .backends import backend_class
from .backends.base import Backend
from .catalog import Catalog, load_catalog
from .errors import ImageRelayError, InvalidReference, UserError
from .failures import refuse_empty_plan
from .hooks import RunHooks
from .planner import Plan, plan_request
from .ratelimit import RateLimiter
from .receipt import Receipt, ReferenceRecord, public_request, redact_url
from .request import ImageRequest, as_request
from .run import RequestRun
from .sandbox import start_sandbox
from .settings import RoutingSettings, Settings, load_keys, load_settings
from .store import Store
from .transport import http_client

if TYPE_CHECKING:
    from .ledger import Ledger
    from .references import PreparedImage, Reference
    from .rerun import Rerun

__all__ = ["Relay", "refuse_empty_plan"]


class _State(Enum):
    UNOPENED = 1
    OPENED = 2
    CLOSED = 3


class Relay:
    """Plans and runs image requests. Reuse one for many requests: it keeps the connection pools,
    the per-provider rate limits and the cooldown of failing models. Once closed it is done with:
    make a new one.

    Every receipt is recorded in the output directory's ledger, as the CLI does (so `imagerelay
    history` and `gallery` see library runs); `record=False` leaves that to the caller.

    ```python
    async with Relay(env="sandbox") as relay:
        receipt = await relay.generate("a red fox in snow", n=2)
    ```

    `sleep` and `clock` are injectable (tests run retries and deadlines without waiting).
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        env: str | None = None,
        catalog: Catalog | None = None,
        keys: Mapping[str, str | SecretStr] | None = None,
        out_dir: Path | str | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_receipt: list[Callable[[Receipt], None]] | None = None,
        record: bool = True,
    ) -> None:
        self.settings = settings or load_settings(env)
        #: Called with every finished receipt, failed ones included (e.g. to add a ledger row).
        self.on_receipt: list[Callable[[Receipt], None]] = list(on_receipt or [])
        self.catalog = catalog or load_catalog()
        if keys is None:
            self._keys = load_keys(self.catalog.key_envs())
        else:
            self._keys = {k: v if isinstance(v, SecretStr) else SecretStr(v) for k, v in keys.items() if v}
        self.out_dir = Path(out_dir) if out_dir is not None else self.settings.output.dir
        self.sleep = sleep
        self.clock = clock
        self._state = _State.UNOPENED
        self._http: httpx.AsyncClient | None = None
        self._backends: dict[str, Backend] = {}
        self._limiters: dict[str, RateLimiter] = {}
        self._cooling: dict[str, tuple[float, str]] = {}
        #: References converted for a provider, by (provider, content hash): done once per relay.
        self.prepared: dict[tuple[str, str], PreparedImage] = {}
        self._ensured: set[Path] = set()
        self._emulator: Any = None
        self._record = record
        #: The output directory's ledger while the relay is open (with `record`), else None.
        self.ledger: Ledger | None = None
        self._ledger_lock = threading.Lock()  # receipts are recorded from worker threads
        #: The ledger's own connection for the runs and predictions of plain requests (`rerun`),
        #: used on the event loop's thread only: it never waits for a receipt being recorded.
        self._runs_ledger: Ledger | None = None

    def __repr__(self) -> str:
        return f"Relay(env={self.settings.env!r}, keys={sorted(self._keys)}, out_dir={str(self.out_dir)!r})"

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Relay:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _check_open(self) -> None:
        if self._state is _State.CLOSED:
            raise UserError("this Relay is closed: make a new one (or use one `async with Relay(...)` block)")

    async def open(self) -> None:
        """Open the shared HTTP client (and, in the sandbox, start the emulator). `generate` opens
        the relay itself when needed; a closed relay cannot be opened again."""
        self._check_open()
        if self._state is _State.OPENED:
            return
        if self.settings.sandbox:
            self._emulator, self.settings, self._keys = start_sandbox(self.catalog, self.settings)
        self._http = http_client()  # 64 connections in 8 small pools (see `transport`)
        self._state = _State.OPENED

    async def aclose(self) -> None:
        """Close the backends, the HTTP client, the emulator and the ledger; for good."""
        self._state = _State.CLOSED
        for backend in self._backends.values():
            await backend.aclose()
        self._backends.clear()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._emulator is not None:
            self._emulator.stop()
            self._emulator = None
        if self.ledger is not None:
            with self._ledger_lock:
                self.ledger.close()
                self.ledger = None
        if self._runs_ledger is not None:
            self._runs_ledger.close()
            self._runs_ledger = None

    @property
    def keyed_providers(self) -> frozenset[str]:
        """Providers this relay can call: those with a key (every one in the sandbox)."""
        return frozenset(self.catalog.providers if self.settings.sandbox else self._keys)

    @property
    def emulator(self) -> Any:
        """The in-process emulator when running in the sandbox, else None."""
        return self._emulator

    # -- registries: backends, rate limits, cooldowns -----------------------------------------

    def backend(self, provider: str) -> Backend:
        """The backend serving `provider`, made on first use (the relay must be open)."""
        if provider not in self._backends:
            spec = self.catalog.provider(provider)
            cls = backend_class(spec.backend)
            assert self._http is not None
            self._backends[provider] = cls(
                spec, self.settings.provider(provider), self._keys.get(provider), self._http
            )
        return self._backends[provider]

    def limiter(self, provider: str) -> RateLimiter:
        """The rate limit every request to `provider` shares."""
        if provider not in self._limiters:
            rate = self.settings.provider(provider).max_requests_per_minute
            self._limiters[provider] = RateLimiter(rate, clock=self.clock, sleep=self.sleep)
        return self._limiters[provider]

    def record(self, receipt: Receipt) -> None:
        """Record a finished receipt in the output directory's ledger (with `record`); safe to call
        from any thread. Never raises: see `Ledger.record_receipt`."""
        with self._ledger_lock:
            if self.ledger is not None:
                self.ledger.record_receipt(receipt)

    def cool(self, refs: Iterable[str], why: str) -> None:
        """Keep the models `refs` out of every plan for `retry.cooldown` seconds, because of `why`."""
        until = self.clock() + self.settings.retry.cooldown
        for ref in refs:
            self._cooling[ref] = (until, why[:200])

    def cooling(self) -> dict[str, str]:
        """Models skipped for now, with the reason and the time left."""
        now = self.clock()
        out: dict[str, str] = {}
        for ref, (until, why) in list(self._cooling.items()):
            if until <= now:
                del self._cooling[ref]
            else:
                out[ref] = f"cooling down for {until - now:.0f}s after: {why}"
        return out

    # -- the public calls ---------------------------------------------------------------------

    def plan(
        self,
        request: ImageRequest | str,
        *,
        max_cost: float | None = None,
        reference_sizes: list[tuple[int, int] | None] | None = None,
        routing: RoutingSettings | None = None,
        **fields: Any,
    ) -> Plan:
        """The plan for `request`, sending nothing. `routing` replaces the environment's model
        order for this request only (a named route of the gateway, say).

        `reference_sizes` are the references' pixel sizes; by default local files are measured
        (URLs are not fetched: their estimates assume the costliest size).
        """
        self._check_open()
        req = as_request(request, fields)
        settings = self.settings if routing is None else self.settings.model_copy(update={"routing": routing})
        sizes = reference_sizes if reference_sizes is not None else _local_sizes(req.references)
        return plan_request(
            req,
            settings,
            self.catalog,
            keys=self.keyed_providers,
            cooling=self.cooling(),
            max_cost=max_cost,
            reference_sizes=sizes,
        )

    async def generate(
        self,
        request: ImageRequest | str,
        *,
        max_cost: float | None = None,
        routing: RoutingSettings | None = None,
        hooks: RunHooks | None = None,
        **fields: Any,
    ) -> Receipt:
        """Generate the images of `request`; every image is on disk when this returns.

        `fields` are those of `ImageRequest` (n, size, references …); `max_cost` caps what this
        request may spend (default `budget.max_cost_per_request`); `routing` replaces the model
        order for this request; `hooks` are for callers that run requests for something larger (a
        batch, a server): see `RunHooks`.

        Raises `UserError` for bad input (before anything is spent), `BudgetExceeded` when no
        candidate fits the budget, `GenerationFailed` (with `.failures` and `.receipt`) when no
        image could be made, and `SaveFailed` when paid images could not be written where asked.
        """
        req = as_request(request, fields)
        hooks = hooks or RunHooks()
        await self.open()
        store = Store(self.out_dir, embed_metadata=self.settings.output.embed_metadata)
        store.on_receipt = self.on_receipt
        if self.out_dir not in self._ensured:  # once per relay: it is a mkdir and a probe file
            store.ensure()
            self._ensured.add(self.out_dir)
        if self._record and self.ledger is None:
            from .ledger import Ledger

            # Opened with the output directory, before anything is sent: a directory that cannot
            # hold a ledger is refused while nothing has been spent. Receipts are recorded in it
            # from worker threads, with their files (`record`).
            self.ledger = Ledger.open(self.out_dir, threads=True)
            with self._ledger_lock:
                self._recover(self.ledger)
        refs = await self._load_references(req, hooks.loaded)
        sizes: list[tuple[int, int] | None] = [
            (r.info.width, r.info.height) for r in refs[: len(req.references)]
        ]
        plan = self.plan(req, max_cost=max_cost, reference_sizes=sizes, routing=routing)
        receipt = Receipt(
            id=hooks.receipt_id or uuid.uuid4().hex,
            env=self.settings.env,
            prompt=req.prompt,
            request=public_request(req),
            seed=req.seed,
            references=[
                ReferenceRecord(
                    source=redact_url(r.source),
                    sha256=r.sha256,
                    width=r.info.width,
                    height=r.info.height,
                    format=r.info.format,
                )
                for r in refs
            ],
            metadata=dict(req.metadata),
            left_out={e.ref: e.reason for e in plan.excluded},
            sandbox=self.settings.sandbox,
        )
        cap = max_cost if max_cost is not None else self.settings.budget.max_cost_per_request
        refuse_empty_plan(plan, cap, receipt)
        rerun = self._rerun(req, refs, plan, receipt.id, hooks)
        if rerun is None:
            return await RequestRun(self, req, receipt, store, cap=cap, hooks=hooks).execute(plan, refs)
        run = RequestRun(self, req, receipt, store, cap=cap, hooks=rerun.hooks(hooks), resume=rerun.resume)
        try:
            return await run.execute(plan, refs)
        finally:
            rerun.end()

    def _rerun(
        self, req: ImageRequest, refs: list[Reference], plan: Plan, receipt_id: str, hooks: RunHooks
    ) -> Rerun | None:
        """A plain request recorded in the ledger (see `rerun`); None for a batch item or the
        gateway (they keep their own records) and without a ledger."""
        if self.ledger is None or hooks.resume is not None or hooks.adopt is not None:
            return None
        if hooks.on_prediction is not None or hooks.receipt_id is not None:
            return None
        import contextlib

        from .ledger import Ledger
        from .rerun import Rerun, request_key

        if self._runs_ledger is None:
            try:
                self._runs_ledger = Ledger.open(self.out_dir)
            except ImageRelayError:
                return None  # the receipt is still recorded; only a re-run cannot re-attach
        first = plan.candidates[0].ref if plan.candidates else None
        return Rerun.begin(
            self._runs_ledger,
            contextlib.nullcontext(),
            request_key(req, refs, sandbox=self.settings.sandbox),
            receipt_id,
            n=req.n,
            estimate_usd=0.0 if self.settings.sandbox else plan.estimate_usd,
            planned=first,
        )

    @staticmethod
    def _recover(ledger: Ledger) -> None:
        """Paid images an earlier run had to keep in a rescue directory come back into the output
        directory, booked in its ledger (even when the ledger could not record them then)."""
        import logging
        import sqlite3

        try:
            moved = ledger.restore_rescued() + ledger.adopt_rescued()
        except (OSError, sqlite3.Error) as exc:  # a recovery that fails must not stop a request
            logging.getLogger("imagerelay").warning("could not recover rescued images: %s", exc)
            return
        if moved:
            logging.getLogger("imagerelay").warning(
                "moved %d image(s) kept in a rescue directory back into %s", moved, ledger.directory
            )

    async def _load_references(self, req: ImageRequest, loaded: Mapping[str, Reference]) -> list[Reference]:
        if not req.references:
            return []
        from .references import aload_reference, as_mask

        assert self._http is not None
        allow_private = self.settings.references.allow_private_urls
        refs = []
        for i, source in enumerate(req.references, 1):
            if source in loaded:
                refs.append(loaded[source])
                continue
            refs.append(
                await aload_reference(
                    source, client=self._http, allow_private=allow_private, label=f"reference {i}"
                )
            )
        if req.mask:
            given = loaded.get(req.mask) or await aload_reference(
                req.mask, client=self._http, allow_private=allow_private, label="mask"
            )
            mask = as_mask(given)
            first = refs[0].info
            if (mask.info.width, mask.info.height) != (first.width, first.height):
                raise InvalidReference(
                    f"mask is {mask.info.width}x{mask.info.height} but reference 1 is "
                    f"{first.width}x{first.height}: a mask must be the same size as the first reference"
                )
            refs.append(mask)
        return refs


def _local_sizes(sources: tuple[str, ...]) -> list[tuple[int, int] | None]:
    """Pixel sizes of local reference files (header only); None for URLs and unreadable files."""
    sizes: list[tuple[int, int] | None] = []
    for source in sources:
        size = None
        if "://" not in source:
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(source) as im:
                    size = im.size
            except (OSError, UnidentifiedImageError, ValueError):
                size = None  # the load before any call reports what is wrong with it
        sizes.append(size)
    return sizes
