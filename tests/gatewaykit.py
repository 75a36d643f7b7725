"""Start a real `imagerelay serve` process for tests, with the test's emulator behind it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imagerelay.emulator import Emulator

from .conftest import KEY_VARS, TEST_KEYS
from .keys import POLLED

_URL = re.compile(r"imagerelay gateway on (http://\S+)")


def emulator_env(emulator: Emulator, **extra: str) -> dict[str, str]:
    """The environment that points a gateway at `emulator`: base URLs, the test keys, fast retries,
    no provider rate limit. Inherited IMAGERELAY_* and provider key variables are left out."""
    env = {
        k: v
        for k, v in os.environ.items()
        if (not k.startswith("IMAGERELAY_") or k == "IMAGERELAY_LOAD_PLUGINS")
        and k not in KEY_VARS.values()
        and k != "PYTEST_CURRENT_TEST"
    }
    for provider, var in KEY_VARS.items():
        prefix = f"IMAGERELAY_PROVIDERS__{provider.upper()}__"
        env[prefix + "BASE_URL"] = emulator.base_url(provider)
        env[prefix + "MAX_REQUESTS_PER_MINUTE"] = "60000"
        if provider in POLLED:
            env[prefix + "POLL_INTERVAL"] = "0.05"
        env[var] = TEST_KEYS[provider]
    env["IMAGERELAY_RETRY__BACKOFF_INITIAL"] = "0.01"
    env["IMAGERELAY_RETRY__BACKOFF_MAX"] = "0.02"
    env.update(extra)
    return env


def keys_env(keys: dict[str, dict[str, Any]]) -> str:
    """`IMAGERELAY_GATEWAY__KEYS` for `{name: {"hash": …, "budget_per_day": …}}`."""
    return json.dumps(keys)


class GatewayProcess:
    """`imagerelay serve --port 0 …` in a child process; `url` once it listens."""

    def __init__(self, cwd: Path, env: dict[str, str], *args: str) -> None:
        self.cwd = cwd
        self.out = cwd / "gateway.stdout"
        self.err = cwd / "gateway.stderr"
        cwd.mkdir(parents=True, exist_ok=True)
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "imagerelay.cli", "serve", "--port", "0", *args],
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        self.url = self._wait_for_url()

    def _wait_for_url(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = _URL.search(self.stderr())
            if match:
                return match.group(1)
            if self.proc.poll() is not None:
                raise RuntimeError(f"imagerelay serve exited {self.proc.returncode}:\n{self.stderr()}")
            time.sleep(0.05)
        self.proc.kill()
        raise RuntimeError(f"imagerelay serve did not start:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    @property
    def out_dir(self) -> Path:
        return self.cwd / "generated"

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.terminate(timeout=30)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def gateway(cwd: Path, env: dict[str, str], *args: str) -> Iterator[GatewayProcess]:
    """A running gateway, stopped (SIGTERM) afterwards."""
    proc = GatewayProcess(cwd, env, *args)
    try:
        yield proc
    finally:
        proc.close()


def ledger_rows(out_dir: Path, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of a query on the output directory's ledger (read-only)."""
    import sqlite3

    conn = sqlite3.connect(f"file:{out_dir / 'imagerelay.sqlite3'}?mode=ro", uri=True)
    try:
        return list(conn.execute(sql, args))
    finally:
        conn.close()
