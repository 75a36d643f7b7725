"""Light to start: importing the package and asking the CLI for help load no SDK and no Pillow; and
the public API (`imagerelay.__all__`) is exactly what it is meant to be."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import imagerelay

HEAVY = ("openai", "replicate", "google", "httpx2", "PIL", "pillow_heif")
#: The gateway's stack loads only when `imagerelay serve` runs.
GATEWAY = ("starlette", "uvicorn", "prometheus_client", "multipart", "python_multipart", "anyio")

PUBLIC = [
    "ArgumentRejected",
    "Attempt",
    "AuthenticationFailed",
    "Budget",
    "BudgetExceeded",
    "Candidate",
    "Catalog",
    "ConfigError",
    "ConnectionFailed",
    "ContentBlocked",
    "DownloadFailed",
    "EmptyResult",
    "Exclusion",
    "ExitCode",
    "GenerationFailed",
    "ImageRelayError",
    "ImageRequest",
    "InvalidReference",
    "InvalidRequest",
    "LedgerError",
    "MalformedResponse",
    "ManifestError",
    "MissingKey",
    "ModelSpec",
    "ModelUnavailable",
    "Outcome",
    "OutputError",
    "Plan",
    "PredictionCreated",
    "Provider",
    "ProviderCondemned",
    "ProviderError",
    "ProviderSpec",
    "QuotaExhausted",
    "RateLimited",
    "ReadTimedOut",
    "Receipt",
    "ReferenceRecord",
    "Relay",
    "RunHooks",
    "SaveFailed",
    "SavedImage",
    "ServerError",
    "Settings",
    "TransientError",
    "UserError",
    "__version__",
    "agenerate",
    "generate",
    "load_catalog",
    "load_settings",
    "register_provider",
]


def _loaded_after(code: str) -> tuple[set[str], str]:
    """Top-level modules loaded by `code` in a fresh interpreter, and what it printed."""
    script = textwrap.dedent(code) + textwrap.dedent(
        """
        import json as _json, sys as _sys
        _sys.__stderr__.write("\\nMODULES " + _json.dumps(sorted({m.split(".")[0] for m in _sys.modules})))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    head, _, modules = proc.stderr.rpartition("\nMODULES ")
    return set(json.loads(modules)), proc.stdout + head


def test_import_loads_no_sdk_and_no_pillow() -> None:
    """`import imagerelay` loads none of the SDKs, Pillow, or even pydantic."""
    loaded, _ = _loaded_after("import imagerelay")
    assert "imagerelay" in loaded
    assert not loaded & {*HEAVY, *GATEWAY, "pydantic", "typer"}


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["generate", "--help"], [], ["serve", "--help"], ["serve", "keys", "new", "--help"]],
    ids=["help", "generate-help", "bare", "serve-help", "keys-help"],
)
def test_cli_help_loads_no_sdk_and_no_pillow(argv: list[str]) -> None:
    """`imagerelay --help` (and a command's help, `serve`'s included, and no arguments) prints help
    without the SDKs, Pillow or the gateway's web stack."""
    loaded, output = _loaded_after(
        f"""
        import sys
        sys.argv = ["imagerelay", *{argv!r}]
        from imagerelay.cli import main
        try:
            main()
        except SystemExit as exc:
            assert exc.code in (0, None), exc.code
        """
    )
    assert "Usage" in output
    assert "typer" in loaded
    assert not loaded & {*HEAVY, *GATEWAY}


def test_public_names_are_pinned() -> None:
    """`imagerelay.__all__` is exactly the documented public API, sorted."""
    assert imagerelay.__all__ == PUBLIC
    assert sorted(dir(imagerelay)) == sorted(PUBLIC)


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_resolves(name: str) -> None:
    """Each name in `__all__` resolves to a real object from the module that defines it."""
    value = getattr(imagerelay, name)
    assert value is not None
    if name != "__version__":
        assert value.__module__.startswith("imagerelay.")


def test_errors_are_one_tree() -> None:
    """Every public error derives from ImageRelayError; user errors exit 2, the rest 1."""
    values = [getattr(imagerelay, n) for n in PUBLIC]
    errors = [v for v in values if isinstance(v, type) and issubclass(v, BaseException)]
    assert len(errors) >= 12
    for err in errors:
        assert issubclass(err, imagerelay.ImageRelayError)
    assert imagerelay.ConfigError.exit_code == imagerelay.InvalidRequest.exit_code == 2
    assert imagerelay.GenerationFailed.exit_code == imagerelay.BudgetExceeded.exit_code == 1


def test_every_error_class_is_public_and_in_the_drawn_tree() -> None:
    """Every error class `errors.py` defines is exported at the top level and drawn in its tree."""
    import inspect

    from imagerelay import errors

    classes = {
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value)
        and issubclass(value, errors.ImageRelayError)
        and value.__module__ == errors.__name__
    }
    assert classes <= set(imagerelay.__all__)
    assert set(errors.__all__) <= set(imagerelay.__all__)
    tree = (errors.__doc__ or "").split("```")[1]
    assert {line.split("── ")[1].split()[0] for line in tree.splitlines() if "── " in line} | {
        "ImageRelayError"
    } == classes
    exported = {
        n
        for n in imagerelay.__all__
        if inspect.isclass(v := getattr(imagerelay, n)) and issubclass(v, Exception)
    }
    assert exported == classes == {n for n in errors.__all__ if issubclass(getattr(errors, n), Exception)}


def test_type_checking_imports_match_the_public_table() -> None:
    """The `TYPE_CHECKING` imports (what type checkers see) name exactly the public table's entries,
    each from the module the table says, each re-exported explicitly (`X as X`)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(imagerelay))
    [block] = [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    imported = {
        alias.name: (node.module or "")
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert imported == imagerelay._PUBLIC
    aliases = [a for n in block.body if isinstance(n, ast.ImportFrom) for a in n.names]
    assert all(a.asname == a.name for a in aliases)


def test_version_is_the_installed_distribution_s() -> None:
    """`__version__` is the installed package's version, as pyproject.toml states it."""
    from importlib.metadata import version

    assert imagerelay.__version__ == version("imagerelay")


def test_unknown_attribute_is_an_attribute_error() -> None:
    """A name outside the public API raises AttributeError, as for any module."""
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        imagerelay.Nope  # noqa: B018
