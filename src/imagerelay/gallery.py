"""The review gallery: `DIR/gallery.html`, a self-contained contact sheet of an output directory.

Everything is inside the one file — thumbnails as data URIs, the CSS inline, no script — and a
Content-Security-Policy forbids loading anything else, so the page works offline, can be mailed
around, and can never call out. Every text comes from a prompt or a provider and is escaped.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import OutputError

__all__ = ["GALLERY_NAME", "Card", "GalleryResult", "collect_cards", "write_gallery"]

GALLERY_NAME = "gallery.html"
_THUMB_SIDE = 360


@dataclass
class Card:
    """One image on the contact sheet, with what is known about how it was made."""

    path: Path
    prompt: str
    provider: str
    model: str
    created_at: str
    cost_usd: float | None = None  # this image's share of its request's cost
    cost_reported: bool = False
    sandbox: bool = False  # drawn by the emulator: cost nothing
    width: int = 0
    height: int = 0
    name: str | None = None
    notes: list[str] = field(default_factory=list)
    degradations: list[str] = field(default_factory=list)  # failed attempts, retries, fallbacks
    fields: dict[str, Any] = field(default_factory=dict)  # the manifest's free-form fields, tags


@dataclass(frozen=True)
class GalleryResult:
    """What `write_gallery` wrote."""

    path: Path
    images: int
    failed_requests: int


def write_gallery(directory: Path | str) -> GalleryResult:
    """Write `directory/gallery.html` from the ledger and the sidecar receipts found there."""
    from .store import atomic_write

    directory = Path(directory)
    if not directory.is_dir():
        what = "is a file, not a directory" if directory.exists() else "does not exist"
        raise OutputError(f"output directory '{directory}' {what}: pass the --out of a generate or batch run")
    cards, failed = collect_cards(directory)
    thumbs = _thumbnails([c.path for c in cards])
    page = _render(directory, cards, thumbs, failed)
    path = directory / GALLERY_NAME
    try:
        atomic_write(path, page.encode("utf-8"))
    except OSError as exc:
        raise OutputError(
            f"cannot write '{path}' ({exc.strerror}): check the directory's permissions"
        ) from None
    return GalleryResult(path=path, images=len(cards), failed_requests=len(failed))


def collect_cards(directory: Path) -> tuple[list[Card], list[dict[str, str]]]:
    """Cards for every image (newest first), and the requests that produced none."""
    receipts = _receipts(directory)
    cards: list[Card] = []
    seen: set[Path] = set()
    failed: list[dict[str, str]] = []

    def add(raw_path: str, **fields: Any) -> None:  # each image file once, however often recorded
        path = _locate(directory, raw_path)
        if path is not None and path not in seen:
            seen.add(path)
            cards.append(Card(path=path, **fields))

    for receipt in receipts.values():
        images = receipt.get("images") or []
        if not images:
            errors = [a.get("error") or a.get("outcome", "") for a in receipt.get("attempts", [])]
            failed.append(
                {
                    "prompt": str(receipt.get("prompt", "")),
                    "created_at": str(receipt.get("created_at", "")),
                    "error": str(errors[-1] if errors else "no image was made"),
                }
            )
            continue
        reported = receipt.get("reported_cost_usd") is not None
        share = float(receipt.get("cost_usd") or 0.0) / len(images)
        metadata = dict(receipt.get("metadata") or {})
        name = metadata.pop("name", None)
        for image in images:
            add(
                str(image.get("path", "")),
                prompt=str(receipt.get("prompt", "")),
                provider=str(image.get("provider", "")),
                model=str(image.get("model", "")),
                created_at=str(receipt.get("created_at", "")),
                cost_usd=share,
                cost_reported=reported,
                sandbox=bool(receipt.get("sandbox")),
                width=int(image.get("width") or 0),
                height=int(image.get("height") or 0),
                name=str(name) if name else None,
                notes=[str(n) for n in receipt.get("notes", [])],
                degradations=_degradations(receipt.get("attempts", [])),
                fields=metadata,
            )
    for row in _unfinished(directory):  # saved, but the request was cut short before its receipt
        add(
            row["path"],
            prompt=row["prompt"],
            provider=row["provider"],
            model=row["model"],
            created_at=row["created_at"],
            cost_usd=row["cost_usd"],
            name=row["name"],
            notes=["the request was interrupted before its receipt was written; the image is complete"],
        )
    cards.sort(key=lambda c: c.created_at, reverse=True)
    return cards, failed


def _receipts(directory: Path) -> dict[str, dict[str, Any]]:
    """Every receipt known in `directory`, by id: the ledger's, then any sidecar not in it."""
    from .ledger import LEDGER_NAME, Ledger

    found: dict[str, dict[str, Any]] = {}
    if (directory / LEDGER_NAME).is_file():
        with Ledger.open(directory, create=False, read_only=True) as ledger:
            for body in ledger.receipts():
                receipt = json.loads(body)
                found[receipt["id"]] = receipt
    with os.scandir(directory) as entries:
        sidecars = sorted(e.path for e in entries if e.name.endswith(".json") and not e.name.startswith("."))
    for sidecar in sidecars:
        try:
            receipt = json.loads(Path(sidecar).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if isinstance(receipt, dict) and "id" in receipt and "prompt" in receipt and "images" in receipt:
            found.setdefault(str(receipt["id"]), receipt)
    return found


def _unfinished(directory: Path) -> list[dict[str, Any]]:
    from .ledger import LEDGER_NAME, Ledger

    if not (directory / LEDGER_NAME).is_file():
        return []
    with Ledger.open(directory, create=False, read_only=True) as ledger:
        return ledger.unfinished_images()


def _locate(directory: Path, recorded: str) -> Path | None:
    """The image file: as recorded when it still exists, else by name in `directory` (moved)."""
    if not recorded:
        return None
    path = Path(recorded)
    for candidate in (directory / path.name, path if path.is_absolute() else directory / path):
        if candidate.is_file():
            return candidate.resolve()
    return None


def _degradations(attempts: Iterable[dict[str, Any]]) -> list[str]:
    out = []
    for a in attempts:
        if a.get("outcome") == "success":
            continue
        status = f" HTTP {a['status']}" if a.get("status") else ""
        out.append(f"{a.get('provider')}:{a.get('model')} {a.get('outcome')}{status}")
    return out


def _thumbnails(paths: list[Path]) -> list[str | None]:
    """Data URIs of small copies (None for a file that cannot be read), made in parallel."""

    def one(path: Path) -> str | None:
        from .imaging import CorruptImage, thumbnail

        try:
            data = thumbnail(path.read_bytes(), _THUMB_SIDE)
        except (OSError, CorruptImage):
            return None
        mime = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
        return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"

    if not paths:
        return []
    # Pillow releases the GIL while decoding and resizing, so threads use every core.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
        return list(pool.map(one, paths))


# ---- the page ---------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light dark; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
body { margin: 0; padding: 1rem; }
header h1 { font-size: 1.25rem; margin: 0 0 .25rem; overflow-wrap: anywhere; }
header p { margin: 0 0 1rem; opacity: .75; }
.grid { display: grid; gap: 1rem; grid-template-columns: repeat(auto-fill, minmax(min(100%, 15rem), 1fr)); }
figure { margin: 0; border: 1px solid #8885; border-radius: .5rem; overflow: hidden;
         display: flex; flex-direction: column; }
figure img { display: block; width: 100%; height: auto; background: #8882; }
.missing { padding: 3rem 1rem; text-align: center; background: #8882; }
figcaption { padding: .6rem .7rem .8rem; font-size: .85rem; line-height: 1.35; overflow-wrap: anywhere; }
.name { font-weight: 600; margin: 0 0 .2rem; }
.prompt { margin: 0 0 .4rem; white-space: pre-wrap; }
.meta { margin: 0; opacity: .75; }
ul { margin: .4rem 0 0; padding-left: 1.1rem; }
.notes li { opacity: .85; }
.degraded li { color: #b35c00; }
dl { display: grid; grid-template-columns: auto 1fr; gap: 0 .5rem; margin: .4rem 0 0; }
dt { opacity: .75; } dd { margin: 0; }
section.failed { margin-top: 2rem; }
""".strip()


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _render(
    directory: Path, cards: list[Card], thumbs: list[str | None], failed: list[dict[str, str]]
) -> str:
    total = sum(c.cost_usd or 0.0 for c in cards)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = f"imagerelay gallery — {directory.resolve().name}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # Nothing may load from anywhere: the thumbnails are data URIs and the style is inline.
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'\">",
        '<meta name="referrer" content="no-referrer">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<header>",
        f"<h1>{_e(title)}</h1>",
        f"<p>{len(cards)} image(s), ${total:.4f} in all"
        + (f", {len(failed)} request(s) without an image" if failed else "")
        + f" — made {_e(now)}</p>",
        "</header>",
    ]
    if not cards:
        parts.append(f"<p>No images in {_e(directory)} yet.</p>")
    parts.append('<main class="grid">')
    for card, thumb in zip(cards, thumbs, strict=True):
        parts.append(_card(card, thumb))
    parts.append("</main>")
    if failed:
        parts.append('<section class="failed"><h2>Requests without an image</h2><ul>')
        for f in failed:
            parts.append(f"<li>{_e(_date(f['created_at']))} — {_e(f['prompt'])}: {_e(f['error'])}</li>")
        parts.append("</ul></section>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _card(card: Card, thumb: str | None) -> str:
    alt = _e(card.prompt[:200])
    if thumb is None:
        picture = f'<div class="missing">{_e(card.path.name)} cannot be read</div>'
    else:
        picture = f'<a href="{_e(card.path.name)}"><img src="{thumb}" alt="{alt}" loading="lazy"></a>'
    cost = ""
    if card.sandbox:
        cost = " · $0 (sandbox)"
    elif card.cost_usd is not None:
        cost = f" · ${card.cost_usd:.4f}" + ("" if card.cost_reported else " (est.)")
    size = f" · {card.width}×{card.height}" if card.width and card.height else ""
    lines = [f"<figure>{picture}<figcaption>"]
    if card.name:
        lines.append(f'<p class="name">{_e(card.name)}</p>')
    lines.append(f'<p class="prompt">{_e(card.prompt)}</p>')
    lines.append(f'<p class="meta">{_e(card.provider)}:{_e(card.model)}{_e(size)}{_e(cost)}</p>')
    lines.append(f'<p class="meta">{_e(_date(card.created_at))}</p>')
    if card.fields:
        lines.append("<dl>")
        for key, value in card.fields.items():
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            lines.append(f"<dt>{_e(key)}</dt><dd>{_e(shown)}</dd>")
        lines.append("</dl>")
    if card.degradations:
        lines.append(
            '<ul class="degraded">' + "".join(f"<li>{_e(d)}</li>" for d in card.degradations) + "</ul>"
        )
    if card.notes:
        lines.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in card.notes) + "</ul>")
    lines.append("</figcaption></figure>")
    return "".join(lines)


def _date(iso: str) -> str:
    try:
        when = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M UTC")
