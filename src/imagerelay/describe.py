"""The describe fallback: when no model that takes reference images can serve a request, the
vision model (`[vision]`) describes the first reference in words, and a text-only model is given
the prompt with that description. The receipt says so: the result follows the description, not
the image itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ImageRelayError
from .offload import in_thread
from .receipt import Attempt

if TYPE_CHECKING:
    from .receipt import Receipt
    from .references import Reference
    from .relay import Relay

__all__ = ["described_prompt"]

_INSTRUCTION = (
    "Describe this reference image for an image generator, in at most {words} words: subject, "
    "composition, colours, lighting, style. Plain prose, no preamble."
)


async def described_prompt(
    relay: Relay, receipt: Receipt, failures: list[ImageRelayError], reference: Reference
) -> str | None:
    """The request's prompt followed by a description of `reference`; None when describing fails
    (the failure is in `failures`, the receipt's attempts and its notes: what was spent is kept)."""
    from .references import ImageLimits, prepare

    vision = relay.settings.vision
    start = relay.clock()
    try:
        provider = relay.catalog.provider(vision.provider)
        backend = relay.backend(provider.name)
        lim = provider.reference_limits
        limits = ImageLimits(accept=frozenset(lim.accept), max_bytes=lim.max_bytes)
        image = await in_thread(lambda: prepare(reference, limits))
        start = relay.clock()
        text = await backend.describe(
            image, model=vision.model, instruction=_INSTRUCTION.format(words=vision.max_words)
        )
    except ImageRelayError as exc:  # a config problem here must not lose the receipt of what was spent
        failures.append(exc)
        receipt.attempts.append(
            Attempt.failed(exc, provider=vision.provider, model=vision.model, duration=relay.clock() - start)
        )
        receipt.notes.append(f"describe fallback failed: {exc.message}")
        return None
    receipt.attempts.append(
        Attempt(
            provider=vision.provider,
            model=vision.model,
            outcome="success",
            duration_s=round(relay.clock() - start, 4),
            sent={"purpose": "describe reference 1"},
        )
    )
    receipt.described_reference = text
    receipt.notes.append(
        f"the reference was described by {vision.provider}:{vision.model} and the description "
        "given to a text-only model: the result follows the description, not the image itself"
    )
    return f"{receipt.prompt}\n\nReference image, described: {text}"
