"""The catalog: shipped models are coherent data, status and dates decide what may be planned, and a
user's override file changes one key while keeping the rest."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest

from imagerelay.catalog import CANONICAL_FIELDS, Catalog, ModelSpec, load_catalog, nearest_ratio
from imagerelay.errors import ConfigError
from imagerelay.request import parse_aspect_ratio, parse_size
from tests.keys import outside_setting

RETIRED = {
    "openai:dall-e-2": date(2026, 5, 12),
    "openai:dall-e-3": date(2026, 5, 12),
    "openai:gpt-image-1": date(2026, 10, 23),
    "xai:grok-2-image": None,  # PROVIDERS.md says retired, without a date
    "gemini:gemini-3.1-flash-image": date(2026, 10, 29),
}
DEPRECATED = ("openai:gpt-image-1.5", "openai:gpt-image-1-mini", "openai:chatgpt-image-latest")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No IMAGERELAY_* variable from the outside, and a working directory without config/."""
    for var in list(os.environ):
        if outside_setting(var):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _models(catalog: Catalog, provider: str) -> list[ModelSpec]:
    return list(catalog.providers[provider].models.values())


def test_providers_in_fixed_order(catalog: Catalog) -> None:
    """The catalog lists xai, openai, replicate, gemini, each with the key variables it reads."""
    assert list(catalog.providers) == ["xai", "openai", "replicate", "gemini"]
    assert catalog.key_envs() == {
        "xai": ("XAI_API_KEY",),
        "openai": ("OPENAI_API_KEY",),
        "replicate": ("REPLICATE_API_TOKEN",),
        "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    }


@pytest.mark.parametrize("ref", [m.ref for m in load_catalog().models])
def test_every_shipped_model_is_coherent(catalog: Catalog, ref: str) -> None:
    """Each model's modes, fields, limits, shapes, formats and price agree with one another."""
    m = catalog.model(ref)
    assert m.label
    assert m.id
    assert m.provider
    assert set(m.fields) <= set(CANONICAL_FIELDS)
    assert m.accepts("prompt")
    assert m.supports("reference") == m.accepts("reference") == (m.max_references > 0)
    assert m.supports("mask") == m.accepts("mask")
    assert m.max_n >= 1
    if not m.accepts("n"):
        assert m.max_n == 1
    for size in m.sizes:
        parse_size(size)
    for ratio in m.aspect_ratios:
        if ratio != "match_input_image":
            parse_aspect_ratio(ratio)
    assert not m.sizes or m.accepts("size")
    assert not m.aspect_ratios or m.accepts("aspect_ratio")
    assert set(m.resolutions) <= set(m.resolution_megapixels)
    assert m.default_resolution in (None, *m.resolution_megapixels)
    assert not m.resolutions or m.accepts("resolution")
    assert not m.qualities or m.accepts("quality")
    assert m.default_quality in (None, *m.qualities)
    assert m.output_formats
    assert m.default_output_format in (None, *m.output_formats)
    if m.status != "active":
        assert m.status in ("deprecated", "retired")
    if m.status == "deprecated":
        assert m.shutdown is not None
    if m.price.basis == "image":
        assert m.price.per_image > 0
    elif m.price.basis == "megapixels":
        assert m.price.output_per_mp > 0
        assert not m.supports("reference") or m.price.input_per_mp > 0
    else:
        assert m.price.output_image_per_mtok > 0
        # Every quality the model offers has a token count: no estimate falls back silently.
        assert set(m.qualities) <= set(m.price.qualities())
    if m.status == "active" and m.max_references > 1 and m.provider == "replicate":
        assert m.wire("reference") == "input_images"


@pytest.mark.parametrize("ref", [m.ref for m in load_catalog().models])
def test_every_model_records_when_and_where_it_was_checked(catalog: Catalog, ref: str) -> None:
    """Each model says when its facts were checked and from where, and states its price basis and
    whether the price is confirmed, in the shipped file itself (not by default)."""
    m = catalog.model(ref)
    assert m.checked == date(2026, 12, 1)
    assert m.source.strip()
    assert {"basis", "confirmed"} <= m.price.model_fields_set or _inherits_price(ref)
    for fact in m.unconfirmed:
        assert ":" in fact  # "what: why this value is the safe one"


def _inherits_price(ref: str) -> bool:
    """A `like = …` model that takes basis and confirmation from the model it is like."""
    import tomllib

    from imagerelay.paths import shipped_dir

    provider, _, model = ref.partition(":")
    raw = tomllib.loads((shipped_dir("providers") / f"{provider}.toml").read_text())["models"]
    while "like" in raw[model] and not {"basis", "confirmed"} <= set(raw[model].get("price", {})):
        model = raw[model]["like"]
    return {"basis", "confirmed"} <= set(raw[model].get("price", {}))


@pytest.mark.parametrize(("ref", "when"), list(RETIRED.items()))
def test_retired_models_are_never_plannable(catalog: Catalog, ref: str, when: date | None) -> None:
    """A retired model is unavailable on any day, before or after its date, with the date in the reason."""
    m = catalog.model(ref)
    assert m.status == "retired"
    assert m.shutdown == when
    for today in (date(2020, 1, 1), date(2026, 11, 30), date(2030, 1, 1)):
        reason = m.unavailable_reason(today)
        assert reason is not None
        assert reason.startswith("retired")
        if when is not None:
            assert when.isoformat() in reason


@pytest.mark.parametrize("ref", DEPRECATED)
def test_deprecated_models_shut_down_on_2026_12_01(catalog: Catalog, ref: str) -> None:
    """A deprecated OpenAI model is plannable up to 2026-11-30 and not from 2026-12-01."""
    m = catalog.model(ref)
    assert (m.status, m.shutdown) == ("deprecated", date(2026, 12, 1))
    assert m.unavailable_reason(date(2026, 11, 30)) is None
    reason = m.unavailable_reason(date(2026, 12, 1))
    assert reason is not None
    assert reason.startswith("shut down on 2026-12-01 (use gpt-image-2.")


def test_active_models_have_no_shutdown(catalog: Catalog) -> None:
    """Every model neither deprecated nor retired is plannable today and has no shutdown date."""
    active = [m for m in catalog.models if m.status == "active"]
    assert len(active) >= 10
    assert all(m.shutdown is None and m.unavailable_reason(date.today()) is None for m in active)


@pytest.mark.parametrize("ref", [m.ref for m in _models(load_catalog(), "xai")])
def test_xai_models_never_map_size_or_style(catalog: Catalog, ref: str) -> None:
    """No xAI model takes `size` or `style` under any name: xAI answers them with HTTP 400."""
    m = catalog.model(ref)
    sent_names = set(m.fields) | set(m.fields.values()) | set(m.fixed) | set(m.extra_fields)
    assert not sent_names & {"size", "style"}
    assert not m.sizes
    assert m.size_rule is None


@pytest.mark.parametrize("ref", [m.ref for m in _models(load_catalog(), "openai") if "image" in m.id])
def test_gpt_image_models_never_map_response_format(catalog: Catalog, ref: str) -> None:
    """No GPT-image model sends `response_format`: they always answer b64_json, and reject it."""
    m = catalog.model(ref)
    sent_names = set(m.fields) | set(m.fields.values()) | set(m.fixed) | set(m.extra_fields)
    assert "response_format" not in sent_names


@pytest.mark.parametrize(
    ("model", "wire"),
    [
        ("black-forest-labs/flux-kontext-pro", "input_image"),
        ("black-forest-labs/flux-kontext-max", "input_image"),
        ("black-forest-labs/flux-dev", "image"),
        ("black-forest-labs/flux-1.1-pro-ultra", "image_prompt"),
        ("black-forest-labs/flux-2-pro", "input_images"),
        ("black-forest-labs/flux-2-flex", "input_images"),
    ],
)
def test_replicate_reference_field_names(catalog: Catalog, model: str, wire: str) -> None:
    """Each Replicate model names its reference input as its API does (PROVIDERS.md)."""
    assert catalog.model(f"replicate:{model}").wire("reference") == wire


def test_flux_schnell_is_text_only(catalog: Catalog) -> None:
    """flux-schnell takes no reference under any name; grok-2-image neither."""
    for ref in ("replicate:black-forest-labs/flux-schnell", "xai:grok-2-image"):
        m = catalog.model(ref)
        assert m.modes == ("text",)
        assert not m.accepts("reference")


def test_replicate_n_field_is_num_outputs(catalog: Catalog) -> None:
    """flux-schnell takes up to 4 images per call under `num_outputs`; 1.1-pro takes one, no n."""
    schnell = catalog.model("replicate:black-forest-labs/flux-schnell")
    assert (schnell.wire("n"), schnell.max_n) == ("num_outputs", 4)
    pro = catalog.model("replicate:black-forest-labs/flux-1.1-pro")
    assert (pro.accepts("n"), pro.max_n) == (False, 1)


def test_prices_as_documented(catalog: Catalog) -> None:
    """grok-imagine-image is $0.02 per image plus $0.01 per input image; flux-schnell $0.003; every
    GPT-image 2.x model bills $5 text in, $8 image in, $30 image out per million tokens."""
    grok = catalog.model("xai:grok-imagine-image").price
    assert (grok.per_image, grok.per_input_image) == (0.02, 0.01)
    assert catalog.model("replicate:black-forest-labs/flux-schnell").price.per_image == 0.003
    for m in catalog.providers["openai"].models.values():
        if m.id.startswith("gpt-image-2"):
            p = m.price
            rates = (p.input_text_per_mtok, p.input_image_per_mtok, p.output_image_per_mtok)
            assert rates == (5.0, 8.0, 30.0), m.id


def test_retired_quality_model_names_what_serves_it(catalog: Catalog) -> None:
    """grok-imagine-image-quality is retired since 2026-11-02, and 2.0 answers to its name."""
    quality = catalog.model("xai:grok-imagine-image-quality")
    assert quality.unavailable_reason(date(2026, 12, 1)) == (
        "retired on 2026-11-02 (use grok-imagine-image-2.0)"
    )
    assert "grok-imagine-image-quality" in catalog.model("xai:grok-imagine-image-2.0").aliases


def test_like_copies_a_model_and_changes_what_it_sets(catalog: Catalog) -> None:
    """A snapshot `like` its model has the same capabilities and price, its own label and id."""
    snap, base = catalog.model("openai:gpt-image-2-2026-04-21"), catalog.model("openai:gpt-image-2")
    assert snap.model_dump(exclude={"id", "label"}) == base.model_dump(exclude={"id", "label"})
    assert snap.label != base.label
    flare = catalog.model("openai:gpt-image-2.5-flare")
    assert flare.price.quality_factors == catalog.model("openai:gpt-image-2.5-sunburst").price.quality_factors
    assert "xhigh" in flare.qualities


def test_like_naming_no_model_above_is_a_config_error(tmp_path: Path) -> None:
    """`like` must name a model defined earlier in the file: a typo is refused with the fix."""
    d = tmp_path / "extra"
    d.mkdir()
    (d / "xai.toml").write_text('[models."grok-x"]\nlike = "grok-imagine-imag"\nlabel = "x"\n')
    with pytest.raises(ConfigError, match="grok-imagine-imag"):
        load_catalog(extra_dirs=[d])


def test_token_price_from_usage(catalog: Catalog) -> None:
    """A GPT-image cost is computed from the response's usage tokens at the catalog's rates."""
    price = catalog.model("openai:gpt-image-2").price
    usage = {"output_tokens": 1_000_000, "input_tokens_details": {"text_tokens": 0, "image_tokens": 0}}
    assert price.from_usage(usage) == pytest.approx(30.0)
    assert price.from_usage({}) is None
    assert catalog.model("xai:grok-imagine-image").price.from_usage(usage) is None


def test_unknown_names_are_config_errors_listing_valid_ones(catalog: Catalog) -> None:
    """Looking up an unknown provider or model names the valid choices."""
    with pytest.raises(ConfigError, match="use one of xai, openai, replicate"):
        catalog.model("stability:sdxl")
    with pytest.raises(ConfigError, match="grok-imagine-image"):
        catalog.model("xai:grok-3-image")


def test_nearest_ratio_ignores_non_ratios() -> None:
    """nearest_ratio picks the closest W:H on a log scale and skips match_input_image."""
    assert nearest_ratio(16 / 9, ("match_input_image", "1:1", "16:9", "21:9")) == "16:9"
    assert nearest_ratio(1792 / 1024, ("1:1", "16:9", "3:2")) == "16:9"
    assert nearest_ratio(1.0, ("match_input_image", "auto")) is None


# -- overrides ---------------------------------------------------------------------------------


def test_user_override_changes_one_price_and_keeps_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, catalog: Catalog
) -> None:
    """$IMAGERELAY_CONFIG_DIR/providers/xai.toml changes one price; every other key stays shipped."""
    d = tmp_path / "cfg" / "providers"
    d.mkdir(parents=True)
    (d / "xai.toml").write_text('[models."grok-imagine-image".price]\nper_image = 0.03\n')
    monkeypatch.setenv("IMAGERELAY_CONFIG_DIR", str(tmp_path / "cfg"))
    mine = load_catalog()
    grok, shipped = mine.model("xai:grok-imagine-image"), catalog.model("xai:grok-imagine-image")
    assert grok.price.per_image == 0.03
    assert grok.price.per_input_image == shipped.price.per_input_image == 0.01
    assert grok.model_dump(exclude={"price"}) == shipped.model_dump(exclude={"price"})
    assert mine.model("xai:grok-imagine-image-quality") == catalog.model("xai:grok-imagine-image-quality")
    assert [m.ref for m in mine.models] == [m.ref for m in catalog.models]


def test_user_override_can_add_a_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new model in an override file joins its provider, after the shipped ones."""
    d = tmp_path / "cfg" / "providers"
    d.mkdir(parents=True)
    (d / "replicate.toml").write_text(
        '[models."acme/fast"]\nlabel = "Acme"\n'
        'fields = { prompt = "prompt" }\nprice = { per_image = 0.001 }\n'
    )
    monkeypatch.setenv("IMAGERELAY_CONFIG_DIR", str(tmp_path / "cfg"))
    added = load_catalog().model("replicate:acme/fast")
    assert (added.provider, added.id, added.price.per_image) == ("replicate", "acme/fast", 0.001)
    assert list(load_catalog().providers["replicate"].models)[-1] == "acme/fast"


def test_typo_key_in_provider_toml_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelt key in a user's provider file is a ConfigError naming the key and that file."""
    d = tmp_path / "cfg" / "providers"
    d.mkdir(parents=True)
    (d / "xai.toml").write_text('[models."grok-imagine-image"]\nmax_refs = 5\n')
    monkeypatch.setenv("IMAGERELAY_CONFIG_DIR", str(tmp_path / "cfg"))
    with pytest.raises(ConfigError) as info:
        load_catalog()
    assert "max_refs" in str(info.value)
    assert str(d / "xai.toml") in str(info.value)


def test_misspelt_request_field_in_fields_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `fields` entry that is no request field (a typo) is refused, not silently never sent."""
    d = tmp_path / "cfg" / "providers"
    d.mkdir(parents=True)
    (d / "xai.toml").write_text(
        '[models."grok-imagine-image"]\nfields = { prompt = "prompt", aspect_ration = "x" }\n'
    )
    monkeypatch.setenv("IMAGERELAY_CONFIG_DIR", str(tmp_path / "cfg"))
    with pytest.raises(ConfigError, match="aspect_ration"):
        load_catalog()


def test_broken_provider_toml_names_the_file(tmp_path: Path) -> None:
    """A provider file that is not TOML is a ConfigError naming the file."""
    d = tmp_path / "extra"
    d.mkdir()
    (d / "openai.toml").write_text('[models."gpt-image-2"\n')
    with pytest.raises(ConfigError) as info:
        load_catalog(extra_dirs=[d])
    assert str(d / "openai.toml") in str(info.value)


def test_bad_status_value_is_a_config_error(tmp_path: Path) -> None:
    """A status other than active / deprecated / retired is refused."""
    d = tmp_path / "extra"
    d.mkdir()
    (d / "xai.toml").write_text('[models."grok-imagine-image"]\nstatus = "sunset"\n')
    with pytest.raises(ConfigError, match="status"):
        load_catalog(extra_dirs=[d])
