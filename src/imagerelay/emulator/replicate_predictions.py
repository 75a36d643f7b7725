"""Replicate predictions as the emulator keeps them: each one's status a function of the time since
it was created (and of a cancel), the uploads, and how a prediction looks on the wire."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from imagerelay.emulator import draw
from imagerelay.emulator.replicate_models import ModelSpec, output_size

if TYPE_CHECKING:
    from PIL.Image import Image

    from imagerelay.emulator.wire import Call

__all__ = ["TERMINAL", "Prediction", "State", "Upload", "iso", "new_id", "snapshot"]

TERMINAL = ("succeeded", "failed", "canceled", "aborted")


@dataclass
class Upload:
    """A file sent to `POST /v1/files`."""

    id: str
    name: str
    content_type: str
    data: bytes
    metadata: dict[str, Any]
    created_at: str


@dataclass
class Prediction:
    """One prediction; its status is a function of time since creation (and of cancel)."""

    id: str
    model: str
    spec: ModelSpec
    input: dict[str, Any]  # as sent
    effective: dict[str, Any]  # with defaults
    created: float  # time.monotonic()
    created_at: str
    duration: float | None  # None: never finishes on its own
    outcome: str  # the terminal status it reaches
    error: str | None
    empty: bool = False
    truncate: bool = False
    reference: Image | None = None
    canceled_at: float | None = None
    output: Any = None
    rendered: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def status(self, now: float) -> str:
        elapsed = now - self.created
        if self.canceled_at is not None:
            return "canceled"
        if self.duration is not None and elapsed >= self.duration:
            return self.outcome
        return "starting" if elapsed < self.start_delay() else "processing"

    def start_delay(self) -> float:
        """Seconds spent `starting` (booting) before `processing`."""
        return 0.05 if self.duration is None else self.duration * 0.25

    def finished_at(self) -> float | None:
        if self.canceled_at is not None:
            return self.canceled_at
        return None if self.duration is None else self.created + self.duration


class State:
    """Predictions and uploads of one emulator; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.predictions: dict[str, Prediction] = {}
        self.uploads: dict[str, Upload] = {}

    def add(self, prediction: Prediction) -> None:
        with self._lock:
            self.predictions[prediction.id] = prediction

    def prediction(self, pid: str) -> Prediction | None:
        with self._lock:
            return self.predictions.get(pid)

    def forget(self, pid: str) -> None:
        """Answer 404 for `pid` from now on, as Replicate does for a prediction it no longer
        keeps (or one made under another account)."""
        with self._lock:
            self.predictions.pop(pid, None)

    def every(self) -> list[Prediction]:
        """Every prediction, at this moment."""
        with self._lock:
            return list(self.predictions.values())

    def add_upload(self, upload: Upload) -> None:
        with self._lock:
            self.uploads[upload.id] = upload

    def upload(self, uid: str) -> Upload | None:
        with self._lock:
            return self.uploads.get(uid)

    def clear(self) -> None:
        with self._lock:
            self.predictions.clear()
            self.uploads.clear()


def new_id() -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(26))


def iso(wall: float) -> str:
    return dt.datetime.fromtimestamp(wall, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def wall(mono: float) -> float:
    return time.time() - (time.monotonic() - mono)


def render_output(call: Call, p: Prediction) -> Any:
    if p.empty:
        return None if p.spec.single else []
    inp = p.effective
    fmt = inp.get("output_format", "webp")
    ext = "jpg" if fmt == "jpg" else fmt
    size = output_size(p.spec, inp, p.reference)
    count = 1 if p.spec.single else int(inp.get("num_outputs", 1))
    urls = []
    for index in range(count):
        data = draw.render(
            prompt=str(inp.get("prompt", "")),
            model=p.model,
            size=size,
            seed=inp.get("seed"),
            index=index,
            reference=p.reference,
            fmt=fmt,
            quality=int(inp.get("output_quality", 80)),
        )
        if p.truncate:
            data = data[: len(data) // 2]
        name = "output" if p.spec.single else f"out-{index}"
        urls.append(call.emu.host_file("replicate", data, draw.MIME[fmt], f"{name}.{ext}"))
    return urls[0] if p.spec.single else urls


def snapshot(call: Call, p: Prediction, force_starting: bool = False) -> dict[str, Any]:
    now = time.monotonic()
    status = "starting" if force_starting else p.status(now)
    with p.lock:
        if status == "succeeded" and not p.rendered:
            p.output = render_output(call, p)
            p.rendered = True
    base = f"{call.emu.url}/replicate/v1/predictions/{p.id}"
    finished = p.finished_at()
    terminal = status in TERMINAL
    started = status != "starting"
    seed = p.effective.get("seed", int(hashlib.sha256(p.id.encode()).hexdigest()[:6], 16))
    logs = f"Using seed: {seed}\nRunning prediction...\n" if started else ""
    metrics: dict[str, Any] = {}
    if terminal and finished is not None:
        logs += "Prediction finished.\n" if status == "succeeded" else ""
        metrics = {"predict_time": round(max(0.0, finished - p.created), 3)}
    return {
        "id": p.id,
        "model": p.model,
        "version": hashlib.sha256(p.model.encode()).hexdigest(),
        "input": p.input,
        "logs": logs,
        "output": p.output if status == "succeeded" else None,
        "data_removed": False,
        "error": p.error if status in ("failed", "aborted") else None,
        "status": status,
        "source": "api",
        "created_at": p.created_at,
        "started_at": iso(wall(p.created + p.start_delay())) if started else None,
        "completed_at": iso(wall(finished)) if terminal and finished is not None else None,
        "metrics": metrics,
        "urls": {
            "get": base,
            "cancel": f"{base}/cancel",
            "stream": f"{base}/stream",
            "web": f"{call.emu.url}/p/{p.id}",
        },
    }
