"""The options that say what to generate, shared by `generate` and `plan`, and the request they make."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from typing import Annotated, Any, Concatenate, get_type_hints

import typer

from .app import EnvOpt, not_empty

__all__ = ["RequestOptions", "parse_extras", "with_request_options"]

ProviderOpt = Annotated[
    str,
    typer.Option(
        "--provider",
        "-p",
        callback=not_empty,
        help="auto, a provider (see `imagerelay providers`) or PROVIDER:MODEL.",
    ),
]
ReferenceOpt = Annotated[
    list[str] | None,
    typer.Option("--reference", "-r", help="Reference image: a path or an https URL. Repeatable."),
]
MaskOpt = Annotated[str | None, typer.Option("--mask", help="PNG mask (transparent = edit here).")]
NOpt = Annotated[int, typer.Option("-n", "--n", help="Number of images (1–10).")]
SizeOpt = Annotated[str | None, typer.Option("--size", help="WIDTHxHEIGHT; translated per model.")]
RatioOpt = Annotated[str | None, typer.Option("--aspect-ratio", "-a", help="W:H, e.g. 16:9.")]
ResOpt = Annotated[str | None, typer.Option("--resolution", help="1k, 2k or 4k (models with tiers).")]
QualityOpt = Annotated[
    str | None, typer.Option("--quality", help="low, medium, high (xhigh, max on models that offer them).")
]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed, for models that take one.")]
FormatOpt = Annotated[str | None, typer.Option("--format", "-f", help="png, jpeg or webp.")]
MaxCostOpt = Annotated[
    float | None,
    typer.Option("--max-cost", help="Never start a call that could take the request over this (USD)."),
]
ExtraOpt = Annotated[
    list[str] | None, typer.Option("--extra", help="Provider field: PROVIDER.FIELD=VALUE. Repeatable.")
]


@dataclass(frozen=True)
class RequestOptions:
    """What to generate, and in which environment at what cap: the command line's words for it.

    Its fields, with their Typer options, are the first parameters of every command made with
    `with_request_options`."""

    prompt: Annotated[str, typer.Argument(help="What the image should show.")]
    provider: ProviderOpt = "auto"
    reference: ReferenceOpt = None
    mask: MaskOpt = None
    n: NOpt = 1
    size: SizeOpt = None
    aspect_ratio: RatioOpt = None
    resolution: ResOpt = None
    quality: QualityOpt = None
    seed: SeedOpt = None
    format: FormatOpt = None
    env: EnvOpt = None
    max_cost: MaxCostOpt = None
    extra: ExtraOpt = None

    def request(self) -> Any:
        """The `ImageRequest` these options ask for (an `InvalidRequest` names what is wrong)."""
        return _request(
            prompt=self.prompt,
            provider=self.provider,
            references=tuple(self.reference or ()),
            mask=self.mask,
            n=self.n,
            size=self.size,
            aspect_ratio=self.aspect_ratio,
            resolution=self.resolution,
            quality=self.quality,
            seed=self.seed,
            output_format=self.format,
            extras=parse_extras(self.extra or []),
        )


def with_request_options(command: Callable[Concatenate[RequestOptions, ...], None]) -> Callable[..., None]:
    """`command` as Typer should see it: the `RequestOptions` fields, then its own parameters.

    Typer reads a command's options from its signature; this one is made of both, and the call
    gathers the request options back into one `RequestOptions` for `command`."""
    hints = get_type_hints(RequestOptions, include_extras=True)
    shared = [
        inspect.Parameter(
            f.name,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=inspect.Parameter.empty if f.default is MISSING else f.default,
            annotation=hints[f.name],
        )
        for f in fields(RequestOptions)
    ]
    own = list(inspect.signature(command, eval_str=True).parameters.values())[1:]

    def run(**values: Any) -> None:
        options = RequestOptions(**{p.name: values.pop(p.name) for p in shared})
        command(options, **values)

    run.__signature__ = inspect.Signature([*shared, *own], return_annotation=None)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in (*shared, *own)}
    run.__name__, run.__qualname__, run.__doc__ = command.__name__, command.__qualname__, command.__doc__
    run.__module__ = command.__module__
    return run


def parse_extras(values: list[str]) -> dict[str, dict[str, Any]]:
    """`--extra PROVIDER.FIELD=VALUE` options, as `{provider: {field: value}}` (VALUE as JSON if it is)."""
    from ..errors import InvalidRequest

    extras: dict[str, dict[str, Any]] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        provider, dot, field = key.partition(".")
        if not sep or not dot or not provider or not field:
            raise InvalidRequest(
                f"--extra {item!r} is not PROVIDER.FIELD=VALUE (e.g. replicate.go_fast=false)"
            )
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        extras.setdefault(provider, {})[field] = value
    return extras


def _request(**fields: Any) -> Any:
    """An ImageRequest, with pydantic's complaint turned into one plain line (exit 2)."""
    from ..request import as_request

    given = {k: v for k, v in fields.items() if v is not None}
    return as_request(given.pop("prompt"), given)
