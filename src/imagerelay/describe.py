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
    from .catalog import Catalog
    from .receipt import Receipt
    from .references import Reference
    from .relay import Relay
    from .settings import VisionSettings

__all__ = ["described_prompt", "vision_model"]

_INSTRUCTION = (
    "Describe this reference image for an image generator, in at most {words} words: subject, "
    "composition, colours, lighting, style. Plain prose, no preamble."
)


def vision_model(vision: VisionSettings, catalog: Catalog) -> tuple[str, str]:
    """(provider, model) that describes references: `[vision]` where set, else the first provider
    of the catalog naming a `vision_model` (and that model). `ConfigError` when there is none."""
    from .errors import ConfigError

    if vision.provider is not None:
        spec = catalog.provider(vision.provider)
        model = vision.model or spec.vision_model
        if model is None:
            raise ConfigError(
                f"[vision] provider {spec.name!r} names no vision model: set [vision] model too"
            )
        return spec.name, model
    for spec in catalog.providers.values():
        if spec.vision_model is not None:
            return spec.name, vision.model or spec.vision_model
    raise ConfigError(
        "no provider of the catalog names a vision_model for the describe fallback: set [vision] "
        'provider and model, or use reference_fallback = "none"'
    )


async def described_prompt(
    relay: Relay, receipt: Receipt, failures: list[ImageRelayError], reference: Reference
) -> str | None:
    """The request's prompt followed by a description of `reference`; None when describing fails
    (the failure is in `failures`, the receipt's attempts and its notes: what was spent is kept)."""
    from .references import ImageLimits, prepare

    vision = relay.settings.vision
    start = relay.clock()
    name, model = vision.provider or "", vision.model or ""  # what the receipt names if unresolved
    try:
        name, model = vision_model(vision, relay.catalog)
        provider = relay.catalog.provider(name)
        backend = relay.backend(provider.name)
        lim = provider.reference_limits
        limits = ImageLimits(accept=frozenset(lim.accept), max_bytes=lim.max_bytes)
        image = await in_thread(lambda: prepare(reference, limits))
        start = relay.clock()
        text = await backend.describe(
            image, model=model, instruction=_INSTRUCTION.format(words=vision.max_words)
        )
    except ImageRelayError as exc:  # a config problem here must not lose the receipt of what was spent
        failures.append(exc)
        receipt.attempts.append(
            Attempt.failed(exc, provider=name, model=model, duration=relay.clock() - start)
        )
        receipt.notes.append(f"describe fallback failed: {exc.message}")
        return None
    receipt.attempts.append(
        Attempt(
            provider=name,
            model=model,
            outcome="success",
            duration_s=round(relay.clock() - start, 4),
            sent={"purpose": "describe reference 1"},
        )
    )
    receipt.described_reference = text
    receipt.notes.append(
        f"the reference was described by {name}:{model} and the description "
        "given to a text-only model: the result follows the description, not the image itself"
    )
    return f"{receipt.prompt}\n\nReference image, described: {text}"
