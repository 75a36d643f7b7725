"""The images of a gateway request: uploaded files and data URIs decoded and verified at once,
URLs kept for the relay to fetch under its own rules — never a path on this machine."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .errors import GatewayError
from .inputs import decode_data_uri, read_upload, upload_name

if TYPE_CHECKING:
    from ..references import Reference

__all__ = ["image_url", "own_references", "uploaded", "url_or_data"]


async def url_or_data(value: Any, *, param: str, limit: int, loaded: dict[str, Reference], label: str) -> str:
    """A reference given as a URL (fetched later by the relay, under its URL rules) or a data URI
    (decoded and verified now); returns the source string the request names it with."""
    if not isinstance(value, str) or not value:
        raise GatewayError(400, f"{param} must be an https URL or a data: URI", param=param)
    if value[:5].lower() == "data:":
        data = decode_data_uri(value, limit=limit, param=param)
        source = f"data:{len(loaded) + 1}"
        await _load(data, source=source, label=label, param=param, loaded=loaded)
        return source
    if value[:8].lower() == "https://" or value[:7].lower() == "http://":
        return value
    # Never a path: a client must not make this machine read its own files.
    raise GatewayError(400, f"{param} must be an https URL or a data: URI", param=param, code="invalid_image")


async def own_references(own: dict[str, Any], limit: int, loaded: dict[str, Reference]) -> list[str]:
    """`imagerelay.references`: URLs or data URIs, as `url_or_data` reads each."""
    refs = own.get("references") or []
    if isinstance(refs, str):
        refs = [refs]
    if not isinstance(refs, list):
        raise GatewayError(400, "imagerelay.references must be a list of URLs", param="imagerelay.references")
    return [
        await url_or_data(
            r, param=f"imagerelay.references[{i}]", limit=limit, loaded=loaded, label="reference"
        )
        for i, r in enumerate(refs)
    ]


async def uploaded(
    uploads: list[tuple[str, Any]], *, limit: int, loaded: dict[str, Reference]
) -> tuple[list[str], str | None]:
    """The images (`image`, repeated, or `image[]`) and the mask of a multipart edit, decoded and
    verified now: (their sources, in order; the mask's source or None)."""
    refs: list[str] = []
    mask: str | None = None
    for key, upload in uploads:
        base = key.split("[", 1)[0]
        if base not in ("image", "mask"):
            raise GatewayError(
                400, f"unexpected file field {key[:40]!r}: send image, image[] or mask", param=key
            )
        is_mask = base == "mask"
        if is_mask and mask is not None:
            raise GatewayError(400, "only one mask may be sent", param="mask")
        data = await read_upload(upload, limit=limit, param=base)
        index = len(refs) + 1
        source = (
            f"upload:mask:{upload_name(upload, 'mask')}"
            if is_mask
            else (f"upload:{index}:{upload_name(upload, f'image-{index}')}")
        )
        label = "mask" if is_mask else f"image {index}"
        await _load(data, source=source, label=label, param=base, loaded=loaded)
        if is_mask:
            mask = source
        else:
            refs.append(source)
    return refs, mask


def image_url(item: Any, param: str) -> Any:
    if not isinstance(item, dict):
        raise GatewayError(400, f"{param} must be an object with image_url", param=param)
    if item.get("file_id") is not None:
        raise GatewayError(
            400, "file ids are not supported here: send image_url (https or data:)", param=f"{param}.file_id"
        )
    unknown = sorted(set(item) - {"image_url", "file_id"})
    if unknown:
        raise GatewayError(
            400, f"unknown parameter {unknown[0][:40]!r} in {param}", param=f"{param}.{unknown[0][:40]}"
        )
    return item.get("image_url")


async def _load(data: bytes, *, source: str, label: str, param: str, loaded: dict[str, Reference]) -> None:
    """Decode and verify an image now (off the event loop), kept in `loaded` under `source`."""
    from ..errors import InvalidReference
    from ..references import reference_from_bytes

    try:
        loaded[source] = await asyncio.to_thread(reference_from_bytes, data, source=source, label=label)
    except InvalidReference as exc:
        raise GatewayError(400, exc.message, param=param, code="invalid_image") from None
