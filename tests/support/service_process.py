"""Runs the service as operators do, ``python -m bot --port P``, as a child process for tests.

Crash tests need a process they can SIGKILL and start again on the same data directory;
the browser test needs the service on a real port. The child gets a clean environment
(nothing of the caller's GitHub, DigitalOcean or bot settings leaks in) plus what the
test gives it, and writes its log to a file the test can show when something fails.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import aiohttp

REPO_ROOT = Path(__file__).resolve().parents[2]
# Settings the service reads; the caller's own values must never reach the child.
OWN_PREFIXES = ("GITHUB_", "BOT_", "DIGITALOCEAN_", "LOG_FORMAT")
OWN_NAMES = {"HOST", "PORT"}


def free_port() -> int:
    """A loopback port free right now (the service binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment without any service setting, plus ``settings``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(OWN_PREFIXES) and name not in OWN_NAMES
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update(settings)
    return env


class ServiceProcess:
    """One run of ``python -m bot`` on 127.0.0.1:``port``; ``start()`` it again after a kill."""

    def __init__(self, settings: Mapping[str, str], log_path: Path, port: int | None = None):
        self.settings = dict(settings)
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the service is already running")
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"----- start {self.starts} -----\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=REPO_ROOT,
                env=child_environment(self.settings),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def wait_until_serving(self, path: str = "/healthz", timeout: float = 30.0) -> None:
        """Wait until ``path`` answers at all (any status); fail with the log if it never does."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                if self.process is None or self.process.poll() is not None:
                    raise AssertionError(f"the service exited early:\n{self.log()}")
                try:
                    async with session.get(self.url + path) as response:
                        await response.read()
                        return
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"the service did not serve {path}:\n{self.log()}")
                await asyncio.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no checkpoint, no last write; as a crash or OOM kill."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, grace: float = 30.0) -> int | None:
        """SIGTERM and wait, as a supervisor stops it; SIGKILL if it will not go."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
