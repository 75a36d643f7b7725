"""The store: image bytes on disk first (atomically), then the receipt beside them.

An image that was paid for must never be lost to a later error, so `write_image` is called the
moment the bytes are in hand and does nothing but write them (temp file, fsync, rename). Only
after that does `finalize` write the sidecar receipt.

When the output directory cannot take a paid image (disk full, read-only, gone), the bytes go to
a rescue directory outside it — `<user cache dir>/imagerelay/rescue/<request id>/`, else the
system's temp directory — and `failure` says why; the relay then starts no further call.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from . import naming
from .errors import OutputError
from .naming import slugify
from .receipt import Receipt, SavedImage

if TYPE_CHECKING:
    from .backends.base import Delivered
    from .imaging import ImageInfo

__all__ = ["Store", "atomic_write", "provenance", "save_delivered", "slugify", "sync_directory"]

log = logging.getLogger("imagerelay")


def _create_temp(directory: Path, suffix: str) -> tuple[int, str]:
    """A new, empty `.tmp-*` file in `directory`, opened for writing.

    Unlike `tempfile.mkstemp` (always 0600), the mode is 0666 less the umask, as for any file a
    program creates: the final file is this one renamed, so it must already have the mode the
    user expects (0644 under umask 022).
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".tmp-{secrets.token_hex(8)}{suffix}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name in {directory}")


def atomic_write(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Write `data` to `path` so that a reader (or a crash) sees the old file or the new one, whole.

    Temp file, fsync, rename, and an fsync of the directory that makes the rename durable — unless
    `sync_dir` is False: then the caller makes it durable with `sync_directory`, one fsync for the
    several files it writes there. The file's mode follows the umask.
    """
    fd, tmp = _create_temp(path.parent, path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_dir:
        sync_directory(path.parent)


def sync_directory(directory: Path) -> None:
    """Make the renames (new names) in `directory` durable: one fsync covers all of them."""
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


#: In each rescue directory: the output directory its files were meant for (resolved), so that a
#: later run into that directory finds them even when its ledger could not record them.
RESCUE_ORIGIN = ".origin"


def rescue_roots() -> list[Path]:
    """The directories holding one rescue directory per request, in order of preference."""
    from platformdirs import user_cache_path

    return [user_cache_path("imagerelay") / "rescue", Path(tempfile.gettempdir()) / "imagerelay-rescue"]


def rescue_dirs(receipt_id: str) -> list[Path]:
    """Where bytes the output directory could not take are kept, in order of preference."""
    return [root / receipt_id for root in rescue_roots()]


class Store:
    """Writes images and receipts into one output directory."""

    def __init__(self, out_dir: Path | str, *, embed_metadata: bool = True) -> None:
        self.out_dir = Path(out_dir)
        self.embed_metadata = embed_metadata
        #: Why the output directory could not take a file (set at the first failure), else None.
        self.failure: str | None = None
        #: Called with each finished receipt (e.g. to add a ledger row).
        self.on_receipt: list[Callable[[Receipt], None]] = []
        #: Images were renamed into the directory since its last fsync (see `sync`).
        self.unsynced = False

    def ensure(self) -> None:
        """Create the directory and prove it is writable — before any money is spent."""
        d = self.out_dir
        if d.exists() and not d.is_dir():
            raise OutputError(f"output path '{d}' is a file, not a directory: pass --out DIR")
        try:
            d.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=d, prefix=".probe-"):
                pass
        except OSError as exc:
            raise OutputError(
                f"output directory '{d}' is not writable ({exc.strerror}): "
                "pass --out with a writable directory"
            ) from exc

    def check(self) -> None:
        """`ensure`'s refusals without creating or writing anything (for a dry run): the path is
        a file, or the nearest directory that exists cannot be written."""
        d = self.out_dir
        if d.exists() and not d.is_dir():
            raise OutputError(f"output path '{d}' is a file, not a directory: pass --out DIR")
        existing = d.absolute()
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        why = "Not a directory" if not existing.is_dir() else None
        if why is None and not os.access(existing, os.W_OK | os.X_OK):
            why = "Permission denied"
        if why is not None:
            raise OutputError(
                f"output directory '{d}' is not writable ({why}): pass --out with a writable directory"
            )

    def stem(self, prompt: str, receipt_id: str, index: int) -> str:
        """`20261124-193012-a-red-fox-in-snow-1a2b3c4d-1`: sortable, readable, unique (`naming.stem`)."""
        return naming.stem(prompt, receipt_id, index)

    def write_image(
        self,
        data: bytes,
        *,
        stem: str,
        fmt: str,
        info: ImageInfo | None = None,
        provenance: tuple[str, dict[str, str]] | None = None,
        receipt_id: str = "unknown",
    ) -> tuple[Path, bytes, str | None]:
        """Write delivered bytes at once, in one durable write; returns (path, bytes on disk, note).

        With `provenance` (description, fields) and `info` (what `imaging.probe` found), the
        summary is embedded first — a pure byte splice that never re-encodes pixels. If that
        fails for any reason the delivered bytes are written unchanged and the note says why:
        nothing may stand between a paid-for image and the disk.
        """
        path = self.out_dir / naming.image_name(stem, fmt)
        # The slug cannot contain separators, but refuse anything that resolves outside anyway.
        if path.resolve().parent != self.out_dir.resolve():
            raise OutputError(f"refusing to write outside the output directory: {path}")
        out, note = data, None
        if self.embed_metadata and provenance is not None and info is not None:
            from .imaging import embed_metadata

            description, fields = provenance
            try:
                out = embed_metadata(data, info, description=description, fields=fields)
            except Exception as exc:
                note = f"metadata not embedded in {path.name}: {type(exc).__name__}: {exc}"
        try:
            atomic_write(path, out, sync_dir=False)
            self.unsynced = True
        except OSError as exc:
            self.failure = self.failure or f"cannot write '{path}' ({_reason(exc)})"
            rescued = self.rescue(path.name, out, receipt_id)
            if rescued is None:
                raise OutputError(
                    f"cannot write '{path}' ({_reason(exc)}), nor keep it in a rescue directory"
                ) from exc
            return rescued, out, f"{path.name} could not be written into '{self.out_dir}': kept at {rescued}"
        return path, out, note

    def sync(self) -> None:
        """Make the names of the images written so far durable, with one fsync of the directory.

        Each image's bytes are fsynced as it is written; the directory, which holds its name, is
        synced once for an image and its receipt together — and before anyone is told an image
        exists (an `on_image` hook) or any further call is paid for, so nothing paid for rests on
        a name that a power cut could take back."""
        if self.unsynced:
            self.unsynced = False
            sync_directory(self.out_dir)

    def rescue(self, name: str, data: bytes, receipt_id: str) -> Path | None:
        """Keep `data` as `name` in the first rescue directory that takes it; None if none does."""
        for directory in rescue_dirs(receipt_id):
            try:
                if directory.resolve().is_relative_to(self.out_dir.resolve()):
                    continue
                directory.mkdir(parents=True, exist_ok=True)
                origin = directory / RESCUE_ORIGIN
                if not origin.exists():
                    atomic_write(origin, str(self.out_dir.resolve()).encode())
                atomic_write(directory / name, data)
            except OSError:
                continue
            return directory / name
        return None

    def finalize(self, receipt: Receipt) -> None:
        """Write the sidecar receipt beside each image, then run the hooks."""
        self.write_receipts(receipt)
        self.recorded(receipt)

    def write_receipts(self, receipt: Receipt) -> None:
        """Write the sidecar receipt beside each image (touching nothing but the disk and `receipt`,
        so it may run in a worker thread)."""
        for image in receipt.images:
            image.receipt_path = str(Path(image.path).with_suffix(".json"))
        body = receipt.model_dump_json(indent=2).encode()
        for image in receipt.images:
            assert image.receipt_path is not None
            target = Path(image.receipt_path)
            here = target.parent == self.out_dir  # beside an image kept elsewhere: synced at once
            try:
                atomic_write(target, body, sync_dir=not here)
                self.unsynced = self.unsynced or here
            except OSError as exc:
                self.failure = self.failure or f"cannot write '{target}' ({_reason(exc)})"
                kept = self.rescue(target.name, body, receipt.id)
                if kept is not None:
                    image.receipt_path = str(kept)
                receipt.notes.append(
                    f"receipt not written beside {Path(image.path).name} ({_reason(exc)})"
                    + (f": kept at {kept}" if kept is not None else "")
                )
        self.sync()

    def write_failure_receipt(self, receipt: Receipt) -> Path | None:
        """Keep a receipt of a request that produced nothing (attempts and costs still matter)."""
        path: Path | None = self.out_dir / f"{self.stem(receipt.prompt, receipt.id, 0)}-failed.json"
        assert path is not None
        body = receipt.model_dump_json(indent=2).encode()
        try:
            atomic_write(path, body)
        except OSError as exc:
            self.failure = self.failure or f"cannot write '{path}' ({_reason(exc)})"
            path = self.rescue(path.name, body, receipt.id)
        return path

    def recorded(self, receipt: Receipt) -> None:
        """Run the `on_receipt` hooks (the ledger learns what was tried and may be billed, too).

        A hook that raises is logged and skipped: the images are on disk and their receipts beside
        them, so a failing hook must not turn a paid, saved result into an error."""
        for hook in self.on_receipt:
            try:
                hook(receipt)
            except Exception:
                log.exception("the receipt hook %s failed for receipt %s", _name(hook), receipt.id)


def _name(hook: Callable[..., object]) -> str:
    return getattr(hook, "__qualname__", None) or type(hook).__name__


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def provenance(
    receipt: Receipt, *, provider: str, model: str, stem: str, delivered_sha256: str
) -> tuple[str, dict[str, str]]:
    """The description and fields embedded in an image: who made it, from what, where its receipt is."""
    fields = {
        "provider": provider,
        "model": model,
        "prompt": receipt.prompt,
        "seed": "" if receipt.seed is None else str(receipt.seed),
        "receipt": f"{stem}.json",
        "sha256_delivered": delivered_sha256,
        "created": receipt.created_at,
        "receipt_id": receipt.id,
    }
    return f"{receipt.prompt} — generated by {provider}:{model} via imagerelay", fields


def save_delivered(
    store: Store, receipt: Receipt, image: Delivered, *, provider: str, model: str, name: str, index: int
) -> tuple[SavedImage, str | None]:
    """Bytes first: write one delivered image, with its provenance, before anything else can fail.

    Returns the image as the receipt lists it, and a note when its metadata could not be embedded.
    Touches nothing but the disk (the caller adds the image to `receipt`), so it may run in a worker
    thread. `name` stands for the prompt in the file name; `index` is the image's place (1-based).
    """
    from .imaging import CorruptImage, probe

    stem = store.stem(name, receipt.id, index)
    info: ImageInfo | None = image.info
    if info is None:
        try:
            info = probe(image.data)
        except CorruptImage:
            info = None
    fmt = info.format if info else _format_of(image.mime)
    delivered = hashlib.sha256(image.data).hexdigest()
    label = provenance(receipt, provider=provider, model=model, stem=stem, delivered_sha256=delivered)
    path, written, note = store.write_image(
        image.data, stem=stem, fmt=fmt, info=info, provenance=label, receipt_id=receipt.id
    )
    saved = SavedImage(
        path=str(path),
        sha256=delivered if written is image.data else hashlib.sha256(written).hexdigest(),
        delivered_sha256=delivered,
        width=info.width if info else 0,
        height=info.height if info else 0,
        format=fmt,
        bytes=len(written),
        provider=provider,
        model=model,
        revised_prompt=image.revised_prompt if image.revised_prompt != receipt.prompt else None,
    )
    return saved, note


def _format_of(mime: str | None) -> str:
    return {"image/png": "png", "image/webp": "webp", "image/gif": "gif"}.get(mime or "", "jpeg")
