"""The relay: runs a plan. One retry loop (ours), typed outcomes, fallback, cooldown, bytes first.

Retries stay within a model (transient outcomes, honouring Retry-After); fallback goes across
models (provider-condemning outcomes, exhausted retries). A generation POST that timed out is
never sent to the same model again: it may already be billed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import SecretStr, ValidationError

from .backends import backend_class
from .backends.base import Adopt, Backend, Call, Delivered
from .catalog import Catalog, load_catalog
from .errors import (
    EmptyResult,
    GenerationFailed,
    ImageRelayError,
    InvalidRequest,
    Outcome,
    OutputError,
    ProviderError,
    RateLimited,
    SaveFailed,
)
from .planner import Candidate, Plan, plan_request
from .policy import Action, Decision, decide
from .ratelimit import RateLimiter
from .receipt import Attempt, Receipt, ReferenceRecord, SavedImage
from .request import ImageRequest
from .sandbox import start_sandbox
from .settings import RoutingSettings, Settings, load_keys, load_settings
from .store import Store, provenance

if TYPE_CHECKING:
    from .imaging import ImageInfo
    from .ledger import Ledger
    from .references import PreparedImage, Reference

__all__ = ["OnImage", "Relay", "Reserve", "refuse_empty_plan"]

log = logging.getLogger("imagerelay")

#: Called after each image is on disk (e.g. a batch ledger records it at once).
OnImage = Callable[[SavedImage, Receipt], None]
#: Called with progress that must be recorded before it is too late: ("prediction", id) etc.
OnEvent = Callable[[str, Any], None]
#: Asks a shared budget (a batch's) for more USD before a call that may cost more than reserved.
Reserve = Callable[[float], bool]

_DESCRIBE_INSTRUCTION = (
    "Describe this reference image for an image generator, in at most {words} words: subject, "
    "composition, colours, lighting, style. Plain prose, no preamble."
)


class _NextCandidate(Exception):
    """This candidate is done for this request; try the next one."""


class _Stop(Exception):
    """The request cannot be served by anyone: stop trying."""


@dataclass
class _Run:
    """The mutable state of one request while it runs."""

    request: ImageRequest
    receipt: Receipt
    store: Store
    deadline: float
    remaining: int
    failures: list[ImageRelayError]
    on_image: OnImage | None
    on_event: OnEvent | None
    resume: dict[str, str]
    name: str | None = None  # used in file names instead of the prompt
    #: USD this request may spend at most (spent, possibly billed and the next call's worst case).
    cap: float | None = None
    #: A shared budget this request draws on beyond the `reserved` USD it holds already.
    reserve: Reserve | None = None
    reserved: float = 0.0
    adopt: Adopt | None = None  # an earlier run was cut short: look for what it never recorded
    predictions: set[str] = dataclasses.field(default_factory=set)  # made (or re-attached) by this run
    #: Paid images that could be written nowhere: (their provider URL if any, why).
    lost: list[tuple[str | None, str]] = dataclasses.field(default_factory=list)
    #: Interrupted, the caller resumes (a batch): leave predictions running and write no receipt.
    #: Otherwise an interruption cancels what is in flight and keeps the receipt.
    resumable: bool = False


class Relay:
    """Plans and runs image requests. Reuse one for many requests: it keeps the connection pools,
    the per-provider rate limits and the cooldown of failing models.

    Every receipt is recorded in the output directory's ledger, as the CLI does (so `imagerelay
    history` and `gallery` see library runs); `record=False` leaves that to the caller.

    ```python
    async with Relay(env="sandbox") as relay:
        receipt = await relay.generate("a red fox in snow", n=2)
    ```
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
        self._sleep = sleep
        self._clock = clock
        self._http: httpx.AsyncClient | None = None
        self._backends: dict[str, Backend] = {}
        self._limiters: dict[str, RateLimiter] = {}
        self._cooling: dict[str, tuple[float, str]] = {}
        self._prepared: dict[tuple[str, str], PreparedImage] = {}
        self._ensured: set[Path] = set()
        self._emulator: Any = None
        self._record = record
        #: The output directory's ledger while the relay is open (with `record`), else None.
        self.ledger: Ledger | None = None

    def __repr__(self) -> str:
        return f"Relay(env={self.settings.env!r}, keys={sorted(self._keys)}, out_dir={str(self.out_dir)!r})"

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Relay:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Open the shared HTTP client (and, in the sandbox, start the emulator)."""
        if self._http is not None:
            return
        if self.settings.sandbox:
            self._emulator, self.settings, self._keys = start_sandbox(self.catalog, self.settings)
        self._http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            follow_redirects=True,
        )

    async def aclose(self) -> None:
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
            if self.ledger.record_receipt in self.on_receipt:
                self.on_receipt.remove(self.ledger.record_receipt)
            self.ledger.close()
            self.ledger = None

    @property
    def keyed_providers(self) -> frozenset[str]:
        """Providers this relay can call: those with a key (every one in the sandbox)."""
        return frozenset(self.catalog.providers if self.settings.sandbox else self._keys)

    @property
    def emulator(self) -> Any:
        """The in-process emulator when running in the sandbox, else None."""
        return self._emulator

    # -- planning -----------------------------------------------------------------------------

    def cooling(self) -> dict[str, str]:
        """Models skipped for now, with the reason and the time left."""
        now = self._clock()
        out: dict[str, str] = {}
        for ref, (until, why) in list(self._cooling.items()):
            if until <= now:
                del self._cooling[ref]
            else:
                out[ref] = f"cooling down for {until - now:.0f}s after: {why}"
        return out

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
        req = _as_request(request, fields)
        keys = self.keyed_providers
        settings = self.settings if routing is None else self.settings.model_copy(update={"routing": routing})
        sizes = reference_sizes if reference_sizes is not None else _local_sizes(req.references)
        return plan_request(
            req,
            settings,
            self.catalog,
            keys=keys,
            cooling=self.cooling(),
            max_cost=max_cost,
            reference_sizes=sizes,
        )

    # -- running ------------------------------------------------------------------------------

    async def generate(
        self,
        request: ImageRequest | str,
        *,
        max_cost: float | None = None,
        on_image: OnImage | None = None,
        on_event: OnEvent | None = None,
        resume: Mapping[str, str] | None = None,
        receipt_id: str | None = None,
        name: str | None = None,
        reserve: Reserve | None = None,
        reserved: float = 0.0,
        adopt: Adopt | None = None,
        routing: RoutingSettings | None = None,
        loaded: Mapping[str, Reference] | None = None,
        **fields: Any,
    ) -> Receipt:
        """Generate the images of `request`; every image is on disk when this returns.

        Raises `UserError` for bad input (before anything is spent), `BudgetExceeded` when no
        candidate fits the budget, and `GenerationFailed` (with `.failures` and `.receipt`)
        when no image could be made. `name` stands for the prompt in file names (a batch item's).
        `resume` ({model ref: prediction id}) and `adopt` re-attach to what an interrupted earlier
        run of the same request created, instead of paying for it again.
        `routing` replaces the model order for this request; `loaded` holds references (and the
        mask) already loaded and verified, by the source string the request names them with
        (uploads, which have no path or URL of their own). With `reserve`, the request holds
        `reserved` USD of a shared budget and asks `reserve` for more before any call whose worst
        case would need it; a refused call is not made.
        """
        req = _as_request(request, fields)
        await self.open()
        store = Store(self.out_dir, embed_metadata=self.settings.output.embed_metadata)
        store.on_receipt = self.on_receipt
        if self.out_dir not in self._ensured:  # once per relay: it is a mkdir and a probe file
            store.ensure()
            self._ensured.add(self.out_dir)
        if self._record and self.ledger is None:
            from .ledger import Ledger

            # Opened with the output directory, before anything is sent: a directory that cannot
            # hold a ledger is refused while nothing has been spent.
            self.ledger = Ledger.open(self.out_dir)
            self.on_receipt.append(self.ledger.record_receipt)
        refs = await self._load_references(req, loaded or {})
        sizes: list[tuple[int, int] | None] = [
            (r.info.width, r.info.height) for r in refs[: len(req.references)]
        ]
        plan = self.plan(req, max_cost=max_cost, reference_sizes=sizes, routing=routing)
        receipt = Receipt(
            id=receipt_id or uuid.uuid4().hex,
            env=self.settings.env,
            prompt=req.prompt,
            request=_public_request(req),
            seed=req.seed,
            references=[
                ReferenceRecord(
                    source=_redact_url(r.source),
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
        if not plan.candidates and not plan.describe:
            _raise_empty_plan(plan, receipt, cap)
        run = _Run(
            request=req,
            receipt=receipt,
            store=store,
            deadline=self._clock() + self.settings.retry.deadline,
            remaining=req.n,
            failures=[],
            on_image=on_image,
            on_event=on_event,
            resume=dict(resume or {}),
            name=name,
            cap=cap,
            reserve=reserve,
            reserved=reserved,
            adopt=adopt,
            resumable=resume is not None,
        )
        try:
            for cand in plan.candidates:
                if await self._try(run, cand, req.prompt, refs):
                    break
            if run.remaining > 0 and plan.describe:
                prompt = await self._described_prompt(run, refs)
                if prompt is not None:
                    for cand in plan.describe:
                        if await self._try(run, cand, prompt, ()):
                            break
        except _Stop:
            pass
        except asyncio.CancelledError:  # Ctrl-C, or a caller giving up
            receipt.notes.append(
                f"interrupted after {len(receipt.images)} of {req.n} image(s)"
                + ("; what was in flight is left to resume" if run.resumable else "")
            )
            if not run.resumable and not receipt.images:  # with images, `finally` writes it
                _settle_sandbox(receipt)  # keep what was spent (maybe) on record
                store.write_failure_receipt(receipt)
            raise
        finally:
            _settle_sandbox(receipt)
            for url, why in run.lost:
                receipt.notes.append(
                    f"a paid image could be kept nowhere ({why}): "
                    + (f"fetch it from {url} while that URL lasts" if url else "it is lost")
                )
            if store.failure is not None and self.ledger is not None:
                self.ledger.quiet.add(receipt.id)  # a failing ledger is said in SaveFailed's line
            if receipt.images:
                if run.remaining > 0:
                    receipt.notes.append(f"{run.remaining} of {req.n} images could not be made: see attempts")
                store.finalize(receipt)
        if store.failure is not None:
            if not receipt.images:
                store.write_failure_receipt(receipt)
            message = _save_failure_message(store, run)
            if self.ledger is not None and receipt.id in self.ledger.unrecorded:
                why = self.ledger.unrecorded[receipt.id]
                message += f"; the ledger could not record it either ({why}): the receipt is the record"
            raise SaveFailed(message, receipt)
        if not receipt.images:
            store.write_failure_receipt(receipt)
            raise GenerationFailed(_failure_message(run), run.failures, receipt)
        return receipt

    async def _load_references(self, req: ImageRequest, loaded: Mapping[str, Reference]) -> list[Reference]:
        if not req.references:
            return []
        from .references import aload_reference, as_mask

        assert self._http is not None
        refs = []
        for i, source in enumerate(req.references, 1):
            if source in loaded:
                refs.append(loaded[source])
                continue
            refs.append(
                await aload_reference(
                    source,
                    client=self._http,
                    allow_private=self.settings.references.allow_private_urls,
                    label=f"reference {i}",
                )
            )
        if req.mask:
            given = loaded.get(req.mask) or await aload_reference(
                req.mask,
                client=self._http,
                allow_private=self.settings.references.allow_private_urls,
                label="mask",
            )
            mask = as_mask(given)
            first = refs[0].info
            if (mask.info.width, mask.info.height) != (first.width, first.height):
                from .errors import InvalidReference

                raise InvalidReference(
                    f"mask is {mask.info.width}x{mask.info.height} but reference 1 is "
                    f"{first.width}x{first.height}: a mask must be the same size as the first reference"
                )
            refs.append(mask)
        return refs

    def _prepare(
        self, cand: Candidate, refs: tuple[Reference, ...] | list[Reference], run: _Run
    ) -> tuple[tuple[PreparedImage, ...], PreparedImage | None]:
        from .references import ImageLimits, prepare

        lim = cand.provider.reference_limits
        limits = ImageLimits(
            accept=frozenset(lim.accept),
            max_bytes=lim.max_bytes,
            max_side=lim.max_side,
            max_pixels=lim.max_pixels,
        )
        images: list[PreparedImage] = []
        mask: PreparedImage | None = None
        n_refs = len(run.request.references)
        for i, ref in enumerate(refs):
            is_mask = run.request.mask is not None and i == n_refs
            key = (cand.provider.name, ref.sha256 + (":mask" if is_mask else ""))
            if key not in self._prepared:
                label = "mask" if is_mask else f"reference {i + 1}"
                if is_mask:  # masks must stay PNG with alpha
                    mlimits = ImageLimits(
                        accept=frozenset({"image/png"}), max_bytes=lim.mask_max_bytes or lim.max_bytes
                    )
                    self._prepared[key] = prepare(ref, mlimits, label=label)
                else:
                    self._prepared[key] = prepare(ref, limits, label=label)
                for note in self._prepared[key].notes:
                    if note not in run.receipt.notes:
                        run.receipt.notes.append(f"{cand.provider.name}: {note}")
            if is_mask:
                mask = self._prepared[key]
            else:
                images.append(self._prepared[key])
        return tuple(images), mask

    async def _described_prompt(self, run: _Run, refs: list[Reference]) -> str | None:
        """Describe the first reference with the vision model; None when that fails too."""
        from .references import ImageLimits, prepare

        vision = self.settings.vision
        try:
            provider = self.catalog.provider(vision.provider)
            backend = self._backend(provider.name)
            lim = provider.reference_limits
            image = prepare(refs[0], ImageLimits(accept=frozenset(lim.accept), max_bytes=lim.max_bytes))
            start = self._clock()
            text = await backend.describe(
                image, model=vision.model, instruction=_DESCRIBE_INSTRUCTION.format(words=vision.max_words)
            )
        except ImageRelayError as exc:  # a config problem here must not lose the receipt of what was spent
            run.failures.append(exc)
            run.receipt.attempts.append(_attempt_of(exc, vision.provider, vision.model, 0.0, 0.0))
            run.receipt.notes.append(f"describe fallback failed: {exc.message}")
            return None
        run.receipt.attempts.append(
            Attempt(
                provider=vision.provider,
                model=vision.model,
                outcome="success",
                duration_s=round(self._clock() - start, 4),
                sent={"purpose": "describe reference 1"},
            )
        )
        run.receipt.described_reference = text
        run.receipt.notes.append(
            f"the reference was described by {vision.provider}:{vision.model} and the description "
            "given to a text-only model: the result follows the description, not the image itself"
        )
        return f"{run.request.prompt}\n\nReference image, described: {text}"

    def _backend(self, provider: str) -> Backend:
        if provider not in self._backends:
            spec = self.catalog.provider(provider)
            cls = backend_class(spec.backend)
            assert self._http is not None
            self._backends[provider] = cls(
                spec, self.settings.provider(provider), self._keys.get(provider), self._http
            )
        return self._backends[provider]

    def _limiter(self, provider: str) -> RateLimiter:
        if provider not in self._limiters:
            rate = self.settings.provider(provider).max_requests_per_minute
            self._limiters[provider] = RateLimiter(rate, clock=self._clock, sleep=self._sleep)
        return self._limiters[provider]

    async def _try(self, run: _Run, cand: Candidate, prompt: str, refs: Any) -> bool:
        """Run `cand` for the images still missing; True when none are missing any more."""
        if self._clock() >= run.deadline:
            note = f"request deadline ({self.settings.retry.deadline:.0f}s) reached before {cand.ref}"
            run.receipt.notes.append(note)
            raise _Stop
        try:
            images, mask = self._prepare(cand, refs, run) if refs else ((), None)
        except ImageRelayError as exc:
            run.failures.append(exc)
            run.receipt.notes.append(f"{cand.ref} skipped: {exc}")
            return False
        for note in cand.notes:
            tagged = f"{cand.ref}: {note}"
            if tagged not in run.receipt.notes:
                run.receipt.notes.append(tagged)
        per_call = max(cand.calls)
        try:
            while run.remaining > 0:
                if run.store.failure:  # the output cannot take what we would pay for next
                    raise _Stop
                n = min(per_call, run.remaining)
                call = Call(
                    model=cand.model,
                    provider=cand.provider,
                    prompt=prompt,
                    n=n,
                    params=cand.params,
                    extras=cand.extras,
                    references=images,
                    mask=mask,
                    resume_id=run.resume.pop(cand.ref, None),
                    cancel_on_interrupt=not run.resumable,
                    # Never "find" a prediction this very run made: only what the earlier one left.
                    adopt=(
                        dataclasses.replace(run.adopt, known=run.adopt.known | run.predictions)
                        if run.adopt is not None
                        else None
                    ),
                )
                await self._call_with_retries(run, cand, call)
        except _NextCandidate:
            return False
        return True

    async def _call_with_retries(self, run: _Run, cand: Candidate, call: Call) -> None:
        backend = self._backend(cand.provider.name)
        limiter = self._limiter(cand.provider.name)
        attempt = empties = 0
        wait = 0.0
        cost = cand.cost
        while True:
            self._check_cap(run, cand, call.n)
            attempt += 1
            wait += await limiter.acquire()
            if run.store.failure:
                raise _Stop
            delivered: list[SavedImage] = []
            lost: list[str | None] = []
            prediction: dict[str, Any] = {}

            async def deliver(
                image: Delivered, _d: list[SavedImage] = delivered, _l: list[str | None] = lost
            ) -> None:
                try:
                    _d.append(self._save(run, cand, image))
                except OutputError as exc:  # nowhere to keep it: paid for all the same
                    _l.append(image.url)
                    run.lost.append((image.url, str(exc)))

            def on_event(kind: str, value: Any, _p: dict[str, Any] = prediction) -> None:
                if kind == "sent":
                    _p["sent"] = dict(value)
                    return
                if kind == "cancelled":
                    _p["cancelled"] = True
                    return
                if kind == "prediction":
                    _p["id"] = str(value)
                    run.predictions.add(str(value))
                if run.on_event is not None:
                    run.on_event(kind, {"model": cand.ref, "value": value})

            start = self._clock()
            try:
                result = await backend.generate(call, deliver, on_event)
            except asyncio.CancelledError:
                self._interrupted(run, cand, call, prediction, len(delivered) + len(lost), wait, start)
                raise
            except ProviderError as exc:
                run.remaining -= len(delivered)
                duration = self._clock() - start
                run.failures.append(exc)
                rec = _attempt_of(exc, cand.provider.name, cand.model.id, wait, duration)
                rec.prediction_id = prediction.get("id")
                rec.images = len(delivered)
                rec.sent = prediction.get("sent", {})
                run.receipt.attempts.append(rec)
                paid = len(delivered) + len(lost)
                if rec.maybe_billed:  # at its worst: it may have been billed in full
                    run.receipt.possibly_billed_usd += cost.worst_per_image * max(0, call.n - paid) + (
                        0.0 if paid else cost.worst_per_call
                    )
                if paid:
                    run.receipt.estimated_cost_usd += cost.call(paid)
                    run.receipt.cost_usd += cost.call(paid)
                    run.receipt.provider = run.receipt.provider or cand.provider.name
                    run.receipt.model = run.receipt.model or cand.model.id
                wait = 0.0
                if run.remaining <= 0:
                    return
                if delivered:  # ask again only for what is still missing
                    call = dataclasses.replace(call, n=min(call.n, run.remaining))
                decision = decide(
                    exc,
                    ref=cand.ref,
                    key_env=cand.provider.key_env,
                    attempt=attempt,
                    empties=empties,
                    time_left=run.deadline - self._clock(),
                    retry=self.settings.retry,
                    routing=self.settings.routing,
                )
                self._apply(run, cand, exc, decision)
                empties += isinstance(exc, EmptyResult)
                if isinstance(exc, RateLimited):
                    # Every task using this provider waits, not just this one: the next
                    # `acquire` (ours included) sleeps until the provider's wait is over.
                    limiter.penalize(decision.delay)
                elif decision.delay:
                    await self._sleep(decision.delay)
                    wait = decision.delay
                continue
            duration = self._clock() - start
            run.remaining -= len(delivered)
            run.receipt.attempts.append(
                Attempt(
                    provider=cand.provider.name,
                    model=cand.model.id,
                    outcome=Outcome.SUCCESS.value,
                    status=200,
                    wait_s=round(wait, 4),
                    duration_s=round(duration, 4),
                    request_id=result.request_id,
                    prediction_id=result.prediction_id or prediction.get("id"),
                    images=len(delivered),
                    sent=result.sent,
                    usage=result.usage,
                )
            )
            estimate = cost.call(len(delivered) + len(lost))
            run.receipt.estimated_cost_usd += estimate
            if result.reported_cost_usd is not None:
                run.receipt.reported_cost_usd = (
                    run.receipt.reported_cost_usd or 0.0
                ) + result.reported_cost_usd
            # Per call: the provider's figure when it gave one, else our estimate — so a request
            # served partly by xAI (which reports cost) and partly by Replicate (which does not)
            # is neither under- nor double-counted.
            run.receipt.cost_usd += (
                result.reported_cost_usd if result.reported_cost_usd is not None else estimate
            )
            run.receipt.provider = run.receipt.provider or cand.provider.name
            run.receipt.model = run.receipt.model or cand.model.id
            return

    def _check_cap(self, run: _Run, cand: Candidate, n: int) -> None:
        """Never start a call whose worst case would take the request over its cap, or over what
        it holds of a shared budget when that budget has no more to give."""
        spent = run.receipt.cost_usd + run.receipt.possibly_billed_usd
        worst = cand.cost.worst_call(n)
        over: str | None = None
        if run.cap is not None and spent + worst > run.cap + 1e-9:
            over = f"the ${run.cap:.4f} cap"
        elif run.reserve is not None and spent + worst > run.reserved + 1e-9:
            if run.reserve(spent + worst - run.reserved):
                run.reserved = spent + worst
            else:
                over = "what is left of the budget"
        if over is None:
            return
        run.receipt.notes.append(
            f"{cand.ref} not called: it may cost up to ${worst:.4f} and ${spent:.4f} is spent or "
            f"possibly billed, over {over}"
        )
        raise _NextCandidate

    def _interrupted(
        self,
        run: _Run,
        cand: Candidate,
        call: Call,
        state: dict[str, Any],
        paid: int,
        wait: float,
        start: float,
    ) -> None:
        """Record the attempt an interruption cut short: once sent, it may be billed."""
        sent = "sent" in state
        run.remaining -= paid
        cost = cand.cost
        if paid:
            run.receipt.estimated_cost_usd += cost.call(paid)
            run.receipt.cost_usd += cost.call(paid)
            run.receipt.provider = run.receipt.provider or cand.provider.name
            run.receipt.model = run.receipt.model or cand.model.id
        if sent:  # at its worst: it may have been billed in full
            run.receipt.possibly_billed_usd += cost.worst_per_image * max(0, call.n - paid) + (
                0.0 if paid else cost.worst_per_call
            )
        pid = state.get("id")
        what = "interrupted" + ("" if sent else " before anything was sent")
        if pid and state.get("cancelled"):
            what += f"; prediction {pid} was cancelled"
        elif pid:
            what += f"; prediction {pid} was left running" + (" to resume" if run.resumable else "")
        run.receipt.attempts.append(
            Attempt(
                provider=cand.provider.name,
                model=cand.model.id,
                outcome="interrupted",
                error=what,
                wait_s=round(wait, 4),
                duration_s=round(self._clock() - start, 4),
                prediction_id=pid,
                images=paid,
                maybe_billed=sent and paid < call.n,
                sent=state.get("sent", {}),
            )
        )

    def _apply(self, run: _Run, cand: Candidate, exc: ProviderError, decision: Decision) -> None:
        """Carry out a decision: notes, warnings, cooldown; raise to move on or stop."""
        if decision.note and decision.note not in run.receipt.notes:
            run.receipt.notes.append(decision.note)
        if decision.warning:
            log.warning(decision.warning)
        if decision.cool:
            until = self._clock() + self.settings.retry.cooldown
            why = f"{type(exc).__name__}: {exc.message}"[:200]
            models = cand.provider.models.values() if decision.cool_provider else [cand.model]
            for model in models:
                self._cooling[model.ref] = (until, why)
        if decision.action == Action.STOP:
            raise _Stop from exc
        if decision.action == Action.NEXT:
            raise _NextCandidate from exc

    def _save(self, run: _Run, cand: Candidate, image: Delivered) -> SavedImage:
        """Bytes first: write the delivered image before anything else can fail."""
        from .imaging import CorruptImage, probe

        index = len(run.receipt.images) + 1
        stem = run.store.stem(run.name or run.request.prompt, run.receipt.id, index)
        info: ImageInfo | None = image.info
        if info is None:
            try:
                info = probe(image.data)
            except CorruptImage:
                info = None
        fmt = info.format if info else _format_of(image.mime)
        delivered = hashlib.sha256(image.data).hexdigest()
        label = provenance(
            run.receipt,
            provider=cand.provider.name,
            model=cand.model.id,
            stem=stem,
            delivered_sha256=delivered,
        )
        path, written, note = run.store.write_image(
            image.data, stem=stem, fmt=fmt, info=info, provenance=label, receipt_id=run.receipt.id
        )
        if note:
            run.receipt.notes.append(note)
        saved = SavedImage(
            path=str(path),
            sha256=delivered if written is image.data else hashlib.sha256(written).hexdigest(),
            delivered_sha256=delivered,
            width=info.width if info else 0,
            height=info.height if info else 0,
            format=fmt,
            bytes=len(written),
            provider=cand.provider.name,
            model=cand.model.id,
            revised_prompt=image.revised_prompt if image.revised_prompt != run.request.prompt else None,
        )
        run.receipt.images.append(saved)
        if image.revised_prompt and image.revised_prompt != run.request.prompt:
            run.receipt.notes.append(f"{cand.ref} revised the prompt to: {image.revised_prompt}")
        if run.on_image is not None:
            run.on_image(saved, run.receipt)
        return saved


def _attempt_of(
    exc: ProviderError | ImageRelayError, provider: str, model: str, wait: float, duration: float
) -> Attempt:
    outcome = exc.outcome.value if isinstance(exc, ProviderError) else Outcome.REQUEST.value
    return Attempt(
        provider=provider,
        model=model,
        outcome=outcome,
        status=getattr(exc, "status", None),
        error=str(exc)[:500],
        error_type=type(exc).__name__,
        wait_s=round(wait, 4),
        duration_s=round(duration, 4),
        request_id=getattr(exc, "request_id", None),
        maybe_billed=bool(getattr(exc, "maybe_billed", False)),
    )


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


def _settle_sandbox(receipt: Receipt) -> None:
    """Sandbox output costs nothing: what it would have cost moves to `would_cost_usd`, so that no
    budget, history total or batch spend ever counts it."""
    if not receipt.sandbox or receipt.would_cost_usd is not None:
        return
    receipt.would_cost_usd = receipt.cost_usd + receipt.possibly_billed_usd
    receipt.cost_usd = 0.0
    receipt.reported_cost_usd = None
    receipt.possibly_billed_usd = 0.0


def _format_of(mime: str | None) -> str:
    return {"image/png": "png", "image/webp": "webp", "image/gif": "gif"}.get(mime or "", "jpeg")


def _as_request(request: ImageRequest | str, fields: dict[str, Any]) -> ImageRequest:
    if isinstance(request, ImageRequest):
        if not fields:
            return request
        # model_copy(update=…) would skip validation: build a new request from both instead.
        data = {**request.model_dump(), **fields}
    else:
        data = {"prompt": request, **fields}
    try:
        return ImageRequest(**data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        msg = str(err.get("ctx", {}).get("error") or err["msg"])
        if err["type"] == "extra_forbidden":
            msg = f"unknown request field {field!r}"
        raise InvalidRequest(
            msg if field in ("", "prompt", "n", "size", "aspect_ratio") else f"{field}: {msg}"
        ) from exc


def _redact_url(source: str) -> str:
    """Drop query strings and credentials from URLs: signed URLs carry tokens."""
    if "://" not in source:
        return source
    parts = urlsplit(source)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _public_request(req: ImageRequest) -> dict[str, Any]:
    data = req.model_dump(mode="json", exclude_defaults=True)
    if "references" in data:
        data["references"] = [_redact_url(s) for s in data["references"]]
    if data.get("mask"):
        data["mask"] = _redact_url(data["mask"])
    return data


def refuse_empty_plan(plan: Plan, limit: float | None) -> None:
    """Raise what `generate` raises for `plan` when no model can serve it (so `plan` and
    `generate --dry-run` fail as `generate` would, with the same exit code); else nothing."""
    if not plan.candidates and not plan.describe:
        _raise_empty_plan(plan, None, limit)


def _raise_empty_plan(plan: Plan, receipt: Receipt | None, limit: float | None) -> None:
    from .errors import BudgetExceeded

    reasons = (
        "; ".join(f"{e.ref}: {e.reason}" for e in plan.excluded) or "no model is configured for this request"
    )
    if any(e.over_budget for e in plan.excluded):
        raise BudgetExceeded(
            f"no candidate fits the budget of ${limit} ({reasons}): raise --max-cost or ask for fewer images"
        )
    if plan.excluded and all(e.cooling or e.over_budget for e in plan.excluded):
        # Not the user's mistake: every model that could serve it failed moments ago.
        raise GenerationFailed(
            f"every model that could serve this request is cooling down after failing ({reasons}): "
            "try again later, or pin another model",
            [],
            receipt,
        )
    section = "reference" if plan.request.mode == "reference" else "text"
    raise InvalidRequest(
        f"no model can serve this request ({reasons}): set a provider's key, pass --provider, "
        f"or list models in [routing] {section}"
    )


def _save_failure_message(store: Store, run: _Run) -> str:
    """One line: what failed, what was paid, where every paid image is, what to do."""
    receipt = run.receipt
    paid = len(receipt.images) + len(run.lost)
    cost = "$0 (sandbox)" if receipt.sandbox else f"${receipt.cost_usd:.4f}"
    kept = sorted({str(Path(i.path).parent) for i in receipt.images if Path(i.path).parent != store.out_dir})
    where = []
    if kept:
        where.append(f"kept in {', '.join(kept)}: move them into '{store.out_dir}' once there is room")
    urls = [url for url, _ in run.lost if url]
    if urls:
        where.append(f"{len(urls)} kept nowhere, fetch within the hour: {' '.join(urls)}")
    if len(urls) < len(run.lost):
        where.append(f"{len(run.lost) - len(urls)} could be kept nowhere and are lost")
    return (
        f"{store.failure}: {paid} image(s) were delivered and paid for ({cost}) — "
        + ("; ".join(where) or "nothing else was made")
        + "; no further call was made"
    )


def _failure_message(run: _Run) -> str:
    lines = [
        f"{a.provider}:{a.model} {a.outcome}" + (f" ({a.error})" if a.error else "")
        for a in run.receipt.attempts
    ]
    return "no image was made — " + " | ".join(lines or ["nothing was tried"])
