"""Checks against Gemini's model listing (`GET {base}/models`, every page), read through the
google-genai SDK's `models.list` as the backend reads everything else: image models gone or new,
and the token limits the catalog records.

The listing holds every model of the API (text, embedding …): the image models are those whose id
names an image model (`…-image…`, `…nano-banana…`) and that take `generateContent`. A model the
catalog retires is reported when it is still listed; a deprecated one is not, since Google keeps
deprecated models listed (and served to the projects that used them) past their shutdown date.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .drift import Asking, Drift, Refused, retire

if TYPE_CHECKING:
    from google.genai import types

__all__ = ["gemini", "is_image_model"]

#: Models asked for a page (Google's default is 50, its most 1000).
_PAGE_SIZE = 100
_LIMITS = {"input": "inputTokenLimit", "output": "outputTokenLimit"}


def is_image_model(model_id: str, methods: list[str] | None) -> bool:
    """An image model of the listing: its id says so and it takes `generateContent`."""
    named = "-image" in model_id or "nano-banana" in model_id
    return named and (methods is None or "generateContent" in methods)


async def gemini(ask: Asking) -> None:
    """Compare the catalog with Gemini's model listing: which image models exist, their limits."""
    spec, check, today = ask.spec, ask.check, ask.today
    check.url = f"{ask.base}/models"
    listed = {m.name.removeprefix("models/"): m for m in await _list(ask) if m.name}
    check.asked = True
    images = {mid: m for mid, m in listed.items() if is_image_model(mid, m.supported_actions)}
    known = set(spec.models) | {a for m in spec.models.values() for a in m.aliases}
    for m in spec.models.values():
        gone = m.unavailable_reason(today)
        if gone is not None:
            if m.status == "retired" and m.id in images:
                check.drifts.append(Drift(m.ref, "listed", gone, "listed by GET models"))
            continue
        entry = images.get(m.id)
        if entry is None:
            check.drifts.append(Drift(m.ref, "gone", "active", "not in GET models", retire(today)))
            continue
        check.checked.append(m.ref)
        theirs = {"input": entry.input_token_limit, "output": entry.output_token_limit}
        changed = {
            k: v
            for k, v in theirs.items()
            if k in m.token_limits and v is not None and v != m.token_limits[k]
        }
        if changed:
            ours = ", ".join(f"{k} {m.token_limits[k]}" for k in changed)
            said = ", ".join(f"{_LIMITS[k]} {v}" for k, v in changed.items())
            fix: dict[str, Any] = {"token_limits": {**m.token_limits, **changed}}
            check.drifts.append(Drift(m.ref, "limit", f"token limits {ours}", said, fix))
    for mid in sorted(set(images) - known):
        check.drifts.append(Drift(f"{spec.name}:{mid}", "new", "no such model", "listed by GET models"))


async def _list(ask: Asking) -> list[types.Model]:
    """Every model of every page, through the SDK; a refused key or another error is `Refused`."""
    import httpx2
    from google import genai
    from google.genai import errors, types

    transport = httpx2.AsyncClient()
    client = genai.Client(
        vertexai=False,  # explicit, as the backend does: the environment cannot redirect this
        api_key=ask.key,
        http_options=types.HttpOptions(
            base_url=ask.base,  # it carries the version (…/v1beta), as the backend's does
            api_version="",
            timeout=round((ask.http.timeout.read or 30.0) * 1000),
            retry_options=None,
            httpx_async_client=transport,
        ),
    )
    try:
        pager = await client.aio.models.list(config={"page_size": _PAGE_SIZE})
        return [m async for m in pager]
    except errors.APIError as exc:
        # A wrong key is a 400 INVALID_ARGUMENT whose reason is API_KEY_INVALID; none is a 403.
        if exc.code in (401, 403) or (
            exc.code == 400 and "API_KEY_INVALID" in json.dumps(exc.details, default=str)
        ):
            raise Refused(f"gemini refused the key ({exc.code}): check it") from None
        raise Refused(f"gemini answered {exc.code} {exc.status or ''} to {ask.check.url}") from None
    except httpx2.HTTPError as exc:
        raise Refused(f"could not ask gemini: {type(exc).__name__} ({ask.check.url})") from None
    finally:
        await transport.aclose()
