"""One request, run: its candidates in order, the attempts at each, one account of what it cost.

`Relay.generate` plans a request, then hands it to a `RequestRun`, which lives until it returns.
Each layer returns what happened rather than raising it: an attempt returns an `Attempted`, a
candidate a `Step` (done, next candidate, stop). One function, `account`, books what an attempt
cost — estimated, reported, possibly billed and actual — and `Allowance.permits` is the one cap
check (both in `accounting`).

Retries stay within a model (transient outcomes, honouring Retry-After); fallback goes across
models (provider-condemning outcomes, exhausted retries). A generation that may have been billed
(a POST that timed out, an image URL that could not be fetched) is never sent to the same model
again. Every delivered image is on disk before anything else happens (bytes first).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from .accounting import Allowance, account
from .attempt import Attempted
from .backends.base import Call
from .describe import described_prompt
from .errors import EmptyResult, ImageRelayError, OutputError, ProviderError, RateLimited
from .failures import failure_message, save_failure_message
from .hooks import CallEvent, Noted, PredictionCancelled, PredictionCreated, RunHooks, Sent
from .offload import in_thread
from .policy import Action, Decision, decide
from .sandbox import from_emulator
from .store import save_delivered

if TYPE_CHECKING:
    from pathlib import Path

    from .backends.base import Adopt, Backend, Delivered
    from .planner import Candidate, Plan
    from .receipt import Receipt, SavedImage
    from .references import PreparedImage, Reference
    from .relay import Relay
    from .request import ImageRequest
    from .store import Store

__all__ = ["RequestRun", "Step"]

log = logging.getLogger("imagerelay")


class Step(StrEnum):
    """What to do after a candidate's call (or the candidate) is over."""

    DONE = "done"  # served: no image is missing any more (or this call made its share)
    NEXT = "next"  # this candidate is done for this request: try the next one
    STOP = "stop"  # nobody can serve the rest: stop trying


@dataclass(frozen=True)
class _Kept:
    """What writing one delivered image came to: saved (with a note, maybe), or kept nowhere."""

    saved: SavedImage | None = None
    note: str | None = None
    error: OutputError | None = None


class RequestRun:
    """The state of one request while it runs; see the module docs."""

    def __init__(
        self,
        relay: Relay,
        request: ImageRequest,
        receipt: Receipt,
        store: Store,
        *,
        cap: float | None,
        hooks: RunHooks,
        resume: dict[str, str] | None = None,
    ) -> None:
        self.relay = relay
        self.request = request
        self.receipt = receipt
        self.store = store
        self.hooks = hooks
        budget = hooks.budget
        self.allowance = Allowance(cap, budget, budget.reserved if budget is not None else 0.0)
        self.deadline = relay.clock() + relay.settings.retry.deadline
        self.remaining = request.n
        self.failures: list[ImageRelayError] = []
        #: Predictions to re-attach to: the caller's (a batch's), or what a killed earlier run of
        #: the same plain request left (`rerun`), which an interruption still cancels.
        self.resume = dict(hooks.resume or resume or {})
        #: Interrupted, the caller resumes (a batch): leave predictions running and write no
        #: receipt. Otherwise an interruption cancels what is in flight and keeps the receipt.
        self.resumable = hooks.resume is not None
        self.predictions: set[str] = set()  # made (or re-attached to) by this run
        #: Paid images that could be written nowhere: (their provider URL if any, why).
        self.lost: list[tuple[str | None, str]] = []

    # -- the whole request --------------------------------------------------------------------

    async def execute(self, plan: Plan, refs: list[Reference]) -> Receipt:
        """Run `plan`; the receipt once every image made is on disk with its receipt beside it.

        Raises `GenerationFailed` when no image was made, `SaveFailed` when paid images could not
        be written into the output directory; interrupted, records what was spent and re-raises.
        """
        try:
            await self._candidates(plan, refs)
        except asyncio.CancelledError:  # Ctrl-C, or a caller giving up
            self._interrupted()
            self._close()
            raise
        except BaseException:
            self._close()
            raise
        await self._close_async()
        return await self._outcome()

    async def _candidates(self, plan: Plan, refs: list[Reference]) -> None:
        for cand in plan.candidates:
            step = await self.run_candidate(cand, self.request.prompt, refs)
            if step is Step.STOP:
                return
            if step is Step.DONE:
                break
        if self.remaining > 0 and plan.describe:
            prompt = await described_prompt(self.relay, self.receipt, self.failures, refs[0])
            if prompt is not None:
                for cand in plan.describe:
                    if await self.run_candidate(cand, prompt, ()) is not Step.NEXT:
                        break

    # -- one candidate ------------------------------------------------------------------------

    async def run_candidate(
        self, cand: Candidate, prompt: str, refs: tuple[Reference, ...] | list[Reference]
    ) -> Step:
        """Make the images still missing with `cand`, in as many calls as it needs."""
        if self.relay.clock() >= self.deadline:
            self.receipt.notes.append(
                f"request deadline ({self.relay.settings.retry.deadline:.0f}s) reached before {cand.ref}"
            )
            return Step.STOP
        cooling = self.relay.cooling().get(cand.ref)
        if cooling is not None:
            # Failed since this request was planned (here or in another request of a batch): a
            # refused key above all, which condemns every model of its provider for the run.
            self._note(f"{cand.ref} skipped: {cooling}")
            return Step.NEXT
        try:
            images, mask = await self._prepared(cand, refs) if refs else ((), None)
        except ImageRelayError as exc:
            self.failures.append(exc)
            self.receipt.notes.append(f"{cand.ref} skipped: {exc}")
            return Step.NEXT
        for note in cand.notes:
            self._note(f"{cand.ref}: {note}")
        while self.remaining > 0:
            if self.store.failure:  # the output cannot take what we would pay for next
                return Step.STOP
            call = Call(
                model=cand.model,
                provider=cand.provider,
                prompt=prompt,
                n=min(max(cand.calls), self.remaining),
                params=cand.params,
                extras=cand.extras,
                references=images,
                mask=mask,
                resume_id=self.resume.pop(cand.ref, None),
                cancel_on_interrupt=not self.resumable,
                # Never "find" a prediction this very run made: only what the earlier one left.
                adopt=self._adopt(),
            )
            step = await self._attempts(cand, call)
            if step is not Step.DONE:
                return step
        return Step.DONE

    def _adopt(self) -> Adopt | None:
        adopt = self.hooks.adopt
        return adopt if adopt is None else dataclasses.replace(adopt, known=adopt.known | self.predictions)

    async def _attempts(self, cand: Candidate, call: Call) -> Step:
        """Call `cand` until the call is served, retrying as the policy decides."""
        backend = self.relay.backend(cand.provider.name)
        limiter = self.relay.limiter(cand.provider.name)
        attempt = empties = 0
        wait = 0.0
        while True:
            if not self.allowance.permits(self.receipt, cand, call.n):
                return Step.NEXT
            attempt += 1
            wait += await limiter.acquire()
            if self.store.failure:
                return Step.STOP
            if self.store.unsynced:  # what this request was paid for so far is durable first
                await in_thread(self.store.sync)
            done = await self.attempt(backend, cand, call, wait)
            account(self.receipt, cand, done)
            if done.error is None or self.remaining <= 0:
                return Step.DONE
            exc = done.error
            decision = decide(
                exc,
                ref=cand.ref,
                key_env=cand.provider.key_env,
                attempt=attempt,
                empties=empties,
                time_left=self.deadline - self.relay.clock(),
                retry=self.relay.settings.retry,
                routing=self.relay.settings.routing,
                extras=tuple(cand.extras),
            )
            step = self._carry_out(cand, exc, decision)
            if step is not None:
                return step
            empties += isinstance(exc, EmptyResult)
            wait = 0.0
            if isinstance(exc, RateLimited):
                # Every task using this provider waits, not just this one: the next `acquire`
                # (ours included) sleeps until the provider's wait is over.
                limiter.penalize(decision.delay)
            elif decision.delay:
                await self.relay.sleep(decision.delay)
                wait = decision.delay
            # Ask again only for what is still missing, and never resume the same prediction.
            call = call.next_attempt(n=min(call.n, self.remaining), known=frozenset(self.predictions))

    def _carry_out(self, cand: Candidate, exc: ProviderError, decision: Decision) -> Step | None:
        """Carry out a decision (notes, warnings, cooldown); the step it leads to, None to retry."""
        if decision.note:
            self._note(decision.note)
        if decision.warning:
            log.warning(decision.warning)
        if decision.cool:
            models = cand.provider.models.values() if decision.cool_provider else [cand.model]
            self.relay.cool([m.ref for m in models], f"{type(exc).__name__}: {exc.message}")
        if decision.action == Action.STOP:
            return Step.STOP
        if decision.action == Action.NEXT:
            return Step.NEXT
        return None

    # -- one attempt --------------------------------------------------------------------------

    async def attempt(self, backend: Backend, cand: Candidate, call: Call, wait: float) -> Attempted:
        """Make `call` once: every image it delivers is saved as it arrives; the receipt gets its row."""
        done = Attempted(call=call, wait=wait)

        async def deliver(image: Delivered) -> None:
            await self._keep(cand, image, done)

        def on_event(event: CallEvent) -> None:
            self._event(done, event)

        start = self.relay.clock()
        log.debug("%s: sending (%d image(s))", cand.ref, call.n)
        try:
            done.result = await backend.generate(call, deliver, on_event)
        except asyncio.CancelledError:
            done.interrupted = True
            done.duration = self.relay.clock() - start
            self.remaining -= done.paid
            account(self.receipt, cand, done)
            self.receipt.attempts.append(
                done.row(cand.provider.name, cand.model.id, resumable=self.resumable)
            )
            raise
        except ProviderError as exc:
            done.error = exc
            self.failures.append(exc)
        done.duration = self.relay.clock() - start
        self.remaining -= len(done.delivered)
        row = done.row(cand.provider.name, cand.model.id)
        self.receipt.attempts.append(row)
        # Model, outcome, status and time only: never what was sent (a URL may carry a token).
        status = f" HTTP {row.status}" if row.status else ""
        log.debug(
            "%s: %s%s in %.2fs, %d image(s)",
            cand.ref,
            row.outcome,
            status,
            done.duration,
            len(done.delivered),
        )
        return done

    def _event(self, done: Attempted, event: CallEvent) -> None:
        if isinstance(event, Sent):
            done.sent = dict(event.params)
        elif isinstance(event, PredictionCancelled):
            done.cancelled = True
        elif isinstance(event, Noted):
            self._note(event.text)
        elif isinstance(event, PredictionCreated):
            done.prediction = event.id
            self.predictions.add(event.id)
            if self.hooks.on_prediction is not None:
                # The prediction exists and is paid for: a hook that fails (a full disk under the
                # ledger) must not abandon it. Unrecorded, a resume still finds it by listing.
                try:
                    self.hooks.on_prediction(event)
                except Exception as exc:  # the hook's own failure, whatever it is
                    log.warning(
                        "recording prediction %s of %s failed (%s); waiting for it",
                        event.id,
                        event.model,
                        exc,
                    )

    async def _keep(self, cand: Candidate, image: Delivered, done: Attempted) -> None:
        """Bytes first: write a delivered image (in a worker thread) before anything else."""
        store, receipt = self.store, self.receipt
        if not receipt.sandbox and from_emulator(image.data):
            # The imagerelay emulator answered (`emulator serve` behind a base-URL variable):
            # nothing real was made or billed, whatever the environment says.
            receipt.sandbox = True
            self._note(
                f"{cand.ref} was answered by the imagerelay emulator: sandbox output, booked at $0 "
                "(what it would have cost is in would_cost_usd)"
            )
        name = self.hooks.name or self.request.prompt
        index = len(receipt.images) + 1
        provider, model = cand.provider.name, cand.model.id
        told = self.hooks.on_image is not None

        def write() -> _Kept:
            try:
                saved, note = save_delivered(
                    store, receipt, image, provider=provider, model=model, name=name, index=index
                )
            except OutputError as exc:  # nowhere to keep it: paid for all the same
                return _Kept(error=exc)
            if told:  # the hook records it as saved (a batch's ledger): its name must be durable
                store.sync()
            return _Kept(saved, note)

        await in_thread(write, then=lambda kept: self._kept(cand, image, done, kept))

    def _kept(self, cand: Candidate, image: Delivered, done: Attempted, kept: _Kept) -> None:
        if kept.saved is None:
            done.lost += 1
            self.lost.append((image.url, str(kept.error)))
            return
        if kept.note:
            self.receipt.notes.append(kept.note)
        self.receipt.images.append(kept.saved)
        done.delivered.append(kept.saved)
        if image.revised_prompt and image.revised_prompt != self.request.prompt:
            self.receipt.notes.append(f"{cand.ref} revised the prompt to: {image.revised_prompt}")
        if self.hooks.on_image is not None:
            self.hooks.on_image(kept.saved, self.receipt)

    # -- references -----------------------------------------------------------------------------

    async def _prepared(
        self, cand: Candidate, refs: tuple[Reference, ...] | list[Reference]
    ) -> tuple[tuple[PreparedImage, ...], PreparedImage | None]:
        """The references (and mask) converted for `cand`'s provider, in a worker thread (once per
        provider and relay: the relay keeps them)."""
        from .references import prepare_for

        provider, has_mask, cache = cand.provider, self.request.mask is not None, self.relay.prepared
        images, mask, notes = await in_thread(
            lambda: prepare_for(provider, refs, has_mask=has_mask, cache=cache)
        )
        for note in notes:
            self._note(f"{provider.name}: {note}")
        return images, mask

    # -- the end ----------------------------------------------------------------------------------

    def _note(self, note: str) -> None:
        if note not in self.receipt.notes:
            self.receipt.notes.append(note)

    def _interrupted(self) -> None:
        receipt = self.receipt
        receipt.notes.append(
            f"interrupted after {len(receipt.images)} of {self.request.n} image(s)"
            + ("; what was in flight is left to resume" if self.resumable else "")
        )
        if not self.resumable and not receipt.images:  # with images, `_close` writes it
            receipt.settle_sandbox()  # keep what was spent (maybe) on record
            self._write_failure_receipt()
            self.store.recorded(receipt)

    def _settle(self) -> bool:
        """Settle the receipt's last notes; True when it has images and so receipts to write."""
        receipt = self.receipt
        receipt.settle_sandbox()
        for url, why in self.lost:
            receipt.notes.append(
                f"a paid image could be kept nowhere ({why}): "
                + (f"fetch it from {url} while that URL lasts" if url else "it is lost")
            )
        ledger = self.relay.ledger
        if self.store.failure is not None and ledger is not None:
            ledger.quiet.add(receipt.id)  # a failing ledger is said in SaveFailed's line
        if not receipt.images:
            return False
        if self.remaining > 0:
            receipt.notes.append(
                f"{self.remaining} of {self.request.n} images could not be made: see attempts"
            )
        return True

    def _close(self) -> None:
        """Write the receipts beside the images, on the event loop's thread (it is going away)."""
        if self._settle():
            self._write_receipts()
            self.store.recorded(self.receipt)

    async def _close_async(self) -> None:
        """Write the receipts beside the images (and the ledger row) in a worker thread."""
        if self._settle():
            await in_thread(self._write_receipts, then=lambda _: self.store.recorded(self.receipt))

    def _write_receipts(self) -> None:
        self.store.write_receipts(self.receipt)
        self.relay.record(self.receipt)

    def _write_failure_receipt(self) -> Path | None:
        path = self.store.write_failure_receipt(self.receipt)
        self.relay.record(self.receipt)
        return path

    async def _outcome(self) -> Receipt:
        from .errors import GenerationFailed, SaveFailed

        receipt, store = self.receipt, self.store
        if store.failure is not None or not receipt.images:
            written: Path | None = None
            if not receipt.images:
                written = await in_thread(self._write_failure_receipt, then=lambda _: store.recorded(receipt))
            if store.failure is None:
                failed = GenerationFailed(failure_message(receipt), self.failures, receipt)
                failed.receipt_path = None if written is None else str(written)
                raise failed
            message = save_failure_message(store, receipt, self.lost)
            ledger = self.relay.ledger
            if ledger is not None and receipt.id in ledger.unrecorded:
                why = ledger.unrecorded[receipt.id]
                message += f"; the ledger could not record it either ({why}): the receipt is the record"
            raise SaveFailed(message, receipt)
        return receipt
