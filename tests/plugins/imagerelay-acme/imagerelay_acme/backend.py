"""The Acme Images wire API: one JSON POST, base64 PNGs in the answer. Built from imagerelay's
shared error layer: only what Acme says differently is written here."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict

from imagerelay.backends.base import Backend, Call, CallResult, Deliver, Delivered, OnEvent
from imagerelay.backends.http import (
    StatusTable,
    decode_base64_image,
    error_detail,
    httpx_errors,
    json_answer,
    retry_after_seconds,
    wire_params,
)
from imagerelay.errors import ContentBlocked, EmptyResult
from imagerelay.hooks import Sent
from imagerelay.settings import ProviderSettings

#: Acme answers 451 when it will not draw a prompt; every other status means what it usually does.
STATUS = StatusTable({451: (ContentBlocked, "{where} refused the prompt ({label}): {detail}")})


class AcmeSettings(ProviderSettings):
    """`[providers.acme]`: the common settings, and Acme's own rendering pass."""

    model_config = ConfigDict(extra="forbid")

    finish: Literal["draft", "final"] = "draft"


class AcmeBackend(Backend):
    """POST /render {text, count, shape, finish} → {"render_id", "pictures": [{"png": base64}]}."""

    async def generate(self, call: Call, deliver: Deliver, on_event: OnEvent) -> CallResult:
        settings = AcmeSettings.model_validate(self.settings.model_dump())
        body: dict[str, Any] = {**wire_params(call, ("aspect_ratio",)), "finish": settings.finish}
        on_event(Sent(body))  # a failed attempt's receipt says what was sent, too
        ctx = self.ctx(call.model.id)
        headers = {"X-Acme-Key": self.key()}
        with httpx_errors(ctx, billed_on_timeout=True):
            resp = await self.http.post(
                self.base_url + "/render", json=body, headers=headers, timeout=settings.timeout
            )
        ctx = ctx.but(status=resp.status_code, request_id=resp.headers.get("acme-render-id"))
        if resp.status_code != 200:
            detail = error_detail(resp, "say")
            raise STATUS.error(ctx, detail=detail, retry_after=retry_after_seconds(resp.headers))
        data = json_answer(resp, ctx)
        pictures = [p["png"] for p in data.get("pictures") or [] if isinstance(p, dict) and p.get("png")]
        if not pictures:
            raise ctx.error(EmptyResult, f"{ctx.where} answered 200 with no picture")
        for png in pictures:
            raw, info = decode_base64_image(png, ctx, "a picture")
            await deliver(Delivered(data=raw, mime=info.mime, info=info))
        return CallResult(images=len(pictures), request_id=ctx.request_id, sent=body)


__all__ = ["AcmeBackend", "AcmeSettings"]
