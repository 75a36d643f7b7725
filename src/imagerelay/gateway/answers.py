"""A receipt → OpenAI's images answer (`ImagesResponse`), with imagerelay's own object beside it."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ..receipt import Receipt

__all__ = ["answer", "image_name"]


def _usage(receipt: Receipt) -> dict[str, Any] | None:
    """Token usage summed over the calls that reported tokens (OpenAI's do), else None."""
    counted = [a.usage for a in receipt.attempts if a.outcome == "success" and "output_tokens" in a.usage]
    if not counted:
        return None

    def total(key: str, sub: str | None = None) -> int:
        out = 0
        for u in counted:
            value = (u.get(key) or {}).get(sub) if sub else u.get(key)
            out += int(value or 0)
        return out

    return {
        "input_tokens": total("input_tokens"),
        "output_tokens": total("output_tokens"),
        "total_tokens": total("total_tokens"),
        "input_tokens_details": {
            "text_tokens": total("input_tokens_details", "text_tokens"),
            "image_tokens": total("input_tokens_details", "image_tokens"),
        },
    }


def image_name(receipt: Receipt, index: int) -> str:
    """The file part of an image's gateway URL: `1.png`, `2.jpg`."""
    fmt = receipt.images[index - 1].format
    return f"{index}.{'jpg' if fmt == 'jpeg' else fmt}"


def answer(
    receipt: Receipt,
    *,
    response_format: Literal["b64_json", "url"],
    base_url: str,
    b64: list[str] | None,
    sandbox: bool,
) -> dict[str, Any]:
    """The OpenAI images answer for a receipt with at least one image; `b64` holds each image's
    bytes, base64-encoded, when the client asked for b64_json."""
    urls = [
        f"{base_url}/v1/images/{receipt.id}/{image_name(receipt, i)}"
        for i in range(1, len(receipt.images) + 1)
    ]
    data: list[dict[str, Any]] = []
    for i, image in enumerate(receipt.images):
        item: dict[str, Any] = {"b64_json": b64[i]} if b64 is not None else {"url": urls[i]}
        if image.revised_prompt:
            item["revised_prompt"] = image.revised_prompt
        data.append(item)
    first = receipt.images[0]
    try:
        created = int(datetime.fromisoformat(receipt.created_at).timestamp())
    except ValueError:
        created = 0
    out: dict[str, Any] = {
        "created": created,
        "data": data,
        "output_format": first.format,
        "size": f"{first.width}x{first.height}",
    }
    quality = receipt.request.get("quality")
    if quality:
        out["quality"] = quality
    usage = _usage(receipt)
    if usage is not None:
        out["usage"] = usage
    out["imagerelay"] = {
        "receipt_id": receipt.id,
        "receipt_url": f"{base_url}/v1/receipts/{receipt.id}",
        "provider": receipt.provider,
        "model": receipt.model,
        "sandbox": sandbox,
        "cost_usd": round(receipt.cost_usd, 6),
        "estimated_cost_usd": round(receipt.estimated_cost_usd, 6),
        "reported_cost_usd": None
        if receipt.reported_cost_usd is None
        else round(receipt.reported_cost_usd, 6),
        "possibly_billed_usd": round(receipt.possibly_billed_usd, 6),
        "notes": list(receipt.notes),
        "attempts": [
            {
                "provider": a.provider,
                "model": a.model,
                "outcome": a.outcome,
                "status": a.status,
                "error": a.error,
                "images": a.images,
                "duration_s": a.duration_s,
                "maybe_billed": a.maybe_billed,
            }
            for a in receipt.attempts
        ],
        "images": [
            {
                "url": urls[i],
                "width": image.width,
                "height": image.height,
                "format": image.format,
                "bytes": image.bytes,
                "sha256": image.sha256,
                "provider": image.provider,
                "model": image.model,
            }
            for i, image in enumerate(receipt.images)
        ],
    }
    return out
