"""The `imagerelay` command line.

Human output goes to stderr, the saved paths (or, with --json, exactly one JSON value) to
stdout. Exit codes (`errors.ExitCode`, the README's table): 0 done; 1 not done at run time (no
image, over budget, paid output not writable); 2 refused before anything was spent, with one
line naming the problem and the fix; 3 partial (some images or items, not all); 130 Ctrl-C.

Only Typer is imported at start-up: the relay, pydantic, the SDKs and Pillow load inside the
commands that need them, so `imagerelay --help` stays instant.

The parts: `app` (the Typer applications and shared options), `plumbing` (settings, logging,
errors → exit codes, `main`), `request` (the options of a request), `render` (what is printed),
and the commands: `generate` (generate, plan), `outputs` (batch, history, gallery), `info`
(providers, catalog check, config show, emulator serve).
"""

from __future__ import annotations

# The command modules register their commands on `app` as they are imported, in help order.
from . import generate, info, outputs  # noqa: F401
from .app import app
from .plumbing import main

__all__ = ["app", "main"]
