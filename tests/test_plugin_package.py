"""A third-party provider package (tests/plugins/imagerelay-acme: its own pyproject, backend,
TOML and emulator dialect), installed beside imagerelay, works with no change to imagerelay:
discovered through its entry point, listed, planned, generated in the sandbox, its errors mapped."""

from __future__ import annotations

import importlib.util
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from imagerelay.catalog import load_catalog
from imagerelay.emulator import Emulator, Fault
from imagerelay.errors import ConfigError, GenerationFailed
from imagerelay.imaging import probe
from imagerelay.plugins import GROUP, registry
from imagerelay.relay import Relay
from imagerelay.settings import load_settings
from tests.clikit import run_cli
from tests.relaykit import emulator_settings

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("imagerelay_acme") is None,
    reason="the test provider plugin is not installed: pip install -e tests/plugins/imagerelay-acme",
)
MODEL = "acme:acme-render-1"


@pytest.fixture(autouse=True)
def acme(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Load the acme plugin (the other tests leave third-party plugins out); cwd is `tmp_path`."""
    monkeypatch.setenv("IMAGERELAY_LOAD_PLUGINS", "acme")
    monkeypatch.chdir(tmp_path)


def test_it_is_found_through_its_entry_point() -> None:
    """The provider comes from the imagerelay-acme distribution's entry point, after the built-ins."""
    (ep,) = [ep for ep in entry_points(group=GROUP) if ep.name == "acme"]
    assert ep.dist is not None
    assert ep.dist.name == "imagerelay-acme"
    assert list(registry())[-1] == "acme"
    assert list(load_catalog().providers)[-1] == "acme"


def test_it_is_left_out_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    """IMAGERELAY_LOAD_PLUGINS without its name leaves it out; the built-ins stay."""
    monkeypatch.setenv("IMAGERELAY_LOAD_PLUGINS", "")
    assert "acme" not in load_catalog().providers
    assert "acme" not in registry()


def test_its_own_settings_are_checked_by_its_model(tmp_path: Path) -> None:
    """[providers.acme] takes Acme's own `finish`; a value it does not take is refused naming the file."""
    (tmp_path / "imagerelay.toml").write_text('[providers.acme]\nfinish = "final"\n')
    assert load_settings().provider("acme").model_dump()["finish"] == "final"
    (tmp_path / "imagerelay.toml").write_text('[providers.acme]\nfinish = "glossy"\n')
    with pytest.raises(ConfigError, match=r"imagerelay.toml: providers.acme.finish"):
        load_settings()


def test_it_appears_in_providers_and_plans(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`imagerelay providers` lists its model; `plan --provider acme` plans it with its price."""
    code, out, err = run_cli(capsys, monkeypatch, "providers")
    assert code == 0, err
    assert MODEL in out
    monkeypatch.setenv("ACME_API_KEY", "acme-test-0000")
    code, out, err = run_cli(capsys, monkeypatch, "plan", "a fox", "--provider", "acme", "-n", "2")
    assert code == 0, err
    assert MODEL in out
    assert "$0.0040" in out


async def test_it_generates_in_the_sandbox(tmp_path: Path) -> None:
    """In the sandbox its own dialect answers at /acme/v2: two decodable PNGs, a receipt naming acme."""
    async with Relay(env="sandbox", out_dir=tmp_path / "out") as relay:
        receipt = await relay.generate("a fox", provider="acme", n=2, aspect_ratio="3:2")
        (sent,) = relay.emulator.requests_for("acme.render")
    assert (receipt.provider, receipt.model, len(receipt.images)) == ("acme", "acme-render-1", 2)
    assert sent.json == {"text": "a fox", "count": 2, "shape": "3:2", "finish": "draft"}
    for image in receipt.images:
        info = probe(Path(image.path).read_bytes())
        assert (info.width, info.height, info.format) == (768, 512, "png")


@pytest.mark.parametrize(
    ("status", "error_type", "attempts"),
    [
        (451, "ContentBlocked", 1),
        (402, "QuotaExhausted", 1),
        (401, "AuthenticationFailed", 1),
        (503, "ServerError", 3),
    ],
)
async def test_its_errors_are_mapped_by_the_shared_table_and_its_override(
    status: int, error_type: str, attempts: int, tmp_path: Path
) -> None:
    """A status from Acme maps through the shared table (451, its own override, is a refusal), and
    every failure names acme."""
    with Emulator(keys={"acme": "acme-test-0000"}, marked=False) as emu:
        emu.script("acme.render", Fault(status=status, times=None))
        settings = emulator_settings(emu, providers={"acme": {"base_url": emu.base_url("acme")}})
        relay = Relay(settings, keys={"acme": "acme-test-0000"}, out_dir=tmp_path / "out", record=False)
        async with relay:
            with pytest.raises(GenerationFailed) as info:
                await relay.generate("a fox", provider=MODEL)
        assert len(emu.requests_for("acme.render")) == attempts
    assert {(a.provider, a.error_type) for a in info.value.receipt.attempts} == {("acme", error_type)}
    assert all(str(f).startswith("acme") for f in info.value.failures)


def test_catalog_check_says_it_has_no_check(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider that registers no `catalog_check` is named as not checked, and nothing is asked."""
    code, out, err = run_cli(
        capsys, monkeypatch, "catalog", "check", "--provider", "acme", "--env", "sandbox"
    )
    assert code == 2, out + err
    assert out.strip() == "acme: not checked: acme publishes no model listing imagerelay can read yet"
