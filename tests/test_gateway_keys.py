"""Gateway keys: a wrong or missing key, a model the key may not use, its request rate and its
budget — each mapped to the OpenAI SDK's exception class, with nothing paid past the cap — and
every ledger row naming the key that spent it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from imagerelay.emulator import Emulator
from imagerelay.emulator.wire import Fault
from imagerelay.gateway.keys import hash_key

from .clikit import run_cli
from .conftest import TEST_KEYS
from .gatewaykit import GatewayProcess, emulator_env, gateway, keys_env, ledger_rows

_KEYS = {name: f"irk_test_{name}_" + "0" * 8 for name in ("app", "limited", "slow", "team")}


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    """The emulator behind the module's gateway."""
    emulator = Emulator(keys=TEST_KEYS, url_ttl=60, marked=False).start()
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="module")
def keyed(emu: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """A gateway with four keys: a small daily budget, one provider only, two requests a minute,
    and a budget shared by concurrent requests."""
    keys = {
        "app": {"hash": hash_key(_KEYS["app"]), "budget_per_day": 0.03},
        "limited": {"hash": hash_key(_KEYS["limited"]), "models": ["xai", "fast"]},
        "slow": {"hash": hash_key(_KEYS["slow"]), "requests_per_minute": 2},
        "team": {"hash": hash_key(_KEYS["team"]), "budget_per_month": 0.05},
    }
    env = emulator_env(
        emu,
        IMAGERELAY_GATEWAY__KEYS=keys_env(keys),
        IMAGERELAY_GATEWAY__ROUTES=json.dumps(
            {"fast": {"models": ["replicate:black-forest-labs/flux-schnell"]}}
        ),
        IMAGERELAY_RETRY__COOLDOWN="0",
    )
    with gateway(tmp_path_factory.mktemp("keyed"), env, "--env", "development") as proc:
        yield proc


def client(proc: GatewayProcess, key: str | None) -> openai.OpenAI:
    return openai.OpenAI(base_url=proc.url + "/v1", api_key=key or "", max_retries=0)


def calls(emu: Emulator) -> int:
    return sum(1 for r in emu.requests if r.route.endswith((".generations", ".edits", ".create")))


def test_missing_and_wrong_keys_are_authentication_errors(keyed: GatewayProcess, emu: Emulator) -> None:
    """No bearer, or one that is not configured, is AuthenticationError (401), and nothing is sent."""
    before = calls(emu)
    with pytest.raises(openai.AuthenticationError) as caught:
        client(keyed, "irk_not_a_key").images.generate(prompt="a fox")
    assert caught.value.code == "invalid_api_key"
    got = httpx.post(f"{keyed.url}/v1/images/generations", json={"prompt": "a fox"})
    assert got.status_code == 401
    assert got.json()["error"]["code"] == "missing_api_key"
    assert calls(emu) == before


def test_a_model_the_key_may_not_use_is_permission_denied(keyed: GatewayProcess, emu: Emulator) -> None:
    """A key limited to xai and a route gets PermissionDeniedError (403) for openai; it may pin
    an xai model and use its route; `models.list()` shows only what it may use."""
    limited = client(keyed, _KEYS["limited"])
    before = calls(emu)
    with pytest.raises(openai.PermissionDeniedError) as caught:
        limited.images.generate(prompt="a fox", model="openai")
    assert caught.value.code == "model_not_allowed"
    assert calls(emu) == before
    pinned = limited.images.generate(prompt="a fox", model="xai:grok-imagine-image")
    assert (pinned.model_extra or {})["imagerelay"]["provider"] == "xai"
    routed = limited.images.generate(prompt="a fox", model="fast")
    assert (routed.model_extra or {})["imagerelay"]["model"] == "black-forest-labs/flux-schnell"
    ids = {m.id for m in limited.models.list().data}
    assert "fast" in ids
    assert "xai:grok-imagine-image" in ids
    assert not any(i.startswith("openai") for i in ids)
    assert "auto" not in ids


def test_request_rate_is_a_rate_limit_error_with_retry_after(keyed: GatewayProcess) -> None:
    """A key allowed two requests a minute gets RateLimitError (429, Retry-After) on the third."""
    slow = client(keyed, _KEYS["slow"])
    slow.images.generate(prompt="one")
    slow.images.generate(prompt="two")
    with pytest.raises(openai.RateLimitError) as caught:
        slow.images.generate(prompt="three")
    assert caught.value.code == "rate_limit_exceeded"
    assert 0 < int(caught.value.response.headers["retry-after"]) <= 60


def test_budget_hit_is_a_rate_limit_error_and_nothing_more_is_paid(
    keyed: GatewayProcess, emu: Emulator
) -> None:
    """A key with $0.03 a day pays for one $0.02 image; the next request is RateLimitError (429,
    code budget_exceeded, Retry-After until the day ends) and reaches no provider."""
    app = client(keyed, _KEYS["app"])
    app.images.generate(prompt="first", model="xai:grok-imagine-image")
    before = calls(emu)
    with pytest.raises(openai.RateLimitError) as caught:
        app.images.generate(prompt="second", model="xai:grok-imagine-image")
    assert caught.value.code == "budget_exceeded"
    assert int(caught.value.response.headers["retry-after"]) > 0
    assert (
        "has $0.0100 left of its $0.03 a day budget ($0.0200 spent), "
        "and this request may cost up to $0.0200: it renews in"
    ) in str(caught.value)
    assert calls(emu) == before
    [(spent,)] = ledger_rows(keyed.out_dir, "SELECT SUM(cost_usd) FROM generations WHERE gateway_key = 'app'")
    assert spent <= 0.03


def test_concurrent_requests_cannot_overshoot_a_budget(keyed: GatewayProcess, emu: Emulator) -> None:
    """Five requests at once against a $0.05 budget at $0.02 each: two are served, three refused
    as held by the two in flight (not spent) with a short Retry-After, and the key's spend stays
    under its cap."""
    emu.script("xai.generations", Fault(latency=0.5, times=2))
    team = client(keyed, _KEYS["team"])
    outcomes: list[str] = []
    refusals: list[openai.RateLimitError] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        try:
            team.images.generate(prompt=f"at once {i}", model="xai:grok-imagine-image")
            result = "ok"
        except openai.RateLimitError as exc:
            result = str(exc.code)
            refusals.append(exc)
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["budget_held"] * 3 + ["ok"] * 2
    for refused in refusals:
        assert refused.response.headers["retry-after"] == "5"
        assert "held by 2 request(s) in flight of its $0.05 a month budget ($0.0000 spent)" in str(refused)
    [(spent,)] = ledger_rows(
        keyed.out_dir, "SELECT SUM(cost_usd) FROM generations WHERE gateway_key = 'team'"
    )
    assert spent <= 0.05


def test_receipts_are_visible_only_to_the_key_that_spent_them(keyed: GatewayProcess) -> None:
    """GET /v1/receipts/{id} answers the key that made it, and 404 for another key."""
    result = client(keyed, _KEYS["limited"]).images.generate(prompt="mine", model="xai")
    receipt_id = (result.model_extra or {})["imagerelay"]["receipt_id"]
    url = f"{keyed.url}/v1/receipts/{receipt_id}"
    mine = httpx.get(url, headers={"authorization": f"Bearer {_KEYS['limited']}"})
    assert mine.status_code == 200
    assert mine.json()["id"] == receipt_id
    other = httpx.get(url, headers={"authorization": f"Bearer {_KEYS['slow']}"})
    assert other.status_code == 404


def test_history_by_key_lists_what_each_key_spent(
    keyed: GatewayProcess, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every ledger row names its key; `imagerelay history --key NAME` shows only that key's."""
    client(keyed, _KEYS["limited"]).images.generate(prompt="for history", model="xai")
    code, out, _ = run_cli(
        capsys, monkeypatch, "history", "--out", str(keyed.out_dir), "--key", "limited", "--json"
    )
    assert code == 0
    rows = json.loads(out)["generations"]
    assert rows
    assert {r["gateway_key"] for r in rows} == {"limited"}
    assert "for history" in {r["prompt"] for r in rows}
    code, text, _ = run_cli(capsys, monkeypatch, "history", "--out", str(keyed.out_dir), "--key", "limited")
    assert "[limited] for history" in text
    code, out, _ = run_cli(
        capsys, monkeypatch, "history", "--out", str(keyed.out_dir), "--key", "nobody", "--json"
    )
    assert code == 2  # a key that names nothing is a typo, not "nothing spent"
    assert "unknown gateway key 'nobody'" in json.loads(out)["error"]
    keys = {k for (k,) in ledger_rows(keyed.out_dir, "SELECT DISTINCT gateway_key FROM generations")}
    assert None not in keys


def test_keys_new_prints_a_key_once_with_the_config_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`imagerelay serve keys new NAME` prints a fresh key and the config lines holding only its hash."""
    code, out, _ = run_cli(capsys, monkeypatch, "serve", "keys", "new", "mobile-app", "--json")
    assert code == 0
    made = json.loads(out)
    assert made["key"].startswith("irk_")
    assert len(made["key"]) > 40
    assert made["hash"] == hash_key(made["key"])
    assert made["config"] == f'[gateway.keys.mobile-app]\nhash = "{made["hash"]}"'
    assert made["key"] not in made["config"]
    code, again, _ = run_cli(capsys, monkeypatch, "serve", "keys", "new", "mobile-app", "--json")
    assert json.loads(again)["key"] != made["key"]
    code, _, err = run_cli(capsys, monkeypatch, "serve", "keys", "new", "local")
    assert code == 2
    assert "not a plain name" in err


def test_without_keys_it_refuses_to_listen_beyond_loopback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With no gateway key configured, `serve --host 0.0.0.0` exits 2 naming the fix, binding nothing."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IMAGERELAY_GATEWAY__KEYS", raising=False)
    code, _, err = run_cli(capsys, monkeypatch, "serve", "--host", "0.0.0.0", "--env", "sandbox")
    assert code == 2
    assert "refusing to listen on 0.0.0.0" in err
    assert "imagerelay serve keys new" in err


def test_a_key_pasted_where_its_hash_belongs_is_refused_without_echoing_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A raw key in `hash` is a config error (exit 2) that does not print the key back."""
    monkeypatch.chdir(tmp_path)
    secret = "irk_" + "s3cr3t" * 7
    monkeypatch.setenv("IMAGERELAY_GATEWAY__KEYS", json.dumps({"app": {"hash": secret}}))
    code, out, err = run_cli(capsys, monkeypatch, "serve", "--env", "sandbox")
    assert code == 2
    assert "not a key hash" in err
    assert secret not in out + err


def test_keys_and_routes_come_from_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`[gateway.keys.NAME]` and `[gateway.routes.NAME]` in imagerelay.toml are read as settings."""
    from imagerelay.errors import ConfigError
    from imagerelay.settings import load_settings

    monkeypatch.chdir(tmp_path)
    digest = hash_key("irk_from_file_" + "9" * 10)
    (tmp_path / "imagerelay.toml").write_text(
        f'[gateway.keys.web]\nhash = "{digest}"\nmodels = ["fast"]\nbudget_per_month = 20.0\n\n'
        '[gateway.routes.fast]\nmodels = ["xai:grok-imagine-image"]\n'
    )
    gw = load_settings("development").gateway
    assert gw.keys["web"].hash == digest
    assert gw.keys["web"].models == ["fast"]
    assert gw.keys["web"].budget_per_month == 20.0
    assert gw.routes["fast"].models == ["xai:grok-imagine-image"]
    (tmp_path / "imagerelay.toml").write_text('[gateway.keys.web]\nhash = "sha256:00"\nbudget = 5\n')
    with pytest.raises(ConfigError, match=r"gateway\.keys\.web"):
        load_settings("development")


def test_a_route_named_like_a_provider_or_listing_an_unknown_model_stops_serve(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A route that shadows a provider, or names a model not in the catalog, is exit 2 at start."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(
        "IMAGERELAY_GATEWAY__ROUTES", json.dumps({"xai": {"models": ["xai:grok-imagine-image"]}})
    )
    code, _, err = run_cli(capsys, monkeypatch, "serve", "--env", "sandbox", "--port", "0")
    assert code == 2
    assert "already a provider name" in err
    monkeypatch.setenv("IMAGERELAY_GATEWAY__ROUTES", json.dumps({"fast": {"models": ["xai:no-such-model"]}}))
    code, _, err = run_cli(capsys, monkeypatch, "serve", "--env", "sandbox", "--port", "0")
    assert code == 2
    assert "IMAGERELAY_GATEWAY__ROUTES: gateway.routes.fast.models lists 'xai:no-such-model'" in err


def test_with_keys_the_key_is_the_guard_not_origin_or_host(keyed: GatewayProcess, emu: Emulator) -> None:
    """A gateway with keys serves a valid key whatever the Origin and Host (a reverse proxy's),
    and refuses a foreign page without a key as 401, not by its Origin."""
    before = calls(emu)
    headers = {"Origin": "https://app.example", "Host": "images.example"}
    got = httpx.post(
        f"{keyed.url}/v1/images/generations",
        json={"prompt": "a fox", "model": "xai"},
        headers={**headers, "Authorization": f"Bearer {_KEYS['limited']}"},
    )
    assert got.status_code == 200, got.text
    assert calls(emu) == before + 1
    got = httpx.post(f"{keyed.url}/v1/images/generations", json={"prompt": "a fox"}, headers=headers)
    assert got.status_code == 401
    assert calls(emu) == before + 1


def test_a_misspelt_route_field_names_the_file_and_the_fix(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`[gateway.routes.fast] model = […]` stops serve (exit 2) naming the file and `models`."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IMAGERELAY_GATEWAY__ROUTES", raising=False)
    config = tmp_path / "imagerelay.toml"
    config.write_text('[gateway.routes.fast]\nmodel = ["xai:grok-imagine-image"]\n')
    code, _, err = run_cli(capsys, monkeypatch, "serve", "--env", "sandbox", "--port", "0")
    assert code == 2
    assert str(config) in err
    assert "unknown setting 'gateway.routes.fast.model': did you mean 'gateway.routes.fast.models'?" in err
    assert len(err.strip().splitlines()) == 1


def test_a_key_allowed_a_model_that_names_nothing_stops_serve(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`[gateway.keys.a] models = ["xia"]` (or a bare model id) is exit 2 at start with a did-you-mean,
    naming the file, not a gateway answering 403 to everything."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("IMAGERELAY_GATEWAY__KEYS", raising=False)
    config = tmp_path / "imagerelay.toml"
    digest = hash_key(_KEYS["app"])
    for entry, fix in (
        ("xia", "'xai'"),
        ("gpt-image-2", "'openai:gpt-image-2'"),
        ("openai:gpt-imag-2", "'openai:gpt-image-2'"),
    ):
        config.write_text(f'[gateway.keys.a]\nhash = "{digest}"\nmodels = ["auto", "{entry}"]\n')
        code, _, err = run_cli(capsys, monkeypatch, "serve", "--env", "sandbox", "--port", "0")
        assert code == 2, err
        assert f"{config}: gateway.keys.a.models lists '{entry}'" in err
        assert f"did you mean {fix}?" in err
