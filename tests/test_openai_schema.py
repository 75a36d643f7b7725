"""What the OpenAI backend puts on the wire, validated against OpenAI's own OpenAPI request schemas.

The bodies come from the emulator's request log (what really crossed the socket), not from the
backend's own idea of what it sent. The schemas are `CreateImageRequest` (JSON generations) and
`CreateImageEditRequest` (multipart edits) from `reference/openai-images.openapi.yaml`, with three
changes: `model` takes any string (the file lags the SDK on model names), no property outside
the documented ones is allowed (the file leaves that open; we never want to send one), and the
fields and values openai 3.57 documents since that cut are added exactly as the SDK types them
(`NEWER`, below) — nothing else.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from jsonschema.exceptions import ValidationError
from openapi_schema_validator import OAS31Validator
from pydantic import SecretStr

from imagerelay.backends.base import Call, Delivered
from imagerelay.backends.openai import OpenAIBackend
from imagerelay.catalog import load_catalog
from imagerelay.emulator import Emulator, LoggedRequest
from imagerelay.references import ImageLimits, PreparedImage, as_mask, load_reference, prepare
from imagerelay.settings import ProviderSettings
from tests.images import BLUE, GREEN, RED, jpeg_bytes, rgba_png_bytes, write

# The official image-endpoint schema, cut from openai/openai-openapi (see its `info.description`).
SPEC_PATH = Path(__file__).resolve().parent / "reference" / "openai-images.openapi.yaml"

CATALOG = load_catalog()
OPENAI = CATALOG.provider("openai")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    return loaded


#: What openai 3.57 (`types/image_generate_params.py`, `image_edit_params.py`) documents beyond the
#: 2026-08 cut: `complexity`, `safety_identifier` (replacing the deprecated `user`), qualities
#: `xhigh` and `max` (GPT Image 2.5 and later).
NEWER: dict[str, dict[str, Any]] = {
    "complexity": {"type": "string", "enum": ["low", "medium", "high"]},
    "safety_identifier": {"type": "string"},
}
NEWER_QUALITIES = ["xhigh", "max"]


def validator(spec: dict[str, Any], name: str) -> OAS31Validator:
    """A validator for components/schemas/`name`, its `$ref`s resolved inside the loaded file."""
    schema = copy.deepcopy(spec["components"]["schemas"][name])
    schema["properties"] |= copy.deepcopy(NEWER)
    schema["properties"]["quality"]["enum"] += NEWER_QUALITIES
    schema["properties"]["model"] = {}  # any model name: the file lags the SDK on names
    schema["additionalProperties"] = False  # nothing undocumented may be sent
    schema["components"] = spec["components"]  # so "#/components/schemas/..." resolves
    return OAS31Validator(schema)


def _prop_type(prop: dict[str, Any]) -> str | None:
    if "type" in prop:
        return str(prop["type"])
    for option in prop.get("anyOf", []):
        if option.get("type") not in (None, "null"):
            return str(option["type"])
    return None


def multipart_instance(req: LoggedRequest, schema: dict[str, Any]) -> dict[str, Any]:
    """A multipart body as the object the schema describes: text fields decoded by the type the
    schema gives them (form fields are serialised primitives), files as binary strings, and the
    SDK's `image[]` list as the `image` array."""
    out: dict[str, Any] = {}
    props = schema["properties"]
    decode = {"integer": int, "number": float, "boolean": lambda t: {"true": True, "false": False}[t]}
    for name, text in req.form.items():
        out[name] = decode.get(_prop_type(props.get(name, {})) or "", str)(text)
    for name, filename, _ctype, size in req.files:
        value = f"<binary {filename}, {size} bytes>"
        if name.endswith("[]"):
            out.setdefault(name[:-2], []).append(value)
        else:
            out[name] = value
    return out


@pytest.fixture
async def backend(emulator: Emulator, test_keys: dict[str, str]) -> AsyncIterator[OpenAIBackend]:
    async with httpx.AsyncClient() as http:
        b = OpenAIBackend(
            OPENAI,
            ProviderSettings(base_url=emulator.base_url("openai")),
            SecretStr(test_keys["openai"]),
            http,
        )
        yield b
        await b.aclose()


async def send(b: OpenAIBackend, **kw: Any) -> None:
    async def deliver(image: Delivered) -> None:
        pass

    model = kw.pop("model", "gpt-image-2")
    c = Call(model=OPENAI.models[model], provider=OPENAI, prompt="a lighthouse at dusk", **kw)
    await b.generate(c, deliver, lambda event: None)


def refs(tmp_path: Path, count: int) -> tuple[PreparedImage, ...]:
    limits = ImageLimits(accept=frozenset({"image/jpeg", "image/png", "image/webp"}))
    colors = [RED, BLUE, GREEN]
    return tuple(
        prepare(
            load_reference(write(tmp_path, f"r{i}.jpg", jpeg_bytes((64, 48), colors[i % 3])), label=f"r{i}"),
            limits,
            label=f"reference {i + 1}",
        )
        for i in range(count)
    )


def mask(tmp_path: Path) -> PreparedImage:
    ref = as_mask(load_reference(write(tmp_path, "mask.png", rgba_png_bytes((64, 48), (0, 0, 0, 0)))))
    return prepare(ref, ImageLimits(accept=frozenset({"image/png"})), label="mask")


GENERATIONS = {
    "minimal": {"n": 1},
    "size-quality-format": {
        "n": 2,
        "params": {"size": "1536x1024", "quality": "low", "output_format": "webp"},
    },
    "free-size": {"n": 1, "params": {"size": "1536x864", "quality": "medium"}},
    "extras": {
        "n": 1,
        "params": {"output_format": "jpeg", "seed": 3, "aspect_ratio": "16:9"},
        "extras": {"background": "opaque", "moderation": "low", "output_compression": 80, "user": "u-1"},
    },
    "snapshot": {
        "model": "gpt-image-2.5-sunburst-2026-09-08",
        "n": 3,
        "params": {"size": "1024x1536", "quality": "high"},
    },
    "newer-fields": {
        "model": "gpt-image-2.6-sunburst",
        "n": 1,
        "params": {"size": "2048x1152", "quality": "xhigh"},
        "extras": {"complexity": "medium", "safety_identifier": "hashed-user-1", "moderation": "low"},
    },
}


@pytest.mark.parametrize("case", GENERATIONS)
async def test_generation_body_matches_create_image_request(
    backend: OpenAIBackend, emulator: Emulator, spec: dict[str, Any], case: str
) -> None:
    """Every kind of generation the backend makes is a valid CreateImageRequest JSON body."""
    await send(backend, **copy.deepcopy(GENERATIONS[case]))
    [req] = emulator.requests_for("openai.generations")
    assert req.headers["content-type"] == "application/json"
    validator(spec, "CreateImageRequest").validate(req.json)


@pytest.mark.parametrize(
    ("count", "with_mask", "extra"),
    [
        pytest.param(1, False, {}, id="one-image"),
        pytest.param(
            3, True, {"safety_identifier": "hashed-2", "background": "opaque"}, id="three-images-mask"
        ),
        pytest.param(2, False, {"output_compression": 50, "user": "u-2"}, id="two-images-extras"),
    ],
)
async def test_edit_multipart_matches_create_image_edit_request(
    backend: OpenAIBackend,
    emulator: Emulator,
    spec: dict[str, Any],
    tmp_path: Path,
    count: int,
    with_mask: bool,
    extra: dict[str, Any],
) -> None:
    """Every kind of edit the backend makes is a valid CreateImageEditRequest multipart body."""
    await send(
        backend,
        n=2,
        params={"size": "1024x1024", "quality": "low", "output_format": "png"},
        extras=extra,
        references=refs(tmp_path, count),
        mask=mask(tmp_path) if with_mask else None,
    )
    [req] = emulator.requests_for("openai.edits")
    assert req.headers["content-type"].startswith("multipart/form-data")
    schema = spec["components"]["schemas"]["CreateImageEditRequest"]
    instance = multipart_instance(req, schema)
    validator(spec, "CreateImageEditRequest").validate(instance)
    images = instance["image"]
    assert (len(images) if isinstance(images, list) else 1) == count
    assert ("mask" in instance) is with_mask


def test_the_validator_rejects_what_the_api_would(spec: dict[str, Any]) -> None:
    """The patched schemas still bite: a wrong type, an undocumented field, a missing image fail."""
    gen = validator(spec, "CreateImageRequest")
    gen.validate({"model": "gpt-image-9", "prompt": "ok", "n": 2})
    for bad in ({"prompt": "x", "n": "two"}, {"prompt": "x", "seed": 1}, {"n": 1}, {"prompt": "x", "n": 11}):
        with pytest.raises(ValidationError):
            gen.validate(bad)
    edit = validator(spec, "CreateImageEditRequest")
    with pytest.raises(ValidationError):
        edit.validate({"prompt": "x"})
    with pytest.raises(ValidationError):
        edit.validate({"prompt": "x", "image": "<binary>", "moderation": "low"})
    with pytest.raises(ValidationError):  # through $ref: #/components/schemas/InputFidelity
        edit.validate({"prompt": "x", "image": "<binary>", "input_fidelity": "ultra"})
    for bad in ({"prompt": "x", "complexity": "max"}, {"prompt": "x", "quality": "ultra"}):
        with pytest.raises(ValidationError):  # the newer fields are checked as the SDK types them
            gen.validate(bad)


def test_the_planner_sends_only_what_the_schema_allows() -> None:
    """Every extra field the catalog lets a GPT-image model take is in the (extended) schema of
    the endpoint that sends it, or is left out of that endpoint by the backend."""
    from imagerelay.backends.openai import _EDIT_EXTRAS, _GENERATE_EXTRAS

    loaded: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    gen = set(loaded["components"]["schemas"]["CreateImageRequest"]["properties"]) | set(NEWER)
    edit = set(loaded["components"]["schemas"]["CreateImageEditRequest"]["properties"]) | set(NEWER)
    assert gen >= _GENERATE_EXTRAS
    assert edit >= _EDIT_EXTRAS
    for m in OPENAI.models.values():
        if m.unavailable_reason(date(2026, 12, 1)) is None:
            assert set(m.extra_fields) <= _GENERATE_EXTRAS | _EDIT_EXTRAS, m.id
            assert "input_fidelity" not in m.extra_fields, m.id  # "for gpt-image-2, omit this parameter"
