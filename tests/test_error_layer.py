"""The error layer the backends share: one status table (with each backend's few overrides), and
errors that name the catalog's provider — also when a backend serves a provider of another name."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from imagerelay.backends import backend_class
from imagerelay.backends.base import Backend, Call, Delivered
from imagerelay.backends.http import STATUS_TABLE, StatusTable, decode_base64_image
from imagerelay.catalog import ProviderSpec, load_catalog
from imagerelay.emulator import Emulator, Fault
from imagerelay.errors import (
    ArgumentRejected,
    AuthenticationFailed,
    MalformedResponse,
    ModelUnavailable,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    ServerError,
)
from imagerelay.settings import ProviderSettings
from tests.keys import GENERATE_ROUTE, PRIMARY, TEST_KEYS

CATALOG = load_catalog()
BACKENDS = sorted(GENERATE_ROUTE)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def served_as(wire: str, name: str) -> ProviderSpec:
    """The shipped provider `wire`, renamed: as a provider declared as data (`backend = wire`) is."""
    return CATALOG.provider(wire).model_copy(
        update={"name": name, "key_env": f"{name.upper()}_API_KEY", "key_env_also": ()}
    )


def make(wire: str, spec: ProviderSpec, emu: Emulator, http: httpx.AsyncClient, key: str | None) -> Backend:
    settings = ProviderSettings(base_url=emu.base_url(wire), max_requests_per_minute=None)
    return backend_class(wire)(spec, settings, SecretStr(key) if key else None, http)


async def attempt(backend: Backend, wire: str) -> ProviderError:
    """One generation that must fail; the error it failed with."""
    model = backend.provider.models[PRIMARY[wire].split(":", 1)[1]]
    call = Call(model=model, provider=backend.provider, prompt="a lighthouse", n=1)

    async def deliver(image: Delivered) -> None:
        raise AssertionError("no image was expected")

    with pytest.raises(ProviderError) as info:
        await backend.generate(call, deliver, lambda event: None)
    return info.value


#: What each status means at each backend, written out: the shared table, and where a provider
#: says otherwise (xAI's 403 is no credit or no access; a bad key there is a 400 or 401).
EXPECTED: dict[int, type[ProviderError]] = {
    401: AuthenticationFailed,
    402: QuotaExhausted,
    403: AuthenticationFailed,
    404: ModelUnavailable,
    408: ServerError,
    409: ServerError,
    410: ModelUnavailable,
    418: ArgumentRejected,
    422: ArgumentRejected,
    429: RateLimited,
    500: ServerError,
    503: ServerError,
}
OVERRIDES: dict[tuple[str, int], type[ProviderError]] = {("xai", 403): QuotaExhausted}


@pytest.mark.parametrize("status", sorted(EXPECTED))
@pytest.mark.parametrize("wire", BACKENDS)
async def test_each_backend_maps_a_status_by_the_shared_table(
    wire: str, status: int, emulator: Emulator, http: httpx.AsyncClient
) -> None:
    """A status answered to a generation maps to the same outcome at every backend, but for the
    overrides a provider documents."""
    emulator.script(GENERATE_ROUTE[wire], Fault(status=status))
    backend = make(wire, CATALOG.provider(wire), emulator, http, TEST_KEYS[wire])
    try:
        error = await attempt(backend, wire)
    finally:
        await backend.aclose()
    assert type(error) is OVERRIDES.get((wire, status), EXPECTED[status])
    assert (error.provider, error.status) == (wire, status)


@pytest.mark.parametrize("wire", BACKENDS)
async def test_errors_name_the_catalogs_provider_not_the_wire_api(
    wire: str, emulator: Emulator, http: httpx.AsyncClient
) -> None:
    """A backend serving a provider of another name says that name in every error it raises, and
    a refused key names that provider's own variable."""
    spec = served_as(wire, "proxy")
    emulator.script(GENERATE_ROUTE[wire], Fault(status=404), Fault(status=401))
    backend = make(wire, spec, emulator, http, TEST_KEYS[wire])
    try:
        for expected in (ModelUnavailable, AuthenticationFailed):
            error = await attempt(backend, wire)
            assert type(error) is expected
            assert error.provider == "proxy"
            assert str(error).startswith("proxy")
            assert wire not in str(error).replace(error.model, "").split("(")[0]
        assert "PROXY_API_KEY" in str(error)
    finally:
        await backend.aclose()


@pytest.mark.parametrize("wire", BACKENDS)
async def test_a_missing_key_is_one_error_naming_the_variable_and_the_fix(
    wire: str, emulator: Emulator, http: httpx.AsyncClient
) -> None:
    """No key: nothing is sent, and the error names the provider, its variable and --env sandbox."""
    backend = make(wire, served_as(wire, "proxy"), emulator, http, None)
    error = await attempt(backend, wire)
    assert type(error) is AuthenticationFailed
    assert error.provider == "proxy"
    assert "PROXY_API_KEY is not set" in str(error)
    assert "--env sandbox" in str(error)
    assert emulator.requests_for(GENERATE_ROUTE[wire]) == []


def test_the_most_specific_entry_wins() -> None:
    """An exact status beats a range; an override beats the shared entry; a status outside every
    range is an answer the API does not document."""
    assert STATUS_TABLE[range(400, 500)] is ArgumentRejected
    table = StatusTable({403: QuotaExhausted, range(420, 430): ServerError})
    assert table.classify(403) is QuotaExhausted
    assert table.classify(404) is ModelUnavailable
    assert table.classify(429) is RateLimited  # exact shared entry over the narrower range
    assert table.classify(425) is ServerError
    assert table.classify(418) is ArgumentRejected
    assert table.classify(302) is MalformedResponse


def test_one_decoder_for_base64_and_data_uris() -> None:
    """Bare base64 and a data URI decode alike; bytes that are not base64, or not an image, are a
    MalformedResponse that counts as billed (the answer was a 200)."""
    import base64

    from imagerelay.backends.http import ErrorContext
    from tests.images import RED, png_bytes

    png = png_bytes((8, 8), RED)
    ctx = ErrorContext("proxy", "m", status=200)
    b64 = base64.b64encode(png).decode()
    assert decode_base64_image(b64, ctx)[0] == png
    assert decode_base64_image("data:image/png;base64," + b64, ctx)[0] == png
    for bad in ("not base64!", base64.b64encode(b"not an image").decode()):
        with pytest.raises(MalformedResponse) as info:
            decode_base64_image(bad, ctx)
        assert info.value.provider == "proxy"
        assert info.value.maybe_billed
