"""Image file names: what the store writes, the ledger reads back."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagerelay import naming
from imagerelay.store import Store

RID = "ab12cd34" + "0" * 24


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "gif"])
def test_a_stored_image_name_gives_back_its_request_and_index(tmp_path: Path, fmt: str) -> None:
    """The name `Store` gives an image parses back to the request id's prefix and the index."""
    name = naming.image_name(Store(tmp_path).stem("a red fox", RID, 3), fmt)
    parts = naming.parse_stem(name)
    assert parts == naming.StemParts(request=naming.short_id(RID), index=3)
    assert parts.request == "ab12cd34"


@pytest.mark.parametrize(
    "name",
    [
        "20260101-000000-a-ab12cd34-1.json",  # its receipt
        "20260101-000000-a-ab12cd34-0-failed.json",  # a failure receipt
        "20260101-000000-a-AB12CD34-1.jpg",  # not our hex
        "holiday.jpg",
    ],
)
def test_a_name_that_is_not_a_stored_image_is_not_parsed(name: str) -> None:
    """Receipts and files of someone else's are never taken for an image of a request."""
    assert naming.parse_stem(name) is None
