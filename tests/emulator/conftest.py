"""Clients for the emulator's own tests."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from imagerelay.emulator import Emulator


@pytest.fixture
def xai(emulator: Emulator, test_keys: dict[str, str]) -> Iterator[httpx.Client]:
    """httpx client on the emulated xAI API root, with the test key."""
    headers = {"authorization": f"Bearer {test_keys['xai']}"}
    with httpx.Client(base_url=emulator.base_url("xai"), headers=headers, timeout=10) as client:
        yield client
