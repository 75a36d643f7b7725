"""Replicate FLUX: predictions created with the `replicate` SDK, then polled by id.

Wire facts (see providers/replicate.toml): a create answers 201 with a prediction that may still
be `starting`/`processing`; it is then polled by id until `succeeded`, `failed`, `canceled` or
`aborted`. The create is never held open with `Prefer: wait`: until its answer arrives the
prediction's id is unknown, so a crash in that window would pay for it again. Answered at once,
the id is recorded within one round trip; and a run cut short even then finds its prediction
again in `GET /v1/predictions` (same model and input, created since it began) instead of
creating another. Output is a list of URLs or one URL (per model) that expires
in about an hour. Errors are problem+json `{"title", "detail", "status"}`; a 429 body carries
`retry_after`. Only the create goes through the SDK (see `replicate_api`); polls use httpx.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from typing import TYPE_CHECKING, Any

from ..errors import (
    ArgumentRejected,
    ContentBlocked,
    DownloadFailed,
    EmptyResult,
    ModelUnavailable,
    ProviderError,
    ServerError,
    TransientError,
)
from ..hooks import Noted, PredictionCancelled, PredictionCreated, Sent
from ..plugins import builtin
from .base import Adopt, Call, CallResult, Deliver, Delivered, OnEvent
from .download import download_image
from .http import (
    ErrorContext,
    decoded_image,
    httpx_errors,
    json_object,
    wire_params,
)
from .replicate_api import PredictionsAPI
from .replicate_predictions import (
    MAX_LIST_PAGES,
    NSFW_MARKERS,
    TERMINAL,
    Unrecorded,
    dead,
    output_urls,
)

if TYPE_CHECKING:
    from ..references import PreparedImage

__all__ = ["PROVIDER", "ReplicateBackend"]

#: This provider, as `pyproject.toml` registers it in the `imagerelay.providers` entry-point group.
PROVIDER = builtin(
    "replicate",
    "ReplicateBackend",
    order=2,
    settings="imagerelay.backends.replicate_predictions:ReplicateSettings",
    catalog_check="imagerelay.catalog_check.replicate:replicate",
)

log = logging.getLogger("imagerelay")

#: Canonical request fields sent when the model declares them (besides prompt, n, reference).
_PARAMS = ("size", "aspect_ratio", "resolution", "quality", "seed", "output_format")


class ReplicateBackend(PredictionsAPI):
    """Create a prediction, record its id at once, poll it to the end, download its output."""

    # -- the request ----------------------------------------------------------------------------

    def build_input(self, call: Call) -> dict[str, Any]:
        """The prediction's `input` for `call`, without the reference (see `generate`)."""
        inp = wire_params(call, _PARAMS)
        inp.update(call.model.fixed)
        inp.update(call.extras)
        return inp

    async def _reference(self, call: Call, ctx: ErrorContext) -> tuple[Any, Any]:
        """(input value, receipt summary) of the references: each inline, or uploaded when large.

        A model that takes several references (FLUX.2's `input_images`) takes them as one list.
        """
        if call.model.max_references > 1:
            pairs = [await self._one_reference(ref, ctx) for ref in call.references]
            return [v for v, _ in pairs], [s for _, s in pairs]
        if len(call.references) > 1:
            raise ctx.error(
                ArgumentRejected, f"{ctx.where} takes one reference image, {len(call.references)} given"
            )
        return await self._one_reference(call.references[0], ctx)

    async def _one_reference(self, ref: PreparedImage, ctx: ErrorContext) -> tuple[str, str]:
        from ..imaging import human_bytes

        size = human_bytes(len(ref.data))
        inline_max = self.provider.reference_limits.inline_max_bytes
        if inline_max is None or len(ref.data) < inline_max:
            return ref.data_uri(), f"<data URI, {size}>"
        url = await self._upload(ref, ctx)
        return url, f"<uploaded {ref.filename}, {size}: {url}>"

    async def generate(self, call: Call, deliver: Deliver, on_event: OnEvent) -> CallResult:
        ctx = self.ctx(call.model.id)
        started = time.monotonic()
        prediction: dict[str, Any] | None = None
        inp = self.build_input(call)
        found = None
        if not call.resume_id and call.adopt is not None:
            found = await self._unrecorded(call, inp, ctx, call.adopt)
        resume_id = call.resume_id or (str(found["id"]) if found is not None else None)
        if resume_id is not None:
            # Re-attach to a prediction made before (e.g. before a crash): never create another.
            pid = resume_id
            sent: dict[str, Any] = {"resumed_prediction": pid}
            on_event(Sent(sent))
            how = "recorded" if call.resume_id else "found in Replicate's list"
            on_event(
                Noted(
                    f"{call.model.ref}: re-attached to prediction {pid} ({how}), made by an earlier run "
                    "of this request that was cut short: not paid for again"
                )
            )
            prediction = found
        else:
            prediction, sent = await self._start(call, inp, on_event, ctx)
            started = time.monotonic()
            pid = prediction["id"]
        on_event(PredictionCreated(call.model.ref, pid))
        try:
            gone = None
            try:
                prediction = await self._polled(call, pid, prediction, started, on_event)
            except ModelUnavailable as exc:
                # A resumed prediction Replicate no longer knows (404): the model is not at fault.
                if "resumed_prediction" not in sent or exc.status != 404:
                    raise
                gone = "is not known to Replicate any more (404)"
            else:
                if "resumed_prediction" in sent and dead(prediction):
                    gone = f"was {prediction['status']}"
            if gone is not None:
                # Cancelled, aborted, failed or gone while we were away: polling it again cannot
                # help, nor is the model at fault (no cooldown, no fallback). Drop it and make
                # exactly one new prediction on the same model.
                note = f"{call.model.ref}: the resumed prediction {pid} {gone}; made one new prediction"
                log.info("%s", note)
                on_event(Noted(note))
                prediction, sent = await self._start(call, self.build_input(call), on_event, ctx)
                started = time.monotonic()
                pid = prediction["id"]
                on_event(PredictionCreated(call.model.ref, pid))
                prediction = await self._polled(call, pid, prediction, started, on_event)
            assert prediction is not None  # polled to its end above
            count = await self._deliver_output(prediction, ctx.but(request_id=pid), deliver)
        except ProviderError as exc:
            if exc.request_id is None:
                exc.request_id = pid  # the prediction id is what to look up at Replicate
            raise
        return CallResult(images=count, request_id=pid, prediction_id=pid, sent=sent)

    async def _polled(
        self, call: Call, pid: str, prediction: dict[str, Any] | None, started: float, on_event: OnEvent
    ) -> dict[str, Any]:
        """`_until_done`, cancelling the prediction if interrupted (when the call says so)."""
        ctx = self.ctx(call.model.id, request_id=pid)
        try:
            return await self._until_done(ctx, prediction, started)
        except asyncio.CancelledError:
            # Stop paying for what nobody will collect. The cancel is one short POST; the task
            # is already cancelled, so this await runs unless it is cancelled a second time.
            if call.cancel_on_interrupt and await self._cancel(ctx):
                on_event(PredictionCancelled(call.model.ref, pid))
            raise

    async def _start(
        self, call: Call, inp: dict[str, Any], on_event: OnEvent, ctx: ErrorContext
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Create the prediction for `call`: (its first answer, what the receipt shows as sent)."""
        base, sent = dict(inp), dict(inp)
        if call.references:
            field = call.model.wire("reference") if call.model.accepts("reference") else "image"
            inp[field], sent[field] = await self._reference(call, ctx)
        on_event(Sent(sent))  # a failed attempt's receipt says what was sent, too
        began = dt.datetime.now(dt.UTC)
        try:
            return await self._create(call, inp, ctx), sent
        except ProviderError as exc:
            if not getattr(exc, "maybe_billed", False):
                raise
            # The create was sent and its answer lost (timed out, cut off): the prediction may
            # well exist, and be paid for. Look for it before giving up on the model.
            known = call.adopt.known if call.adopt is not None else frozenset()
            found = await self._created_meanwhile(call, base, ctx, Adopt(began, known))
            if found is None:
                raise
            on_event(
                Noted(
                    f"{call.model.ref}: the create's answer was lost ({type(exc).__name__}); its "
                    f"prediction {found['id']} was found in Replicate's list and used"
                )
            )
            return found, sent

    async def _created_meanwhile(
        self, call: Call, inp: dict[str, Any], ctx: ErrorContext, adopt: Adopt
    ) -> dict[str, Any] | None:
        """`_unrecorded`, for a create whose answer was lost; None when the lookup fails too."""
        try:
            return await self._unrecorded(call, inp, ctx, adopt)
        except ProviderError as exc:
            log.info("%s: looking for the prediction of a lost create failed: %s", ctx.where, exc)
            return None

    async def _unrecorded(
        self, call: Call, inp: dict[str, Any], ctx: ErrorContext, adopt: Adopt
    ) -> dict[str, Any] | None:
        """The newest prediction an interrupted run made for this call but never recorded: same
        model, same input, created since that run began, not known to the ledger. None if none."""
        match = Unrecorded.of(call, inp, adopt)
        url: str | None = f"{self.base_url}/predictions"
        params: dict[str, str] | None = {"created_after": match.since.astimezone(dt.UTC).isoformat()}
        for _ in range(MAX_LIST_PAGES):
            if url is None:
                break
            with httpx_errors(ctx, billed_on_timeout=False):
                resp = await self.http.get(
                    url, params=params, headers=self._headers(), timeout=self._timeout()
                )
            if resp.status_code == 404:  # no listing here: nothing to find
                return None
            if resp.status_code != 200:
                raise self._status_error(resp, ctx)
            page = json_object(resp)
            found, done = match.find(page.get("results"))
            if found is not None:
                log.info(
                    "%s: re-attaching to prediction %s, created before an interruption",
                    ctx.provider,
                    found["id"],
                )
            if done:
                return found
            nxt = page.get("next")
            url, params = (nxt if isinstance(nxt, str) and nxt else None), None
        return None

    # -- polling ---------------------------------------------------------------------------------

    async def _until_done(
        self, ctx: ErrorContext, prediction: dict[str, Any] | None, started: float
    ) -> dict[str, Any]:
        """Poll until the prediction is terminal; cancel it when the deadline passes."""
        deadline = started + self.settings.prediction_deadline
        # A fresh create answers `starting`: look again soon (fast models finish in a second or
        # two), then every poll_interval.
        delay = 0.0 if prediction is None else min(self.settings.poll_interval, 0.25)
        while prediction is None or prediction["status"] not in TERMINAL:
            left = deadline - time.monotonic()
            if left <= 0:
                cancelled = await self._cancel(ctx)
                raise ctx.error(
                    ModelUnavailable,
                    f"prediction {ctx.request_id} did not finish in {self.settings.prediction_deadline:g}s; "
                    + ("cancelled" if cancelled else "cancelling it failed"),
                )
            await asyncio.sleep(min(delay, left))
            polled, wait = await self._poll(ctx, deadline)
            if polled is not None:
                prediction = polled
            delay = max(self.settings.poll_interval, wait)
        return prediction

    async def _poll(self, ctx: ErrorContext, deadline: float) -> tuple[dict[str, Any] | None, float]:
        """(the prediction, or None when this poll failed transiently; extra seconds to wait)."""
        read = max(0.1, min(self.settings.timeout, deadline - time.monotonic()))
        pid = ctx.request_id
        try:
            with httpx_errors(ctx, billed_on_timeout=False):
                resp = await self.http.get(
                    f"{self.base_url}/predictions/{pid}", headers=self._headers(), timeout=self._timeout(read)
                )
            if resp.status_code == 200:
                return self._prediction_of(resp, ctx), 0.0
            raise self._status_error(resp, ctx, subject=f"prediction {pid}")
        except TransientError as exc:
            # A GET changes nothing: the prediction runs on, so poll again (the deadline bounds it).
            log.debug("%s: poll of %s failed (%s); polling again", ctx.provider, pid, exc)
            return None, exc.retry_after or 0.0

    # -- the end of a prediction ----------------------------------------------------------------

    async def _download(self, url: str, index: int, ctx: ErrorContext) -> Delivered:
        """Output `index` of the prediction, from `url`; when every GET of it failed, the
        prediction is read again for its URL now (it may have been re-signed, or the host may be
        back) and that is fetched once more. Never a new prediction: the image is made and paid."""
        timeout = self.settings.download_timeout
        try:
            return await download_image(self.http, url, ctx, timeout=timeout)
        except DownloadFailed as first:
            deadline = time.monotonic() + self.settings.timeout
            again, _ = await self._poll(ctx, deadline)
            fresh = output_urls(again.get("output")) if again is not None else []
            if len(fresh) <= index or fresh[index].startswith("data:"):
                raise
            log.info("%s: fetching output %d of %s again from a fresh URL", ctx.where, index, ctx.request_id)
            try:
                return await download_image(self.http, fresh[index], ctx, timeout=timeout, backoff=())
            except DownloadFailed:
                raise first from None

    async def _deliver_output(self, prediction: dict[str, Any], ctx: ErrorContext, deliver: Deliver) -> int:
        pid = prediction["id"]
        status = prediction["status"]
        if status == "succeeded":
            urls = output_urls(prediction.get("output"))
            if not urls:
                raise ctx.error(EmptyResult, f"{ctx.where} prediction {pid} succeeded with no output")
            for i, url in enumerate(urls):
                if url.startswith("data:"):
                    data, info = await decoded_image(url, ctx, "an output data URI")
                    image = Delivered(data=data, mime=info.mime, info=info)
                else:
                    image = await self._download(url, i, ctx)
                await deliver(image)  # bytes first: before the next download can fail
            return len(urls)
        error = str(prediction.get("error") or "").strip()
        if status == "failed":
            if any(marker in error.lower() for marker in NSFW_MARKERS):
                raise ctx.error(ContentBlocked, f"{ctx.where} refused the output: {error[:200]}")
            raise ctx.error(
                ArgumentRejected, f"{ctx.where} prediction {pid} failed: {error[:300] or 'no reason given'}"
            )
        # canceled by someone else, or aborted by Replicate: nothing wrong with the request itself.
        raise ctx.error(ServerError, f"{ctx.where} prediction {pid} was {status}")
