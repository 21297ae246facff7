"""A real `upsell serve` in a child process, for the tests that talk HTTP to it (docs/service.md).

The server is the command users run, started with the test's environment (``UPSELL_DATABASE_URL``
for PostgreSQL), on a free port of 127.0.0.1; `stop` ends it with SIGTERM (a graceful shutdown) or
the signal given, `start` brings it back on the same port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LiveServer:
    folder: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.log = self.folder.parent / f"serve-{self.port}.log"
        out = self.log.open("ab")
        self.process = subprocess.Popen(
            [str(BIN / "upsell"), "serve", "-w", str(self.folder), "--port", str(self.port)],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"upsell serve exited {self.process.returncode}: {self.output()}"
                )
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop(signal.SIGKILL)
        raise RuntimeError(f"upsell serve did not answer in {timeout}s: {self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `sig` and wait for the exit; returns the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout)
        self.process = None
        return code

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""


def child_env(database_url: str | None) -> dict[str, str]:
    """The environment of a child `upsell`: this one, less any workspace settings, plus the URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPSELL_")}
    if database_url and not database_url.startswith("sqlite"):
        env["UPSELL_DATABASE_URL"] = database_url
    return env


@contextmanager
def live_server(folder: Path, env: dict[str, str]) -> Iterator[LiveServer]:
    server = LiveServer(folder, env)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            server.stop(signal.SIGKILL)
