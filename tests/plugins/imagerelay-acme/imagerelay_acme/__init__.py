"""Acme Images as an imagerelay provider: registered through the `imagerelay.providers` entry
point (see pyproject.toml). Only data here; the backend and dialect load when first used."""

from __future__ import annotations

from importlib.resources import files

from imagerelay import Provider

PROVIDER = Provider(
    name="acme",
    backend="imagerelay_acme.backend:AcmeBackend",
    catalog=files(__name__) / "acme.toml",
    settings="imagerelay_acme.backend:AcmeSettings",
    dialect="imagerelay_acme.dialect:DIALECT",
)
