"""What a check finds, and what asking a provider needs: the types every provider's check shares."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import httpx

from ..catalog import ModelSpec, ProviderSpec

__all__ = ["Asking", "Drift", "ProviderCheck", "Refused", "plannable", "retire"]


@dataclass
class Drift:
    """One difference between the catalog and what the provider says."""

    model: str  # provider:model
    kind: str  # gone | renamed | new | listed | price | aliases | field | enum | limit
    catalog: str
    provider: str
    #: Keys of the model's table that would make the catalog agree (None: fix it by hand).
    fix: dict[str, Any] | None = None


@dataclass
class ProviderCheck:
    """What asking one provider gave."""

    provider: str
    url: str = ""
    asked: bool = False
    error: str | None = None
    checked: list[str] = field(default_factory=list)  # catalog models the provider answered about
    drifts: list[Drift] = field(default_factory=list)
    #: What the check could not cover, said rather than left out (e.g. a listing that is partial).
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drifts": [asdict(d) for d in self.drifts]}


@dataclass
class Asking:
    """One provider being asked: the client, its catalog entry and base URL, the headers that
    carry its key, the check to fill in, and the day (what is retired by then is not asked about)."""

    http: httpx.AsyncClient
    spec: ProviderSpec
    base: str
    headers: dict[str, str]
    check: ProviderCheck
    today: date
    #: The key itself, for a check that hands it to the provider's SDK rather than `headers`.
    key: str = field(default="", repr=False)

    async def get_json(self, url: str, what: str) -> Any:
        """The JSON `url` answers; a refused key, another status or no JSON raise `Refused`."""
        resp = await self.http.get(url, headers=self.headers)
        if resp.status_code in (401, 403) or (resp.status_code == 400 and "key" in resp.text.lower()):
            raise Refused(f"{what} refused the key ({resp.status_code}): check it")
        if resp.status_code != 200:
            raise Refused(f"{what} answered {resp.status_code} to {url}")
        try:
            return resp.json()
        except ValueError:
            raise Refused(f"{what} answered {url} with something that is not JSON") from None


class Refused(Exception):
    """The provider answered, but not with a listing (bad key, an error)."""


def plannable(spec: ProviderSpec, today: date) -> list[ModelSpec]:
    return [m for m in spec.models.values() if m.unavailable_reason(today) is None]


def retire(today: date, replaced_by: str | None = None) -> dict[str, Any]:
    fix: dict[str, Any] = {"status": "retired", "shutdown": today}
    if replaced_by:
        fix["replaced_by"] = replaced_by
    return fix
