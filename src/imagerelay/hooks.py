"""What a caller running requests for something larger (a batch, the gateway) hands `Relay.generate`,
and the events a run reports while it runs.

A plain `relay.generate(prompt)` needs none of this. A batch needs each image and each prediction
id recorded the moment it exists, a way back into what an interrupted run left behind, and a share
of a budget it has with other items; the gateway names its receipts and passes uploads it has
already verified. All of it travels as one `RunHooks`:

```python
hooks = RunHooks(name="fox-1", on_image=lambda image, receipt: print(image.path))
receipt = await relay.generate("a red fox in snow", hooks=hooks)
```
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backends.base import Adopt
    from .receipt import Receipt, SavedImage
    from .references import Reference

__all__ = [
    "Budget",
    "CallEvent",
    "Noted",
    "OnCallEvent",
    "OnImage",
    "OnPrediction",
    "PredictionCancelled",
    "PredictionCreated",
    "Reserve",
    "RunHooks",
    "Sent",
]


@dataclass(frozen=True)
class Sent:
    """A generation is about to be sent, with these parameters (as its receipt shows them: image
    data summarised). Reported first, so that a failed attempt's receipt says what was sent too."""

    params: dict[str, Any]


@dataclass(frozen=True)
class PredictionCreated:
    """An asynchronous job exists at the provider (a Replicate prediction), or was re-attached to:
    `model` is its `provider:model`, `id` what to resume it by. Record it before it is too late."""

    model: str
    id: str


@dataclass(frozen=True)
class PredictionCancelled:
    """An interrupted call cancelled its prediction: nothing more is paid for it."""

    model: str
    id: str


@dataclass(frozen=True)
class Noted:
    """Something the receipt's notes should say about the call (e.g. a resumed prediction that
    was gone and replaced)."""

    text: str


#: What a backend reports while a call runs.
CallEvent = Sent | PredictionCreated | PredictionCancelled | Noted
OnCallEvent = Callable[[CallEvent], None]
#: Called after each image is on disk, with the receipt it belongs to (a batch's ledger row).
OnImage = Callable[["SavedImage", "Receipt"], None]
#: Called the moment a prediction exists (a batch records its id, to resume it after a kill).
OnPrediction = Callable[[PredictionCreated], None]
#: Asked for `amount` more USD of a shared budget; True when granted.
Reserve = Callable[[float], bool]


@dataclass(frozen=True)
class Budget:
    """A request's share of a budget several requests draw on (a batch's): it holds `reserved`
    USD already, and asks `reserve` for more before any call whose worst case would need it. A call
    the budget refuses is not made."""

    reserve: Reserve
    reserved: float = 0.0
    #: What the shared budget has left that no request holds (for messages), when known.
    left: Callable[[], float] | None = None


@dataclass(frozen=True)
class RunHooks:
    """Everything `Relay.generate` takes besides the request and its cost cap.

    - `receipt_id`: the receipt's id (default: a new one), known to the caller before the run.
    - `name`: stands for the prompt in file names (a batch item's name).
    - `on_image`, `on_prediction`: called the moment an image is on disk, or a prediction exists.
    - `resume` ({`provider:model`: prediction id}): re-attach to what an interrupted earlier run of
      the same request created instead of paying for it again. Giving it (even empty) marks the
      run as resumable: interrupted, it leaves its predictions running and writes no receipt.
    - `adopt`: look for a prediction an interrupted run made but never recorded.
    - `budget`: the request's share of a shared budget.
    - `loaded`: references (and the mask) already loaded and verified, by the source string the
      request names them with (uploads, which have no path or URL of their own).
    """

    receipt_id: str | None = None
    name: str | None = None
    on_image: OnImage | None = None
    on_prediction: OnPrediction | None = None
    resume: Mapping[str, str] | None = None
    adopt: Adopt | None = None
    budget: Budget | None = None
    loaded: Mapping[str, Reference] = field(default_factory=dict)
