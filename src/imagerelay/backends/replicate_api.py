"""Replicate's HTTP API under the prediction lifecycle (`replicate.py`): the create through the
`replicate` SDK, cancels and uploads over the shared httpx client, and the one status seam.

Only the create goes through the SDK: replicate 1.0.7 cannot parse the `aborted` status, its
transport retries GETs on 429/503/504 behind our back (it wraps any transport it is given in that
retry layer, so only POSTs — which it never retries — may go through it), and its file upload has
no timeout at all.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import httpx

from ..errors import (
    ArgumentRejected,
    AuthenticationFailed,
    MalformedResponse,
    ProviderError,
    RateLimited,
)
from .base import Backend, Call
from .http import (
    ErrorContext,
    StatusTable,
    error_detail,
    httpx_errors,
    json_answer,
    json_object,
    retry_after_seconds,
)
from .replicate_predictions import RUNNING, TERMINAL, ReplicateSettings

if TYPE_CHECKING:
    from replicate.client import Client

    from ..references import PreparedImage

__all__ = ["PredictionsAPI"]

log = logging.getLogger("imagerelay")

_STATUS = StatusTable(
    messages={
        AuthenticationFailed: "{provider} refused the token in {keys} ({label}): check it",
        RateLimited: "{provider} throttled the request ({label}): {detail}",
        ArgumentRejected: "{where} rejected the input ({label}): {detail}",
    },
)

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


class PredictionsAPI(Backend):
    """Create, cancel and upload at Replicate, and map its answers (the lifecycle is a subclass)."""

    settings: ReplicateSettings
    settings_model = ReplicateSettings
    _client: Client | None = None

    _transport: httpx.AsyncHTTPTransport | None = None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key()}"}

    def _timeout(self, read: float | None = None) -> httpx.Timeout:
        return httpx.Timeout(read or self.settings.timeout, connect=self.settings.connect_timeout)

    def _sdk(self) -> Client:
        token = self.key()
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

    async def _create(self, call: Call, inp: dict[str, Any], ctx: ErrorContext) -> dict[str, Any]:
        client = self._sdk()
        box: dict[str, httpx.Response] = {}
        token = _captured.set(box)
        try:
            with self._sdk_errors(ctx, box):
                try:
                    # No `wait`: the answer (and with it the id) comes at once; see the module docs.
                    await client.models.predictions.async_create(
                        model=call.model.path or ctx.model, input=inp
                    )
                except (ValueError, TypeError) as exc:
                    # The SDK's model cannot parse newer statuses (`aborted`), raises ValueError on a
                    # body that is not JSON and TypeError on JSON that is not an object; the raw
                    # answer below decides in every case.
                    if "response" not in box:
                        raise ctx.error(
                            ArgumentRejected,
                            f"{ctx.provider} SDK refused the request for {ctx.model!r}: {exc}",
                        ) from exc
        finally:
            _captured.reset(token)
        return self._prediction_of(box["response"], ctx)

    def _prediction_of(self, resp: httpx.Response, ctx: ErrorContext) -> dict[str, Any]:
        """The prediction in a 2xx body, checked for the two fields everything else relies on."""
        ctx = ctx.but(status=resp.status_code)
        data = json_answer(resp, ctx)
        if not isinstance(data.get("id"), str) or data.get("status") not in TERMINAL | RUNNING:
            raise ctx.error(
                MalformedResponse,
                f"{ctx.where} answered {resp.status_code} with something that is not a prediction",
            )
        return data

    async def _cancel(self, ctx: ErrorContext) -> bool:
        """Best effort: stop paying for a prediction we gave up on."""
        try:
            resp = await self.http.post(
                f"{self.base_url}/predictions/{ctx.request_id}/cancel",
                headers=self._headers(),
                timeout=self._timeout(self.settings.connect_timeout),
            )
        except httpx.HTTPError as exc:
            log.warning(
                "%s: cancelling prediction %s failed: %s", ctx.provider, ctx.request_id, type(exc).__name__
            )
            return False
        return resp.status_code < 400

    async def _upload(self, image: PreparedImage, ctx: ErrorContext) -> str:
        """POST /v1/files (multipart `content`) and return the file's `urls.get`."""
        files = {"content": (image.filename, image.data, image.mime)}
        with httpx_errors(ctx, billed_on_timeout=False):
            resp = await self.http.post(
                f"{self.base_url}/files", files=files, headers=self._headers(), timeout=self._timeout()
            )
        if resp.status_code not in (200, 201):
            raise self._status_error(resp, ctx)
        url = (json_object(resp).get("urls") or {}).get("get")
        if not isinstance(url, str) or not url:
            raise ctx.but(status=resp.status_code).error(
                MalformedResponse, f"{ctx.provider} file upload answered without urls.get"
            )
        return url

    # -- the one seam where Replicate's answers become typed outcomes ---------------------------

    @contextlib.contextmanager
    def _sdk_errors(self, ctx: ErrorContext, box: dict[str, httpx.Response]) -> Iterator[None]:
        """Around the SDK's create: transport errors as httpx_errors maps them (a read timeout may
        have been billed), HTTP errors by status from the raw answer kept in `box`."""
        from replicate.exceptions import ReplicateError

        try:
            with httpx_errors(ctx, billed_on_timeout=True):
                yield
        except ReplicateError as exc:
            resp = box.get("response")
            if resp is None:
                raise ctx.but(status=exc.status).error(
                    MalformedResponse, f"{ctx.provider} error without a response: {exc.status}"
                ) from exc
            raise self._status_error(resp, ctx) from exc

    def _status_error(
        self, resp: httpx.Response, ctx: ErrorContext, *, subject: str | None = None
    ) -> ProviderError:
        # A 429's body says how long to wait (`retry_after`), more precisely than its header.
        wait = json_object(resp).get("retry_after")
        if not isinstance(wait, int | float) or isinstance(wait, bool):
            wait = retry_after_seconds(resp.headers)
        return _STATUS.error(
            ctx.but(status=resp.status_code),
            detail=error_detail(resp, "detail", "title"),
            retry_after=None if wait is None else float(wait),
            subject=subject,
        )
