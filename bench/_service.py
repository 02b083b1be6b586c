"""Start and stop the two servers a webhook benchmark compares: our service and the Probot peer.

Both listen on loopback only. Our service gets a throw-away data directory, a freshly
generated App key and its own ``BOT_ENV_FILE``, so the repository's ``.env`` and ``data/``
are never read or touched.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

REPO = Path(__file__).resolve().parents[1]
_PEER_SCRIPT = Path("shared/peers/probot/start.sh")


def _probot_start() -> Path:
    """The peer's start script, in the nearest folder above the checkout that has one.

    A checkout may sit one level (``/work/main``) or two (``/work/wt/NAME``) below it.
    """
    for parent in Path(__file__).resolve().parents[1:]:
        if (parent / _PEER_SCRIPT).is_file():
            return parent / _PEER_SCRIPT
    return Path(__file__).resolve().parents[2] / _PEER_SCRIPT


PROBOT_START = _probot_start()
LOOPBACK = "127.0.0.1"
# Our service's path and Probot's default webhook path.
OUR_WEBHOOK_PATH = "/webhook"
PROBOT_WEBHOOK_PATH = "/api/github/webhooks"
# Variables of the real deployment that must not leak into a benchmark run.
_SCRUBBED_PREFIXES = ("GITHUB_", "BOT_", "DIGITALOCEAN_", "HOST", "PORT", "LOG_FORMAT")


class StartError(RuntimeError):
    """A server did not come up; the message says where its log is."""


@dataclass
class Server:
    """One running server under test."""

    name: str
    url: str  # the webhook URL
    pid: int | None
    process: subprocess.Popen | None = None
    data_dir: Path | None = None  # our service's BOT_DATA_DIR, to count recorded deliveries
    log_path: Path | None = None
    _cleanup: list[tempfile.TemporaryDirectory] = field(default_factory=list)

    def stop(self, timeout: float = 40.0) -> None:
        """SIGTERM and wait (our service drains for up to 30 s), then SIGKILL."""
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(self.pid, self.process):
            time.sleep(0.05)
        if _alive(self.pid, self.process):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        self.pid = None
        for tmp in self._cleanup:
            tmp.cleanup()


def _alive(pid: int, process: subprocess.Popen | None) -> bool:
    if process is not None:
        return process.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child of start.sh's nohup is not ours to reap; a zombie counts as gone.
    with contextlib.suppress(FileNotFoundError):
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return False
    return True


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def new_secret() -> str:
    return "bench-" + secrets.token_hex(16)


def rsa_pem() -> str:
    """A throw-away 2048-bit RSA key in PEM, as GitHub issues App keys."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def wait_until_healthy(url: str, process: subprocess.Popen | None, log: Path, wait: float) -> None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise StartError(f"the server exited with {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:  # noqa: S310 (loopback)
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise StartError(f"{url} did not answer within {wait:.0f} s; see {log}")


def start_ours(secret: str, *, github_api_url: str = "http://127.0.0.1:9") -> Server:
    """``python -m bot`` on a free loopback port with a temporary data directory.

    ``GITHUB_API_URL`` points at a closed loopback port: the benchmark's deliveries create
    no job, and anything that did try GitHub would be refused at once, never leave the
    machine.
    """
    tmp = tempfile.TemporaryDirectory(prefix="bench-ours-")
    root = Path(tmp.name)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    env.update(
        BOT_ENV_FILE=str(root / "absent.env"),
        BOT_DATA_DIR=str(root / "data"),
        GITHUB_APP_ID="1",
        GITHUB_PRIVATE_KEY=rsa_pem(),
        GITHUB_WEBHOOK_SECRET=secret,
        GITHUB_API_URL=github_api_url,
        GITHUB_URL=github_api_url,
    )
    log = root / "service.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot", "--host", LOOPBACK, "--port", str(port)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Server(
        "ours",
        f"http://{LOOPBACK}:{port}{OUR_WEBHOOK_PATH}",
        process.pid,
        process,
        data_dir=root / "data",
        log_path=log,
        _cleanup=[tmp],
    )
    try:
        wait_until_healthy(f"http://{LOOPBACK}:{port}/healthz", process, log, wait=30)
    except StartError:
        server.stop()
        raise
    return server


def start_probot(secret: str, workdir: Path) -> Server:
    """Probot 14 through the peer's ``start.sh`` (which installs it into ``workdir`` once)."""
    port = free_port()
    done = subprocess.run(
        ["bash", str(PROBOT_START), str(port), secret, str(workdir)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise StartError(f"probot did not start: {done.stderr.strip()}")
    pid = int(done.stdout.strip().splitlines()[-1])
    return Server(
        "probot",
        f"http://{LOOPBACK}:{port}{PROBOT_WEBHOOK_PATH}",
        pid,
        log_path=workdir / "probot.log",
    )


def start_ssh_targets(base: Path, names: Sequence[str] = ("target",)) -> list[Any]:
    """Loopback SSH targets (the tests' sandboxed sshd) sharing one host and client key."""
    sys.path.insert(0, str(REPO))
    from tests.sshtarget.target import SSHTarget, generate_key

    host_key = base / "host"
    generate_key(host_key)
    client_key = generate_key(base / "client")
    targets = []
    for name in names:
        target = SSHTarget(base / name, host_key, client_key)
        target.start()
        targets.append(target)
    return targets
