"""`imagerelay catalog check` against the emulator's model listings: no drift when nothing was
changed, and each kind of drift scripted into a listing reported with exit 1 — gone, renamed,
new, price, missing input, enum, limit — plus --provider, --json, --write and the refusals."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from imagerelay.catalog import load_catalog
from imagerelay.catalog_check import Drift
from imagerelay.emulator import Emulator
from imagerelay.emulator.replicate_schema import input_properties
from imagerelay.emulator.xai import listed as xai_listed
from imagerelay.paths import shipped_dir
from tests.clikit import run_cli
from tests.keys import KEY_VARS

FLUX2 = "black-forest-labs/flux-2-pro"
LISTINGS = ("xai.models", "openai.models", "replicate.model", "replicate.collection", "gemini.models")
NB21 = "gemini-nano-banana-2.1"
PRO = "gemini-3-pro-image"


def check(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, dict[str, Any], str]:
    """`catalog check --json *args`: (exit code, the JSON object, stderr)."""
    code, out, err = run_cli(capsys, monkeypatch, "catalog", "check", "--json", *args)
    return code, json.loads(out), err


def drifts(payload: dict[str, Any]) -> list[tuple[str, str]]:
    return [(d["model"], d["kind"]) for p in payload["providers"] for d in p["drifts"]]


def test_no_drift_against_the_unmodified_emulator(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every provider with a listing is asked, every plannable model is found as the catalog
    describes it: exit 0, and one line per provider saying so."""
    code, out, _ = run_cli(capsys, monkeypatch, "catalog", "check")
    assert code == 0, out
    for provider in ("xai", "openai", "replicate", "gemini"):
        assert any(
            line.startswith(f"{provider} (") and line.endswith("no drift") for line in out.splitlines()
        )
    asked = {r.route for r in cli_emulator.requests}
    assert set(LISTINGS) <= asked
    code, payload, _ = check(capsys, monkeypatch)
    assert (code, drifts(payload)) == (0, [])
    replicate = next(p for p in payload["providers"] if p["provider"] == "replicate")
    assert f"replicate:{FLUX2}" in replicate["checked"]
    gemini = next(p for p in payload["providers"] if p["provider"] == "gemini")
    assert f"gemini:{NB21}" in gemini["checked"]


def _drop_openai(emu: Emulator, model: str) -> None:
    emu.listings.openai = [m for m in emu.listings.openai if m["id"] != model]


def _drop_xai(emu: Emulator, model: str) -> None:
    emu.listings.xai = [m for m in emu.listings.xai if m["id"] != model]


def _rename_xai(emu: Emulator) -> None:
    entry = xai_listed(emu, "grok-imagine-image-2.0")
    entry["id"] = "grok-imagine-image-2.1"
    entry["aliases"] = [*entry["aliases"], "grok-imagine-image-2.0"]


def _new_xai(emu: Emulator) -> None:
    emu.listings.xai.append({**emu.listings.xai[0], "id": "grok-imagine-image-3.0", "aliases": []})


def _new_openai(emu: Emulator) -> None:
    emu.listings.openai.append({"id": "gpt-image-3", "object": "model", "created": 0, "owned_by": "system"})


def _enum(emu: Emulator, name: str) -> list[str]:
    schemas = emu.listings.replicate[FLUX2]["latest_version"]["openapi_schema"]["components"]["schemas"]
    values: list[str] = schemas[name]["enum"]
    return values


def _gemini(emu: Emulator, model: str) -> dict[str, Any]:
    return next(m for m in emu.listings.gemini if m["name"] == f"models/{model}")


def _new_gemini(emu: Emulator, model: str = "gemini-4-flash-image") -> None:
    emu.listings.gemini.append({**_gemini(emu, NB21), "name": f"models/{model}"})


SCRIPTED: list[tuple[str, Callable[[Emulator], None], set[tuple[str, str]]]] = [
    ("xai-gone", lambda e: _drop_xai(e, "grok-imagine-image"), {("xai:grok-imagine-image", "gone")}),
    (
        "xai-renamed",
        _rename_xai,
        {("xai:grok-imagine-image-2.0", "renamed"), ("xai:grok-imagine-image-2.1", "new")},
    ),
    ("xai-new", _new_xai, {("xai:grok-imagine-image-3.0", "new")}),
    (
        "xai-price",
        lambda e: xai_listed(e, "grok-imagine-image").update(image_price=300_000_000),
        {("xai:grok-imagine-image", "price")},
    ),
    (
        "xai-aliases",
        lambda e: xai_listed(e, "grok-imagine-image").update(aliases=["grok-imagine-image-beta"]),
        {("xai:grok-imagine-image", "aliases")},
    ),
    (
        "openai-gone",
        lambda e: _drop_openai(e, "gpt-image-2.6-flare"),
        {("openai:gpt-image-2.6-flare", "gone")},
    ),
    ("openai-new", _new_openai, {("openai:gpt-image-3", "new")}),
    (
        "replicate-gone",
        lambda e: e.listings.replicate.pop("black-forest-labs/flux-schnell"),
        {("replicate:black-forest-labs/flux-schnell", "gone")},
    ),
    (
        "replicate-field",
        lambda e: input_properties(e, FLUX2).pop("seed"),
        {(f"replicate:{FLUX2}", "field")},
    ),
    (
        "replicate-extra-field",
        lambda e: input_properties(e, FLUX2).pop("safety_tolerance"),
        {(f"replicate:{FLUX2}", "field")},
    ),
    ("replicate-enum", lambda e: _enum(e, "aspect_ratio").remove("4:5"), {(f"replicate:{FLUX2}", "enum")}),
    ("replicate-tiers", lambda e: _enum(e, "resolution").remove("4 MP"), {(f"replicate:{FLUX2}", "enum")}),
    (
        "replicate-limit",
        lambda e: input_properties(e, FLUX2)["input_images"].update(maxItems=4),
        {(f"replicate:{FLUX2}", "limit")},
    ),
    (
        "replicate-n",
        lambda e: input_properties(e, "black-forest-labs/flux-schnell")["num_outputs"].update(maximum=2),
        {("replicate:black-forest-labs/flux-schnell", "limit")},
    ),
    (
        "replicate-new",
        lambda e: e.listings.replicate.collections["text-to-image"]["models"].append(
            {"owner": "black-forest-labs", "name": "flux-3-pro"}
        ),
        {("replicate:black-forest-labs/flux-3-pro", "new")},
    ),
    (
        "gemini-gone",
        lambda e: e.listings.gemini.remove(_gemini(e, NB21)),
        {(f"gemini:{NB21}", "gone")},
    ),
    ("gemini-new", _new_gemini, {("gemini:gemini-4-flash-image", "new")}),
    (
        "gemini-retired-listed",
        lambda e: _new_gemini(e, "gemini-3.1-flash-image"),
        {("gemini:gemini-3.1-flash-image", "listed")},
    ),
    (
        "gemini-token-limit",
        lambda e: _gemini(e, PRO).update(outputTokenLimit=16384),
        {(f"gemini:{PRO}", "limit")},
    ),
]


@pytest.mark.parametrize(("name", "script", "expected"), SCRIPTED, ids=[s[0] for s in SCRIPTED])
def test_each_scripted_drift_is_reported_with_exit_1(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    script: Callable[[Emulator], None],
    expected: set[tuple[str, str]],
) -> None:
    """A listing changed in one way is reported as exactly that drift (model and kind), exit 1."""
    script(cli_emulator)
    code, payload, err = check(capsys, monkeypatch)
    assert code == 1
    assert set(drifts(payload)) == expected
    assert "--write" in err


def test_a_drift_line_says_what_each_side_says(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The human report groups drifts by model, with the catalog's figure and the provider's."""
    xai_listed(cli_emulator, "grok-imagine-image").update(image_price=300_000_000)
    _enum(cli_emulator, "aspect_ratio").remove("4:5")
    code, out, _ = run_cli(capsys, monkeypatch, "catalog", "check")
    assert code == 1
    lines = out.splitlines()
    at = lines.index("  xai:grok-imagine-image")
    assert (
        lines[at + 1]
        == "    price: catalog $0.02/image ($0.02/image, $0.01/input image); xai says $0.03/image"
    )
    assert f"  replicate:{FLUX2}" in lines
    assert any(
        line.startswith(
            "    enum: catalog offers aspect_ratio 4:5; replicate says `aspect_ratio` takes "
            "match_input_image, custom, 1:1, 16:9"
        )
        for line in lines
    )


def test_provider_option_asks_only_that_provider(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--provider openai asks OpenAI only; a drift elsewhere is not seen."""
    xai_listed(cli_emulator, "grok-imagine-image").update(image_price=1)
    code, payload, _ = check(capsys, monkeypatch, "--provider", "openai")
    assert (code, [p["provider"] for p in payload["providers"]]) == (0, ["openai"])
    assert {r.route for r in cli_emulator.requests} & set(LISTINGS) == {"openai.models"}


def test_bad_input_and_nobody_to_ask_are_exit_2(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown --provider is exit 2 naming the valid ones; with no key at all nobody can be
    asked: exit 2, each provider saying why."""
    code, _, err = run_cli(capsys, monkeypatch, "catalog", "check", "--provider", "stability")
    assert code == 2
    assert "unknown provider 'stability'" in err
    for var in KEY_VARS.values():
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    code, payload, err = check(capsys, monkeypatch)
    assert code == 2
    assert all(not p["asked"] for p in payload["providers"])
    assert "not asked: no key (set XAI_API_KEY)" in {p["error"] for p in payload["providers"]}
    assert not {r.route for r in cli_emulator.requests} & set(LISTINGS)


def test_a_refused_key_is_said_and_counts_as_not_asked(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key the provider refuses: that provider was not asked, the line says to check the key,
    and the key itself is never printed."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-" + "0" * 12)
    code, payload, err = check(capsys, monkeypatch, "--provider", "openai")
    assert code == 2
    [openai] = payload["providers"]
    assert "refused the key (401)" in openai["error"]
    assert "sk-wrong" not in json.dumps(payload) + err


def test_write_saves_an_override_that_the_catalog_then_reads(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """--write puts xAI's new price and a retirement in $IMAGERELAY_CONFIG_DIR/providers/xai.toml,
    keeps the user's own keys there, never touches the shipped file, and the next check is clean."""
    config = tmp_path / "cfg"
    (config / "providers").mkdir(parents=True)
    (config / "providers" / "xai.toml").write_text('[models."grok-imagine-image"]\nmax_n = 4\n')
    monkeypatch.setenv("IMAGERELAY_CONFIG_DIR", str(config))
    shipped = (shipped_dir("providers") / "xai.toml").read_bytes()
    xai_listed(cli_emulator, "grok-imagine-image-2.0").update(image_price=500_000_000)
    _drop_xai(cli_emulator, "grok-imagine-image")

    code, payload, _ = check(capsys, monkeypatch, "--write")
    assert code == 1
    # Every provider asked records when its models were checked; xAI's file carries the fixes.
    assert payload["written"] == [
        str(config / "providers" / f"{p}.toml") for p in ("xai", "openai", "replicate", "gemini")
    ]
    assert (shipped_dir("providers") / "xai.toml").read_bytes() == shipped
    written = tomllib.loads((config / "providers" / "xai.toml").read_text())["models"]
    assert written["grok-imagine-image"]["max_n"] == 4
    assert written["grok-imagine-image"]["status"] == "retired"
    assert written["grok-imagine-image-2.0"]["price"]["per_image_by"] == {"low,1k": 0.05}
    assert written["grok-imagine-image-2.0"]["source"].endswith(
        "/image-generation-models (imagerelay catalog check)"
    )

    catalog = load_catalog()
    two = catalog.model("xai:grok-imagine-image-2.0")
    assert two.price.per_image_by["low,1k"] == 0.05
    assert two.price.per_image_by["medium,2k"] == 0.08  # the rest of the shipped grid stays
    assert two.price.confirmed
    assert catalog.model("xai:grok-imagine-image").status == "retired"
    code, payload, _ = check(capsys, monkeypatch, "--provider", "xai")
    assert (code, drifts(payload)) == (0, [])
    openai = tomllib.loads((config / "providers" / "openai.toml").read_text())["models"]
    assert set(openai["gpt-image-2"]) == {"checked", "source"}


def test_write_without_a_config_directory_is_refused_before_asking(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no IMAGERELAY_CONFIG_DIR and no ./config/imagerelay.toml there is nowhere the catalog
    would read an override from: exit 2 saying what to set, and no provider is asked."""
    monkeypatch.delenv("IMAGERELAY_CONFIG_DIR", raising=False)
    code, _, err = run_cli(capsys, monkeypatch, "catalog", "check", "--write")
    assert code == 2
    assert "IMAGERELAY_CONFIG_DIR" in err
    assert not {r.route for r in cli_emulator.requests} & set(LISTINGS)


def test_sandbox_checks_against_the_emulator_and_finds_no_drift(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`catalog check --env sandbox` needs no key and reports no drift (exit 0)."""
    monkeypatch.chdir(tmp_path)
    for var in KEY_VARS.values():
        monkeypatch.delenv(var, raising=False)
    code, payload, _ = check(capsys, monkeypatch, "--env", "sandbox")
    assert code == 0
    assert drifts(payload) == []
    assert {p["provider"] for p in payload["providers"] if p["asked"]} == {
        "xai",
        "openai",
        "replicate",
        "gemini",
    }


def test_generate_never_asks_for_the_listings(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The check runs only when asked: generating (each provider once) reads no model listing."""
    for provider in ("xai", "openai", "replicate"):
        code, _, err = run_cli(
            capsys, monkeypatch, "generate", "a fox", "--provider", provider, "--out", str(tmp_path / "out")
        )
        assert code == 0, err
    assert not {r.route for r in cli_emulator.requests} & set(LISTINGS)


def test_providers_shows_price_basis_and_checked_date_and_marks_stale_checks(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`providers` gives each model its price basis (per image, per MP, tokens) and the date it
    was checked; a check older than 90 days is marked stale, with the command that refreshes it."""
    from datetime import date, timedelta

    monkeypatch.chdir(tmp_path)
    config = tmp_path / "cfg"
    (config / "providers").mkdir(parents=True)
    old = date.today() - timedelta(days=91)
    (config / "providers" / "xai.toml").write_text(f'[models."grok-imagine-image"]\nchecked = {old}\n')
    monkeypatch.setenv("IMAGERELAY_CONFIG_DIR", str(config))
    code, out, _ = run_cli(capsys, monkeypatch, "providers", "--json", "--env", "development")
    assert code == 0
    rows = {r["model"]: r for r in json.loads(out)}
    assert rows[f"replicate:{FLUX2}"]["price_basis"] == "megapixels"
    assert rows[f"replicate:{FLUX2}"]["price_summary"] == "$0.03 1st MP, $0.015/MP more, $0.015/input MP"
    assert rows["openai:gpt-image-2"]["price_basis"] == "tokens"
    assert rows["xai:grok-imagine-image-2.0"]["price_summary"] == (
        "$0.04–0.08/image by quality × resolution, $0.01/input image"
    )
    assert (rows["xai:grok-imagine-image"]["checked"], rows["xai:grok-imagine-image"]["stale"]) == (
        old.isoformat(),
        True,
    )
    assert rows["xai:grok-imagine-image-2.0"]["stale"] is ((date.today() - date(2026, 12, 1)).days > 90)
    code, out, _ = run_cli(capsys, monkeypatch, "providers", "--env", "development")
    line = next(x for x in out.splitlines() if x.startswith("xai:grok-imagine-image "))
    assert f"checked {old} (stale)" in line
    assert "per image" in line
    assert any("per MP" in x for x in out.splitlines() if x.startswith(f"replicate:{FLUX2}"))
    assert "run `imagerelay catalog check`" in out


def test_gemini_listing_is_read_page_by_page_and_only_its_image_models_count(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gemini lists every model of the API a page at a time: text models are not image models
    (no drift for them), and a new image model on a later page is still found."""
    text = {"supportedGenerationMethods": ["generateContent", "countTokens"], "version": "001"}
    cli_emulator.listings.gemini[:0] = [{**text, "name": f"models/gemini-text-{i}"} for i in range(150)]
    cli_emulator.listings.gemini.append({**text, "name": "models/text-embedding-005"})
    _new_gemini(cli_emulator, "gemini-4-pro-image")
    code, payload, _ = check(capsys, monkeypatch, "--provider", "gemini")
    assert (code, drifts(payload)) == (1, [("gemini:gemini-4-pro-image", "new")])
    pages = [r for r in cli_emulator.requests if r.route == "gemini.models"]
    assert len(pages) == 2


def test_write_records_gemini_token_limits_and_the_next_check_is_clean(
    cli_emulator: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """A changed output token limit is one drift line naming both figures; --write saves the
    listing's figure (the other limit kept), and the catalog then agrees with the listing."""
    config = tmp_path / "cfg"
    config.mkdir()
    monkeypatch.setenv("IMAGERELAY_CONFIG_DIR", str(config))
    _gemini(cli_emulator, PRO).update(outputTokenLimit=16384)
    code, out, _ = run_cli(capsys, monkeypatch, "catalog", "check", "--provider", "gemini")
    assert code == 1
    assert (
        "    limit: catalog token limits output 32768; gemini says outputTokenLimit 16384" in out.splitlines()
    )
    code, _, _ = run_cli(capsys, monkeypatch, "catalog", "check", "--provider", "gemini", "--write")
    assert code == 1
    written = tomllib.loads((config / "providers" / "gemini.toml").read_text())["models"]
    assert written[PRO]["token_limits"] == {"input": 65536, "output": 16384}
    assert load_catalog().model(f"gemini:{PRO}").token_limits == {"input": 65536, "output": 16384}
    code, payload, _ = check(capsys, monkeypatch, "--provider", "gemini")
    assert (code, drifts(payload)) == (0, [])


def test_a_refused_gemini_key_is_said_and_never_printed(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gemini answers a wrong key with 400 API_KEY_INVALID: not asked, check the key, exit 2."""
    wrong = "AIza" + "WRONGKEY" + "0" * 12
    monkeypatch.setenv("GEMINI_API_KEY", wrong)
    code, payload, err = check(capsys, monkeypatch, "--provider", "gemini")
    assert code == 2
    [gemini] = payload["providers"]
    assert gemini["error"] == "gemini refused the key (400): check it"
    assert wrong not in json.dumps(payload) + err


async def _pretend_check(ask: Any) -> None:
    """A provider's own check, as a registration names it: it reports one made-up model."""
    ask.check.url = f"{ask.base}/pretend"
    ask.check.asked = True
    ask.check.drifts.append(Drift(f"{ask.spec.name}:made-up", "new", "no such model", "pretended"))


def test_each_provider_brings_its_own_check(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check run for a provider is the one its registration names (`Provider.catalog_check`),
    not one chosen by its name; a registration without one is said not to be checked."""
    import dataclasses

    from imagerelay import plugins

    xai = plugins.registry()["xai"]
    monkeypatch.setattr(plugins, "_REGISTERED", {})
    monkeypatch.setattr(plugins, "_SCANNED", {})
    plugins.register_provider(dataclasses.replace(xai, catalog_check=f"{__name__}:_pretend_check"))
    code, payload, _ = check(capsys, monkeypatch, "--provider", "xai")
    assert (code, drifts(payload)) == (1, [("xai:made-up", "new")])
    assert not {r.route for r in cli_emulator.requests} & set(LISTINGS)
    plugins.register_provider(dataclasses.replace(xai, catalog_check=None))
    code, payload, _ = check(capsys, monkeypatch, "--provider", "xai")
    assert code == 2
    assert payload["providers"][0]["error"].startswith("not checked: xai publishes no model listing")


def test_replicate_says_what_its_new_model_search_covers(
    cli_emulator: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replicate's new models come from its text-to-image collection, among models of every owner
    (only the catalog's owners count): the report says so, and when the collection cannot be read
    it says that models offered are not checked — no drift invented either way."""
    code, out, _ = run_cli(capsys, monkeypatch, "catalog", "check", "--provider", "replicate")
    assert code == 0
    note = next(line for line in out.splitlines() if line.startswith("  note: "))
    assert "black-forest-labs in Replicate's text-to-image collection" in note
    assert "one outside it is not seen" in note
    others = cli_emulator.listings.replicate.collections["text-to-image"]["models"]
    assert {m["owner"] for m in others} - {"black-forest-labs"}  # other owners are listed, and ignored
    cli_emulator.listings.replicate.collections.clear()
    code, payload, _ = check(capsys, monkeypatch, "--provider", "replicate")
    assert (code, drifts(payload)) == (0, [])
    [replicate] = payload["providers"]
    assert replicate["notes"] == [
        f"models offered that the catalog lacks: not checked ({replicate['url'].split('/models/')[0]}"
        "/collections/text-to-image answered 404)"
    ]
