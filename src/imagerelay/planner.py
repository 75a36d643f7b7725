"""The planner: one request → an ordered list of candidate models, each with the request
translated for that model and a note for every change, plus the reason each other model was
left out. Planning spends nothing and sends nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .catalog import Catalog, ModelSpec, ProviderSpec
from .errors import ConfigError, InvalidRequest, MissingKey
from .extras import check_extras
from .pricing import QUALITY_ORDER, CostEstimate, estimate_cost
from .request import ImageRequest
from .settings import Settings
from .sizing import output_size, resolution_for, shape

__all__ = ["Candidate", "Exclusion", "Plan", "plan_request", "translate"]

#: Canonical output format → the names some APIs use instead.
_FORMAT_ALIASES = {"jpeg": ("jpeg", "jpg"), "png": ("png",), "webp": ("webp",)}


@dataclass
class Candidate:
    """One model to try, with the request as that model will receive it."""

    model: ModelSpec
    provider: ProviderSpec
    #: Images per call: n=6 on a model that takes 4 per call → [4, 2].
    calls: list[int]
    params: dict[str, Any]
    extras: dict[str, Any]
    notes: list[str]
    #: What one call costs: expected, and at worst (where the provider decides after the call).
    cost: CostEstimate
    #: True when this candidate serves a reference request from a description of the reference.
    described: bool = False

    @property
    def ref(self) -> str:
        return self.model.ref

    @property
    def estimate_usd(self) -> float:
        """Expected USD of every call of this candidate."""
        return self.cost.total(self.calls)

    @property
    def worst_usd(self) -> float:
        """The most every call of this candidate can cost together."""
        return self.cost.worst_total(self.calls)

    def cost_text(self) -> str:
        """ "$0.0412", or "$0.0412 (at most $0.0527)" where the worst case is dearer."""
        shown, worst = f"${self.estimate_usd:.4f}", f"${self.worst_usd:.4f}"
        return shown if worst == shown else f"{shown} (at most {worst})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.ref,
            "calls": self.calls,
            "params": self.params,
            "extras": self.extras,
            "notes": self.notes,
            "estimate_usd": round(self.estimate_usd, 6),
            "worst_usd": round(self.worst_usd, 6),
            "described": self.described,
        }


@dataclass(frozen=True)
class Exclusion:
    """A model left out of the plan, and why."""

    ref: str
    reason: str
    over_budget: bool = False
    #: Left out only for now: it failed recently and is cooling down.
    cooling: bool = False
    #: For a model over the cost limit: the most it could cost (what the limit was held against),
    #: and its estimate as the plan shows it ("$0.0412 (at most $0.0527)").
    worst_usd: float | None = None
    cost_text: str = ""


@dataclass
class Plan:
    """Candidates in the order they will be tried, and the models left out."""

    request: ImageRequest
    candidates: list[Candidate]
    excluded: list[Exclusion]
    #: Text candidates used only after every reference candidate failed (the describe strategy).
    describe: list[Candidate] = field(default_factory=list)

    @property
    def estimate_usd(self) -> float:
        """What the first candidate would cost (what a successful run usually costs)."""
        first = self._first()
        return first.estimate_usd if first else 0.0

    @property
    def worst_usd(self) -> float:
        """The most the request can cost, whichever candidate serves it (each is held to the cap)."""
        return max((c.worst_usd for c in [*self.candidates, *self.describe]), default=0.0)

    def _first(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else (self.describe[0] if self.describe else None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt": self.request.prompt,
            "mode": self.request.mode,
            "n": self.request.n,
            "candidates": [c.to_dict() for c in self.candidates],
            "describe_fallback": [c.to_dict() for c in self.describe],
            "excluded": [{"model": e.ref, "reason": e.reason} for e in self.excluded],
            "estimate_usd": round(self.estimate_usd, 6),
            "worst_usd": round(self.worst_usd, 6),
        }


def unknown_provider(choice: str, catalog: Catalog) -> str:
    """Why `choice` (a `--provider` value) names no provider, and the nearest that does: a bare
    model id (`gpt-image-2`) is answered with its `provider:model`."""
    import difflib

    provider = choice.partition(":")[0]
    owners = [m.ref for m in catalog.models if choice in (m.id, *m.aliases)]
    if owners:
        return f"unknown provider {choice!r}: it is a model: pass --provider {owners[0]}"
    near = difflib.get_close_matches(provider, list(catalog.providers), n=1, cutoff=0.6)
    if near:
        fixed = near[0] + choice[len(provider) :]
        return f"unknown provider {provider!r}: did you mean {fixed!r}?"
    known = ", ".join(["auto", *catalog.providers])
    return f"unknown provider {provider!r}: use one of {known}, or PROVIDER:MODEL"


def unknown_model(provider: str, model: str, catalog: Catalog) -> str:
    """Why `provider:model` names no model, with the nearest id (or the list when none is near)."""
    import difflib

    spec = catalog.providers[provider]
    live = [m.id for m in spec.models.values() if m.status != "retired"]
    near = difflib.get_close_matches(model, live, n=1, cutoff=0.6)  # never point at a retired one
    if near:
        return f"unknown model {model!r} for {provider}: did you mean {provider}:{near[0]}?"
    return f"unknown model {model!r} for {provider}: use one of {', '.join(live)}"


def _order(request: ImageRequest, settings: Settings, catalog: Catalog, mode: str) -> list[ModelSpec]:
    """Models in the order this environment prefers, restricted by `request.provider`."""
    routing = settings.routing
    listed_refs = routing.reference if mode == "reference" else routing.text
    listed: list[ModelSpec] = []
    for ref in listed_refs:
        provider, sep, model = ref.partition(":")
        spec = catalog.providers.get(provider)
        if not sep or spec is None or model not in spec.models:
            # Echo only what looks like provider:model: a key pasted into the wrong variable
            # must not be printed back.
            shown = repr(ref) if sep and len(ref) <= 80 else f"entry {listed_refs.index(ref) + 1}"
            raise ConfigError(
                f"[routing] {mode} lists {shown}, which is not in the catalog: use provider:model "
                "as `imagerelay providers` lists them"
            )
        if spec.models[model] not in listed:  # a model listed twice is still tried once
            listed.append(spec.models[model])
    choice = request.provider.strip() or "auto"
    if choice == "auto":
        rest = [m for m in catalog.models if m not in listed] if routing.allow_unlisted else []
        return listed + rest
    provider, sep, model = choice.partition(":")
    if provider not in catalog.providers:
        raise InvalidRequest(unknown_provider(choice, catalog))
    spec = catalog.providers[provider]
    if sep:
        if model not in spec.models:
            raise InvalidRequest(unknown_model(provider, model, catalog))
        return [spec.models[model]]
    own = [m for m in listed if m.provider == provider]
    return own + [m for m in spec.models.values() if m not in own]


def plan_request(
    request: ImageRequest,
    settings: Settings,
    catalog: Catalog,
    *,
    keys: Iterable[str],
    cooling: Mapping[str, str] | None = None,
    today: date | None = None,
    max_cost: float | None = None,
    reference_sizes: Sequence[tuple[int, int] | None] = (),
) -> Plan:
    """Plan `request`: which models, in which order, translated how, and who was left out why.

    `keys` names the providers that have a key; `cooling` maps `provider:model` to the reason it
    is cooling down; `reference_sizes` are the references' pixel sizes where known (estimates
    assume the costliest where not). A candidate is planned only when its worst case fits the
    cost limit. A model pinned with PROVIDER:MODEL that cannot serve the request is an
    `InvalidRequest` naming why, not an empty plan.
    """
    if request.extras:  # a misspelt field or a value no model takes: refused before any is sent
        fitted = check_extras(request.extras, catalog)
        if fitted != request.extras:
            request = request.model_copy(update={"extras": fitted})
    if max_cost is not None and not max_cost >= 0:  # `not >=` also catches NaN
        raise InvalidRequest(f"the cost limit must be 0 or more (got {max_cost}): pass --max-cost 0.25, say")
    today = today or date.today()
    have_keys = set(keys)
    cooling = cooling or {}
    limit = max_cost if max_cost is not None else settings.budget.max_cost_per_request
    pinned = ":" in request.provider
    mode = request.mode
    candidates: list[Candidate] = []
    excluded: list[Exclusion] = []

    def consider(model: ModelSpec, as_mode: str, described: bool) -> Candidate | None:
        reason = _exclusion(model, request, settings, catalog, have_keys, cooling, today, as_mode)
        over_budget = False
        worst: float | None = None
        cost_text = ""
        if reason is None:
            cand = translate(
                request,
                model,
                catalog.providers[model.provider],
                as_mode=as_mode,
                reference_sizes=reference_sizes,
            )
            cand.described = described
            if limit is None or cand.worst_usd <= limit + 1e-12:
                return cand
            reason = f"estimated {cand.cost_text()}, over the ${limit:.4f} limit"
            over_budget, worst, cost_text = True, cand.worst_usd, cand.cost_text()
        is_cooling = model.ref in cooling and reason == cooling[model.ref]
        if pinned and not over_budget and not is_cooling:
            if reason == _no_key(catalog.providers[model.provider]):
                key_env = catalog.providers[model.provider].key_env
                raise MissingKey(f"{model.ref} needs an API key: set {key_env} in the environment or .env")
            raise InvalidRequest(
                f"{model.ref} cannot serve this request ({reason}): pin another model "
                f"(see `imagerelay providers`) or pass --provider {model.provider}"
            )
        excluded.append(Exclusion(model.ref, reason, over_budget, is_cooling, worst, cost_text))
        return None

    for model in _order(request, settings, catalog, mode):
        cand = consider(model, mode, described=False)
        if cand:
            candidates.append(cand)

    describe: list[Candidate] = []
    if mode == "reference" and settings.routing.reference_fallback == "describe" and not pinned:
        seen = {c.ref for c in candidates}
        for model in _order(request, settings, catalog, "text"):
            if model.ref in seen:
                continue
            before = len(excluded)
            cand = consider(model, "text", described=True)
            if cand:
                cand.notes.insert(0, "reference described in words by a vision model, not matched")
                describe.append(cand)
            elif any(e.ref == model.ref for e in excluded[:before]):
                del excluded[before:]  # one exclusion per model: the reference-mode reason says why
    return Plan(request=request, candidates=candidates, excluded=excluded, describe=describe)


def _exclusion(
    model: ModelSpec,
    request: ImageRequest,
    settings: Settings,
    catalog: Catalog,
    have_keys: set[str],
    cooling: Mapping[str, str],
    today: date,
    mode: str,
) -> str | None:
    """Why `model` cannot take `request` now, or None."""
    provider = catalog.providers[model.provider]
    gone = model.unavailable_reason(today)
    if gone:
        return gone
    if model.status == "deprecated" and not settings.routing.allow_deprecated:
        return f"deprecated (shuts down {model.shutdown})"
    if not settings.provider(model.provider).enabled:
        return f"provider {model.provider} is disabled in the configuration"
    if model.provider not in have_keys:
        return _no_key(provider)
    if mode == "reference":
        if not model.supports("reference"):
            return "cannot take reference images (text only)"
        if len(request.references) > model.max_references:
            return f"takes at most {model.max_references} reference image(s), {len(request.references)} given"
        if request.mask and not model.supports("mask"):
            return "cannot take a mask"
    if len(request.prompt) > model.max_prompt_chars:
        return f"prompt is {len(request.prompt):,} characters, over this model's {model.max_prompt_chars:,}"
    if model.ref in cooling:
        return cooling[model.ref]
    return None


def _no_key(provider: ProviderSpec) -> str:
    return f"no key: set {provider.key_env}"


def translate(
    request: ImageRequest,
    model: ModelSpec,
    provider: ProviderSpec,
    *,
    as_mode: str,
    reference_sizes: Sequence[tuple[int, int] | None] = (),
) -> Candidate:
    """The request as `model` can take it, with a note for everything mapped or dropped."""
    notes: list[str] = []
    params: dict[str, Any] = {}
    shape(request, model, params, notes)

    if request.resolution and "resolution" not in params:
        tier = resolution_for(model, request.resolution) if model.accepts("resolution") else None
        if tier is not None:
            params["resolution"] = tier
            if tier != request.resolution:
                notes.append(f"resolution {request.resolution} → {tier}: the nearest tier {model.id} offers")
        else:
            tiers = model.resolutions or ((model.default_resolution,) if model.default_resolution else ())
            offers = f"offers {', '.join(tiers)}" if tiers else "has no resolution tiers"
            notes.append(f"resolution {request.resolution} dropped: {model.id} {offers}")
    _quality(request, model, params, notes)
    if request.seed is not None:
        if model.accepts("seed"):
            params["seed"] = request.seed
        else:
            notes.append(f"seed dropped: {model.id} takes no seed, so the result is not reproducible")
    if request.output_format:
        wire = next((a for a in _FORMAT_ALIASES[request.output_format] if a in model.output_formats), None)
        if wire and model.accepts("output_format"):
            params["output_format"] = wire
        elif wire and len(model.output_formats) > 1:
            notes.append(
                f"format {request.output_format} cannot be asked for: {model.id} returns "
                f"{' or '.join(model.output_formats)}, as it chooses"
            )
        elif wire:
            pass  # the model's only format is the one asked for
        else:
            notes.append(
                f"format {request.output_format} not available: {model.id} returns "
                f"{'/'.join(model.output_formats)}"
            )

    extras: dict[str, Any] = {}
    for key, value in request.extras.get(model.provider, {}).items():
        if key in model.extra_fields:
            extras[key] = value
        else:
            notes.append(f"extra {model.provider}.{key} dropped: {model.id} does not take it")
    for other, fields in request.extras.items():  # meant for another provider: say so, send nothing
        if other != model.provider and fields:
            names = ", ".join(f"{other}.{key}" for key in fields)
            notes.append(f"extra {names} not sent: {model.id} is not among {other}'s models")

    per_call = max(1, model.max_n if model.accepts("n") else 1)
    calls = [min(per_call, request.n - i) for i in range(0, request.n, per_call)]
    if len(calls) > 1:
        notes.append(
            f"n={request.n} split into {len(calls)} calls ({'+'.join(map(str, calls))}): "
            f"{model.id} makes at most {per_call} per call"
        )
    if model.status == "deprecated" and model.shutdown:
        notes.append(f"{model.id} is deprecated and shuts down on {model.shutdown.isoformat()}")
    refs = list(reference_sizes)[: len(request.references)] if as_mode == "reference" else []
    if as_mode == "reference":
        refs += [None] * (len(request.references) - len(refs))
    size, others = output_size(model, params, refs)
    cost = estimate_cost(
        model.price,
        quality=params.get("quality"),
        resolution=params.get("resolution") or model.default_resolution,
        size=size,
        possible_sizes=others,
        references=refs,
        prompt=request.prompt,
        mode=as_mode,
    )
    return Candidate(
        model=model,
        provider=provider,
        calls=calls,
        params=params,
        extras=extras,
        notes=notes,
        cost=cost,
    )


def _quality(request: ImageRequest, model: ModelSpec, params: dict[str, Any], notes: list[str]) -> None:
    """The quality to send: the one asked for, the nearest offered, or the model's default."""
    if not model.accepts("quality") or not model.qualities:
        if request.quality:
            notes.append(f"quality {request.quality} dropped: {model.id} has no quality setting")
        return
    if request.quality is None:
        if model.default_quality:
            # Sent rather than left to `auto`, whose price is the provider's choice.
            params["quality"] = model.default_quality
        return
    if request.quality in model.qualities:
        params["quality"] = request.quality
        return
    rank = QUALITY_ORDER.index
    below = [q for q in model.qualities if q in QUALITY_ORDER and rank(q) <= rank(request.quality)]
    nearest = below[-1] if below else model.qualities[0]
    params["quality"] = nearest
    notes.append(f"quality {request.quality} → {nearest}: {model.id} offers {', '.join(model.qualities)}")
