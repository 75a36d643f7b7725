"""A provider declared as data alone — `providers/localai.toml` in the user's config directory with
`backend = "openai"`, as for a self-hosted OpenAI-compatible server — works end to end: catalog,
settings, plan, generate, the sandbox, manifests and errors, all under its own name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagerelay.catalog import load_catalog
from imagerelay.describe import vision_model
from imagerelay.emulator import Emulator, Fault
from imagerelay.errors import ConfigError, GenerationFailed
from imagerelay.imaging import probe
from imagerelay.manifest import load_manifest
from imagerelay.relay import Relay
from imagerelay.settings import load_settings
from tests.clikit import run_cli
from tests.keys import BUILTIN
from tests.relaykit import emulator_settings

#: A self-hosted server speaking OpenAI's images API, serving a model under a name it knows.
LOCALAI = """
label = "LocalAI (self-hosted)"
backend = "openai"
base_url = "http://127.0.0.1:9/v1"
key_env = "LOCALAI_API_KEY"

[models."gpt-image-2"]
label = "GPT Image 2, self-hosted"
modes = ["text"]
max_n = 2
sizes = ["1024x1024"]
qualities = ["low", "medium"]
default_quality = "low"
output_formats = ["png"]
fields = { prompt = "prompt", n = "n", size = "size", quality = "quality" }
extra_fields = ["background"]
price = { per_image = 0.001 }
"""
MODEL = "localai:gpt-image-2"


@pytest.fixture
def localai(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`$IMAGERELAY_CONFIG_DIR/providers/localai.toml`, the working directory `tmp_path`."""
    cfg = tmp_path / "cfg"
    (cfg / "providers").mkdir(parents=True)
    (cfg / "providers" / "localai.toml").write_text(LOCALAI)
    monkeypatch.setenv("IMAGERELAY_CONFIG_DIR", str(cfg))
    monkeypatch.chdir(tmp_path)
    return cfg


def test_it_joins_the_catalog_after_the_registered_providers(localai: Path) -> None:
    """The catalog lists it after every registered provider, with its own key variable."""
    catalog = load_catalog()
    assert list(catalog.providers) == [*BUILTIN, "localai"]
    spec = catalog.provider("localai")
    assert (spec.backend, spec.key_envs) == ("openai", ("LOCALAI_API_KEY",))


def test_its_settings_are_the_common_ones_of_the_backend_it_reuses(localai: Path) -> None:
    """[providers.localai] takes the OpenAI backend's settings; a knob only Replicate has is refused
    naming the file, and so is a misspelt provider table."""
    (localai / "imagerelay.toml").write_text("[providers.localai]\ntimeout = 5\n")
    assert load_settings().provider("localai").timeout == 5
    (localai / "imagerelay.toml").write_text("[providers.localai]\npoll_interval = 1\n")
    with pytest.raises(
        ConfigError, match=r"imagerelay.toml: unknown setting 'providers.localai.poll_interval'"
    ):
        load_settings()
    (localai / "imagerelay.toml").write_text("[providers.localia]\ntimeout = 5\n")
    with pytest.raises(ConfigError, match="did you mean 'localai'"):
        load_settings()


def test_it_is_listed_and_planned_from_the_cli(
    localai: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`imagerelay providers` lists it; `plan --provider localai` plans its model, and without its
    key says which variable to set."""
    code, out, err = run_cli(capsys, monkeypatch, "providers")
    assert code == 0, err
    assert "localai" in out
    code, out, err = run_cli(capsys, monkeypatch, "plan", "a fox", "--provider", "localai")
    assert code == 2
    assert "LOCALAI_API_KEY" in err
    monkeypatch.setenv("LOCALAI_API_KEY", "sk-local-0000")
    code, out, err = run_cli(capsys, monkeypatch, "plan", "a fox", "--provider", "localai")
    assert code == 0, err
    assert MODEL in out


async def test_the_sandbox_serves_it_with_the_dialect_of_its_backend(localai: Path, tmp_path: Path) -> None:
    """In the sandbox it is served by the OpenAI dialect under /localai: the image is saved and
    the receipt and the request log name localai, never openai."""
    async with Relay(env="sandbox", out_dir=tmp_path / "out") as relay:
        receipt = await relay.generate("a fox in the snow", provider="localai")
        emu = relay.emulator
        assert emu.base_url("localai").endswith("/localai/v1")
        assert [r.route for r in emu.requests] == ["localai.generations"]
    assert (receipt.provider, receipt.model, receipt.sandbox) == ("localai", "gpt-image-2", True)
    probe(Path(receipt.images[0].path).read_bytes())


def test_the_cli_sandbox_generates_with_it(
    localai: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`imagerelay generate --provider localai --env sandbox` saves an image from it, with no key."""
    code, _, err = run_cli(
        capsys, monkeypatch, "generate", "a fox", "--provider", "localai", "--env", "sandbox", "--out", "out"
    )
    assert code == 0, err
    assert sorted(p.suffix for p in Path("out").iterdir() if p.suffix in (".png", ".json")) == [
        ".json",
        ".png",
    ]


async def test_its_errors_name_it_and_its_variable(localai: Path, tmp_path: Path) -> None:
    """Served at its own base URL (an emulator mounting the OpenAI dialect as localai), a refused key
    fails naming localai and LOCALAI_API_KEY, and the attempt is recorded under localai."""
    with Emulator(keys={"localai": "sk-local-right"}, mounts={"localai": "openai"}, marked=False) as emu:
        settings = emulator_settings(emu, providers={"localai": {"base_url": emu.base_url("localai")}})
        relay = Relay(settings, keys={"localai": "sk-local-wrong"}, out_dir=tmp_path / "out", record=False)
        async with relay:
            with pytest.raises(GenerationFailed) as info:
                await relay.generate("a fox", provider=MODEL)
        assert [r.route for r in emu.requests] == ["localai.generations"]
    failure = info.value.failures[0]
    assert (failure.provider, type(failure).__name__) == ("localai", "AuthenticationFailed")
    assert str(failure).startswith("localai refused the key in LOCALAI_API_KEY")
    assert [a.provider for a in info.value.receipt.attempts] == ["localai"]


async def test_a_scripted_fault_on_its_route_is_mapped_by_the_shared_table(
    localai: Path, tmp_path: Path
) -> None:
    """A 503 then a 200 at /localai: retried once, then the image is delivered, all under localai."""
    with Emulator(mounts={"localai": "openai"}, marked=False) as emu:
        emu.script("localai.generations", Fault(status=503))
        settings = emulator_settings(emu, providers={"localai": {"base_url": emu.base_url("localai")}})
        relay = Relay(settings, keys={"localai": "sk-local-0000"}, out_dir=tmp_path / "out", record=False)
        async with relay:
            receipt = await relay.generate("a fox", provider=MODEL)
    assert [(a.provider, a.error_type) for a in receipt.attempts] == [
        ("localai", "ServerError"),
        ("localai", None),
    ]


def test_csv_columns_named_for_it_are_its_extras(localai: Path, tmp_path: Path) -> None:
    """A CSV column `localai.background` is an extra for localai, not free-form metadata."""
    path = tmp_path / "items.csv"
    path.write_text("prompt,localai.background\na fox,transparent\n")
    (item,) = load_manifest(path).items
    assert item.request.extras == {"localai": {"background": "transparent"}}
    assert "localai.background" not in item.request.metadata


def test_a_backend_no_provider_registers_is_refused_naming_the_file(localai: Path) -> None:
    """`backend = "comfy"` (no such wire API registered) is one ConfigError naming the file."""
    (localai / "providers" / "comfy.toml").write_text(
        LOCALAI.replace('backend = "openai"', 'backend = "comfy"')
    )
    with pytest.raises(ConfigError, match=r"comfy.toml: backend 'comfy' is no registered provider"):
        load_catalog()


def test_catalog_check_asks_it_with_the_check_of_the_backend_it_reuses(
    localai: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`catalog check --provider localai` in the sandbox asks /localai/v1/models (the OpenAI check,
    served by the OpenAI dialect under its name): its model is found, the listing's others are new."""
    code, out, err = run_cli(
        capsys, monkeypatch, "catalog", "check", "--provider", "localai", "--env", "sandbox", "--json"
    )
    assert code == 1, out + err
    (check,) = json.loads(out)["providers"]
    assert (check["provider"], check["asked"], check["checked"]) == ("localai", True, [MODEL])
    assert check["url"].endswith("/localai/v1/models")
    assert {d["kind"] for d in check["drifts"]} == {"new"}


def test_the_vision_model_comes_from_the_catalog(localai: Path, tmp_path: Path) -> None:
    """Unset, `[vision]` is the first provider whose catalog names a `vision_model`; a provider
    declared as data that names one is used when `[vision] provider` picks it, and one that names
    none is refused in one line saying what to set."""
    catalog = load_catalog()
    first = next(p for p in catalog.providers.values() if p.vision_model is not None)
    assert vision_model(load_settings().vision, catalog) == (first.name, first.vision_model)
    (localai / "providers" / "grokhost.toml").write_text(
        'label = "Grok, hosted"\nbackend = "xai"\nbase_url = "http://127.0.0.1:9/v1"\n'
        'key_env = "GROKHOST_API_KEY"\nvision_model = "grok-4.6-local"\n'
    )
    (localai / "imagerelay.toml").write_text('[vision]\nprovider = "grokhost"\n')
    assert vision_model(load_settings().vision, load_catalog()) == ("grokhost", "grok-4.6-local")
    (localai / "imagerelay.toml").write_text('[vision]\nprovider = "localai"\n')
    with pytest.raises(ConfigError, match=r"^\[vision\] provider 'localai' names no vision model: set"):
        vision_model(load_settings().vision, load_catalog())
