"""Replicate FLUX: predictions created with the `replicate` SDK, then polled by id.

Wire facts (see providers/replicate.toml): a create answers 201 with a prediction that may still
be `starting`/`processing`; it is then polled by id until `succeeded`, `failed`, `canceled` or
`aborted`. The create is never held open with `Prefer: wait`: until its answer arrives the
prediction's id is unknown, so a crash in that window would pay for it again. Answered at once,
the id is recorded within one round trip; and a run cut short even then finds its prediction
again in `GET /v1/predictions` (same model and input, created since it began) instead of
creating another. Output is a list of URLs or one URL (per model) that expires
in about an hour. Errors are problem+json `{"title", "detail", "status"}`; a 429 body carries
`retry_after`.

Only the create goes through the SDK. Polls, cancels and uploads use the shared httpx client:
replicate 1.0.7 cannot parse the `aborted` status, its transport retries GETs on 429/503/504
behind our back (it wraps any transport it is given in that retry layer, so only POSTs — which it
never retries — may go through it), and its file upload has no timeout at all.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import json
import logging
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import (
    ArgumentRejected,
    AuthenticationFailed,
    ContentBlocked,
    EmptyResult,
    MalformedResponse,
    ModelUnavailable,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    ServerError,
    TransientError,
)
from ..hooks import PredictionCancelled, PredictionCreated, Sent
from .base import (
    Adopt,
    Backend,
    Call,
    CallResult,
    Deliver,
    Delivered,
    OnEvent,
    download_image,
    httpx_errors,
    retry_after_seconds,
)

if TYPE_CHECKING:
    from replicate.client import Client

    from ..references import PreparedImage

__all__ = ["NSFW_MARKERS", "ReplicateBackend"]

log = logging.getLogger("imagerelay")

#: A failed prediction carries only free text in `error`: Replicate has no machine-readable code
#: for a safety refusal. This one check on text is deliberate; every other outcome is decided by
#: status. Matched case-insensitively against the prediction's `error`.
NSFW_MARKERS = ("nsfw",)

TERMINAL = frozenset({"succeeded", "failed", "canceled", "aborted"})
RUNNING = frozenset({"starting", "processing"})
#: Predictions listed this long before the interrupted run began still count (clocks differ).
_CLOCK_SKEW = dt.timedelta(minutes=2)
#: Pages of `GET /v1/predictions` (100 each) read at most when looking for an unrecorded one.
_MAX_LIST_PAGES = 20
#: Canonical request fields sent when the model declares them (besides prompt, n, reference).
_PARAMS = ("size", "aspect_ratio", "resolution", "quality", "seed", "output_format")

#: The raw answer to the create in flight in this task (set around the SDK call; see `_capture`).
_captured: ContextVar[dict[str, httpx.Response] | None] = ContextVar(
    "imagerelay_replicate_create", default=None
)


async def _capture(response: httpx.Response) -> None:
    """httpx response hook: keep the raw create answer, which the SDK reduces to what it can parse
    (it drops `retry_after` and the headers of an error, and refuses statuses it does not know)."""
    box = _captured.get()
    if box is not None:
        await response.aread()
        box["response"] = response


class ReplicateBackend(Backend):
    """Create a prediction, record its id at once, poll it to the end, download its output."""

    _client: Client | None = None
    _transport: httpx.AsyncHTTPTransport | None = None

    def _token(self) -> str:
        if self._key is None:
            raise AuthenticationFailed(
                f"{self.provider.key_env} is not set: export it or add it to .env",
                provider=self.provider.name,
            )
        return self._key.get_secret_value()

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token()}"}

    def _timeout(self, read: float | None = None) -> httpx.Timeout:
        return httpx.Timeout(read or self.settings.timeout, connect=self.settings.connect_timeout)

    def _sdk(self) -> Client:
        token = self._token()
        if self._client is None:
            from replicate.client import Client

            # Our own transport, so that aclose() can release its connections.
            self._transport = httpx.AsyncHTTPTransport()
            self._client = Client(
                api_token=token,
                base_url=self.base_url.removesuffix("/v1"),  # the SDK adds /v1 itself
                timeout=self._timeout(),
                transport=self._transport,
                event_hooks={"request": [self._bounded], "response": [_capture]},
            )
        return self._client

    async def _bounded(self, request: httpx.Request) -> None:
        """httpx request hook: without `wait`, replicate 1.0.7 sends its create with `timeout=None`
        (no timeout at all); give it ours, so a create that never answers ends as ReadTimedOut."""
        timeout = request.extensions.get("timeout") or {}
        if all(v is None for v in timeout.values()):
            request.extensions["timeout"] = self._timeout().as_dict()

    async def aclose(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()
        self._client = self._transport = None

    # -- the request ----------------------------------------------------------------------------

    def build_input(self, call: Call) -> dict[str, Any]:
        """The prediction's `input` for `call`, without the reference (see `generate`)."""
        m = call.model
        inp: dict[str, Any] = {m.wire("prompt"): call.prompt}
        if m.accepts("n"):
            inp[m.wire("n")] = call.n
        for name in _PARAMS:
            if name in call.params and m.accepts(name):
                inp[m.wire(name)] = call.params[name]
        inp.update(m.fixed)
        inp.update(call.extras)
        return inp

    async def _reference(self, call: Call) -> tuple[Any, Any]:
        """(input value, receipt summary) of the references: each inline, or uploaded when large.

        A model that takes several references (FLUX.2's `input_images`) takes them as one list.
        """
        if call.model.max_references > 1:
            pairs = [await self._one_reference(ref, call.model.id) for ref in call.references]
            return [v for v, _ in pairs], [s for _, s in pairs]
        if len(call.references) > 1:
            raise ArgumentRejected(
                f"replicate:{call.model.id} takes one reference image, {len(call.references)} given",
                provider=self.provider.name,
                model=call.model.id,
            )
        return await self._one_reference(call.references[0], call.model.id)

    async def _one_reference(self, ref: PreparedImage, model: str) -> tuple[str, str]:
        from ..imaging import human_bytes

        size = human_bytes(len(ref.data))
        inline_max = self.provider.reference_limits.inline_max_bytes
        if inline_max is None or len(ref.data) < inline_max:
            return ref.data_uri(), f"<data URI, {size}>"
        url = await self._upload(ref, model)
        return url, f"<uploaded {ref.filename}, {size}: {url}>"

    async def generate(self, call: Call, deliver: Deliver, on_event: OnEvent) -> CallResult:
        model = call.model.id
        started = time.monotonic()
        prediction: dict[str, Any] | None = None
        inp = self.build_input(call)
        found = None if call.resume_id or call.adopt is None else await self._unrecorded(call, inp)
        resume_id = call.resume_id or (str(found["id"]) if found is not None else None)
        if resume_id is not None:
            # Re-attach to a prediction made before (e.g. before a crash): never create another.
            pid = resume_id
            sent: dict[str, Any] = {"resumed_prediction": pid}
            on_event(Sent(sent))
            prediction = found
        else:
            prediction, sent = await self._start(call, inp, on_event)
            started = time.monotonic()
            pid = prediction["id"]
        on_event(PredictionCreated(call.model.ref, pid))
        try:
            prediction = await self._polled(call, pid, prediction, started, on_event)
            if "resumed_prediction" in sent and _dead(prediction):
                # Cancelled, aborted or failed while we were away: polling it again cannot help,
                # nor is the model at fault. Drop it and make exactly one new prediction.
                log.info(
                    "replicate: resumed prediction %s was %s; creating a new one", pid, prediction["status"]
                )
                prediction, sent = await self._start(call, self.build_input(call), on_event)
                started = time.monotonic()
                pid = prediction["id"]
                on_event(PredictionCreated(call.model.ref, pid))
                prediction = await self._polled(call, pid, prediction, started, on_event)
            count = await self._deliver_output(prediction, model, deliver)
        except ProviderError as exc:
            if exc.request_id is None:
                exc.request_id = pid  # the prediction id is what to look up at Replicate
            raise
        return CallResult(images=count, request_id=pid, prediction_id=pid, sent=sent)

    async def _polled(
        self, call: Call, pid: str, prediction: dict[str, Any] | None, started: float, on_event: OnEvent
    ) -> dict[str, Any]:
        """`_until_done`, cancelling the prediction if interrupted (when the call says so)."""
        try:
            return await self._until_done(pid, call.model.id, prediction, started)
        except asyncio.CancelledError:
            # Stop paying for what nobody will collect. The cancel is one short POST; the task
            # is already cancelled, so this await runs unless it is cancelled a second time.
            if call.cancel_on_interrupt and await self._cancel(pid, call.model.id):
                on_event(PredictionCancelled(call.model.ref, pid))
            raise

    async def _start(
        self, call: Call, inp: dict[str, Any], on_event: OnEvent
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Create the prediction for `call`: (its first answer, what the receipt shows as sent)."""
        sent = dict(inp)
        if call.references:
            field = call.model.wire("reference") if call.model.accepts("reference") else "image"
            inp[field], sent[field] = await self._reference(call)
        on_event(Sent(sent))  # a failed attempt's receipt says what was sent, too
        return await self._create(call, inp), sent

    async def _unrecorded(self, call: Call, inp: dict[str, Any]) -> dict[str, Any] | None:
        """The newest prediction an interrupted run made for this call but never recorded: same
        model, same input, created since that run began, not known to the ledger. None if none."""
        adopt: Adopt = call.adopt  # type: ignore[assignment]
        model = call.model.id
        path = call.model.path or model
        reference = None
        if call.references:  # an uploaded reference has a new URL each time: compare the rest
            reference = call.model.wire("reference") if call.model.accepts("reference") else "image"
        since = adopt.since - _CLOCK_SKEW
        url: str | None = f"{self.base_url}/predictions"
        params: dict[str, str] | None = {"created_after": since.astimezone(dt.UTC).isoformat()}
        for _ in range(_MAX_LIST_PAGES):
            if url is None:
                break
            with httpx_errors(self.provider.name, model, billed_on_timeout=False):
                resp = await self.http.get(
                    url, params=params, headers=self._headers(), timeout=self._timeout()
                )
            if resp.status_code == 404:  # no listing here: nothing to find
                return None
            if resp.status_code != 200:
                raise self._status_error(resp, model)
            page = _json_object(resp)
            for p in page.get("results") or []:
                if not isinstance(p, dict) or p.get("model") != path or p.get("id") in adopt.known:
                    continue
                created = _parse_time(p.get("created_at"))
                if created is not None and created < since:
                    return None  # newest first: everything further is older
                given: dict[str, Any] = p["input"] if isinstance(p.get("input"), dict) else {}
                if reference is not None and reference not in given:
                    continue
                if {k: v for k, v in given.items() if k != reference} == inp and (
                    isinstance(p.get("id"), str) and p.get("status") in TERMINAL | RUNNING
                ):
                    log.info(
                        "replicate: re-attaching to prediction %s, created before an interruption", p["id"]
                    )
                    return p
            nxt = page.get("next")
            url, params = (nxt if isinstance(nxt, str) and nxt else None), None
        return None

    # -- create (SDK), poll, cancel, upload (httpx) --------------------------------------------

    async def _create(self, call: Call, inp: dict[str, Any]) -> dict[str, Any]:
        client = self._sdk()
        model = call.model.id
        box: dict[str, httpx.Response] = {}
        token = _captured.set(box)
        try:
            with self._sdk_errors(model, box):
                try:
                    # No `wait`: the answer (and with it the id) comes at once; see the module docs.
                    await client.models.predictions.async_create(model=call.model.path or model, input=inp)
                except (ValueError, TypeError) as exc:
                    # The SDK's model cannot parse newer statuses (`aborted`), raises ValueError on a
                    # body that is not JSON and TypeError on JSON that is not an object; the raw
                    # answer below decides in every case.
                    if "response" not in box:
                        raise ArgumentRejected(
                            f"replicate SDK refused the request for {model!r}: {exc}",
                            provider=self.provider.name,
                            model=model,
                        ) from exc
        finally:
            _captured.reset(token)
        resp = box["response"]
        return self._prediction_of(resp, model)

    def _prediction_of(self, resp: httpx.Response, model: str) -> dict[str, Any]:
        """The prediction in a 2xx body, checked for the two fields everything else relies on."""
        try:
            data = resp.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MalformedResponse(
                f"replicate answered {resp.status_code} with a body that is not JSON",
                provider=self.provider.name,
                model=model,
                status=resp.status_code,
            ) from exc
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("id"), str)
            or data.get("status") not in TERMINAL | RUNNING
        ):
            raise MalformedResponse(
                f"replicate answered {resp.status_code} with something that is not a prediction",
                provider=self.provider.name,
                model=model,
                status=resp.status_code,
            )
        return data

    async def _until_done(
        self, pid: str, model: str, prediction: dict[str, Any] | None, started: float
    ) -> dict[str, Any]:
        """Poll until the prediction is terminal; cancel it when the deadline passes."""
        deadline = started + self.settings.prediction_deadline
        # A fresh create answers `starting`: look again soon (fast models finish in a second or
        # two), then every poll_interval.
        delay = 0.0 if prediction is None else min(self.settings.poll_interval, 0.25)
        while prediction is None or prediction["status"] not in TERMINAL:
            left = deadline - time.monotonic()
            if left <= 0:
                cancelled = await self._cancel(pid, model)
                raise ModelUnavailable(
                    f"prediction {pid} did not finish in {self.settings.prediction_deadline:g}s; "
                    + ("cancelled" if cancelled else "cancelling it failed"),
                    provider=self.provider.name,
                    model=model,
                    request_id=pid,
                )
            await asyncio.sleep(min(delay, left))
            polled, wait = await self._poll(pid, model, deadline)
            if polled is not None:
                prediction = polled
            delay = max(self.settings.poll_interval, wait)
        return prediction

    async def _poll(self, pid: str, model: str, deadline: float) -> tuple[dict[str, Any] | None, float]:
        """(the prediction, or None when this poll failed transiently; extra seconds to wait)."""
        read = max(0.1, min(self.settings.timeout, deadline - time.monotonic()))
        try:
            with httpx_errors(self.provider.name, model, billed_on_timeout=False):
                resp = await self.http.get(
                    f"{self.base_url}/predictions/{pid}", headers=self._headers(), timeout=self._timeout(read)
                )
            if resp.status_code == 200:
                return self._prediction_of(resp, model), 0.0
            raise self._status_error(resp, model, prediction=pid)
        except TransientError as exc:
            # A GET changes nothing: the prediction runs on, so poll again (the deadline bounds it).
            log.debug("replicate: poll of %s failed (%s); polling again", pid, exc)
            return None, exc.retry_after or 0.0

    async def _cancel(self, pid: str, model: str) -> bool:
        """Best effort: stop paying for a prediction we gave up on."""
        try:
            resp = await self.http.post(
                f"{self.base_url}/predictions/{pid}/cancel",
                headers=self._headers(),
                timeout=self._timeout(self.settings.connect_timeout),
            )
        except httpx.HTTPError as exc:
            log.warning("replicate: cancelling prediction %s failed: %s", pid, type(exc).__name__)
            return False
        return resp.status_code < 400

    async def _upload(self, image: PreparedImage, model: str) -> str:
        """POST /v1/files (multipart `content`) and return the file's `urls.get`."""
        files = {"content": (image.filename, image.data, image.mime)}
        with httpx_errors(self.provider.name, model, billed_on_timeout=False):
            resp = await self.http.post(
                f"{self.base_url}/files", files=files, headers=self._headers(), timeout=self._timeout()
            )
        if resp.status_code not in (200, 201):
            raise self._status_error(resp, model)
        try:
            url = resp.json()["urls"]["get"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise MalformedResponse(
                "replicate file upload answered without urls.get",
                provider=self.provider.name,
                model=model,
                status=resp.status_code,
            ) from exc
        if not isinstance(url, str) or not url:
            raise MalformedResponse(
                "replicate file upload answered without urls.get", provider=self.provider.name, model=model
            )
        return url

    # -- the end of a prediction ----------------------------------------------------------------

    async def _deliver_output(self, prediction: dict[str, Any], model: str, deliver: Deliver) -> int:
        pid = prediction["id"]
        status = prediction["status"]
        kw: dict[str, Any] = {"provider": self.provider.name, "model": model, "request_id": pid}
        if status == "succeeded":
            urls = _output_urls(prediction.get("output"))
            if not urls:
                raise EmptyResult(f"replicate:{model} prediction {pid} succeeded with no output", **kw)
            for url in urls:
                if url.startswith("data:"):
                    image = self._inline_output(url, model, pid)
                else:
                    image = await download_image(
                        self.http,
                        url,
                        provider=self.provider.name,
                        model=model,
                        timeout=self.settings.download_timeout,
                    )
                await deliver(image)  # bytes first: before the next download can fail
            return len(urls)
        error = str(prediction.get("error") or "").strip()
        if status == "failed":
            if any(marker in error.lower() for marker in NSFW_MARKERS):
                raise ContentBlocked(f"replicate:{model} refused the output: {error[:200]}", **kw)
            raise ArgumentRejected(
                f"replicate:{model} prediction {pid} failed: {error[:300] or 'no reason given'}", **kw
            )
        # canceled by someone else, or aborted by Replicate: nothing wrong with the request itself.
        raise ServerError(f"replicate:{model} prediction {pid} was {status}", **kw)

    def _inline_output(self, url: str, model: str, pid: str) -> Delivered:
        from ..imaging import CorruptImage, probe

        head, _, payload = url.partition(",")
        kw: dict[str, Any] = {"provider": self.provider.name, "model": model, "request_id": pid}
        try:
            data = base64.b64decode(payload, validate=True)
            info = probe(data)
        except (binascii.Error, ValueError, CorruptImage) as exc:
            raise MalformedResponse(
                f"replicate:{model} sent an output data URI that does not decode", **kw
            ) from exc
        return Delivered(data=data, mime=info.mime or head.removeprefix("data:").split(";")[0], info=info)

    # -- the one seam where Replicate's answers become typed outcomes ---------------------------

    @contextlib.contextmanager
    def _sdk_errors(self, model: str, box: dict[str, httpx.Response]) -> Iterator[None]:
        """Around the SDK's create: transport errors as httpx_errors maps them (a read timeout may
        have been billed), HTTP errors by status from the raw answer kept in `box`."""
        from replicate.exceptions import ReplicateError

        try:
            with httpx_errors(self.provider.name, model, billed_on_timeout=True):
                yield
        except ReplicateError as exc:
            resp = box.get("response")
            if resp is None:
                raise MalformedResponse(
                    f"replicate error without a response: {exc.status}",
                    provider=self.provider.name,
                    model=model,
                    status=exc.status,
                ) from exc
            raise self._status_error(resp, model) from exc

    def _status_error(
        self, resp: httpx.Response, model: str, *, prediction: str | None = None
    ) -> ProviderError:
        status = resp.status_code
        body = _json_object(resp)
        detail = str(body.get("detail") or body.get("title") or resp.reason_phrase)[:300]
        kw: dict[str, Any] = {
            "provider": self.provider.name,
            "model": model,
            "status": status,
            "request_id": prediction,
        }
        if status in (401, 403):
            return AuthenticationFailed(
                f"replicate refused the token in {self.provider.key_env} ({status}): check it", **kw
            )
        if status == 402:
            return QuotaExhausted(f"replicate: no credit left (402): {detail}", **kw)
        if status == 404:
            what = f"prediction {prediction}" if prediction else f"model {model!r}"
            return ModelUnavailable(f"replicate has no {what} (404): {detail}", **kw)
        if status == 429:
            retry_after = body.get("retry_after")
            wait = (
                float(retry_after)
                if isinstance(retry_after, int | float) and not isinstance(retry_after, bool)
                else retry_after_seconds(resp.headers)
            )
            return RateLimited(f"replicate throttled the request (429): {detail}", retry_after=wait, **kw)
        if status >= 500 or status in (408, 409):
            return ServerError(
                f"replicate server error ({status})", retry_after=retry_after_seconds(resp.headers), **kw
            )
        return ArgumentRejected(f"replicate:{model} rejected the input ({status}): {detail}", **kw)


def _dead(prediction: dict[str, Any]) -> bool:
    """Ended without output for a reason a new prediction may not share (not a safety refusal)."""
    status = prediction.get("status")
    if status in ("canceled", "aborted"):
        return True
    error = str(prediction.get("error") or "").lower()
    return status == "failed" and not any(marker in error for marker in NSFW_MARKERS)


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _output_urls(output: Any) -> list[str]:
    """One URL or a list of them, whichever the model gives (the catalog says which; accept both)."""
    if isinstance(output, str):
        return [output] if output else []
    if isinstance(output, list):
        return [u for u in output if isinstance(u, str) and u]
    return []


def _json_object(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
