"""The service as its own process (``python -m bot``), to be killed with SIGKILL and started
again on the same data directory, while the fakes it talks to live in the test's loop.

Everything the test waits for is awaited with ``asyncio.sleep`` between looks, never a
blocking wait, because the fake GitHub, the fake DigitalOcean and this harness share
the test's event loop.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes.github import FakeGitHub
from tests.plugins.classroom import COURSE_REPO_ID, course_public_line, repository_payload
from tests.plugins.github_fake import INSTALLATION_ID
from tests.plugins.service import WEBHOOK_SECRET, signed_headers
from tests.sshtarget.target import free_port

ROOT = Path(__file__).resolve().parents[2]
OPEN_JOB_STATES = ("queued", "running")


class ServiceProcess:
    """One data directory, and the service process serving it (started and killed at will)."""

    def __init__(
        self, base: Path, github: FakeGitHub, ssh_target: Any, do_fake: Any | None
    ) -> None:
        self.base = base
        self.data_dir = base / "data"
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        # The service's own key is the one the loopback server authorises.
        key_file = self.data_dir / "ssh_ed25519"
        key_file.write_bytes(ssh_target.client_key.export_private_key("openssh"))
        key_file.chmod(0o600)
        ssh_target.authorize(course_public_line(self.data_dir, COURSE_REPO_ID))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env_file = base / "service.env"
        env_file.write_text("")
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "BOT_ENV_FILE": str(env_file),
            "BOT_DATA_DIR": str(self.data_dir),
            "BOT_PUBLIC_URL": self.url,
            "GITHUB_APP_ID": str(github.app.id),
            "GITHUB_PRIVATE_KEY": github.app.private_key_pem,
            "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "GITHUB_API_URL": github.url,
            "GITHUB_URL": github.url,
        }
        if do_fake is not None:
            self.env["DIGITALOCEAN_ACCESS_TOKEN"] = do_fake.token
            self.env["DIGITALOCEAN_END_POINT"] = do_fake.url
        self.log_path = base / "service.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    async def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bot", "--port", str(self.port)],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        self.starts += 1
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                if self.process.poll() is not None:
                    raise AssertionError(f"the service exited:\n{self.log()}")
                try:
                    async with session.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"the service did not answer /healthz:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when the machine loses power."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.process = None

    async def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        for _ in range(400):
            if self.process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        else:
            self.process.kill()
            self.process.wait()
        self.process = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    # -- GitHub's side ------------------------------------------------------------------

    async def deliver(self, event: str, payload: dict[str, Any]) -> int:
        body = json.dumps(payload).encode()
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{self.url}/webhook", data=body, headers=signed_headers(body, event)
            ) as response,
        ):
            return response.status

    # -- the data directory, read beside the running service ------------------------------

    def jobs(self) -> list[dict[str, Any]]:
        path = self.data_dir / "classroom.sqlite3"
        if not path.exists():
            return []
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM jobs ORDER BY id")]

    async def job_running(self, timeout: float = 30.0) -> None:
        """Wait until the first job has been claimed, so a kill lands inside it."""
        for _ in range(int(timeout / 0.01)):
            jobs = self.jobs()
            if jobs and jobs[0]["state"] != "queued":
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"no job started: {self.jobs()}\n{self.log()}")

    async def settled(self, github: FakeGitHub, timeout: float = 60.0) -> None:
        """Wait until no job is open and every check run on GitHub is completed."""
        for _ in range(int(timeout / 0.1)):
            jobs = self.jobs()
            runs = [r.current for r in github.check_runs.values()]
            if (
                jobs
                and all(j["state"] not in OPEN_JOB_STATES for j in jobs)
                and all(r["status"] == "completed" for r in runs)
            ):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"not settled: jobs {self.jobs()}\n{self.log()}")


def push_payload(example, sha: str) -> dict[str, Any]:
    payload = example("push")
    payload.update(
        ref="refs/heads/main",
        after=sha,
        deleted=False,
        repository=repository_payload(payload),
        installation={"id": INSTALLATION_ID, "node_id": "x"},
    )
    return payload


def comment_payload(example, body: str, issue_number: int, comment_id: int) -> dict[str, Any]:
    payload = example("issue_comment", "created")
    payload["comment"] = {
        **payload["comment"],
        "body": body,
        "id": comment_id,
        "user": {**payload["comment"]["user"], "login": "alice", "type": "User"},
        "performed_via_github_app": None,
    }
    payload["issue"] = {**payload["issue"], "number": issue_number, "pull_request": None}
    payload["sender"] = {**payload["sender"], "login": "alice", "type": "User"}
    payload.update(
        repository=repository_payload(payload),
        installation={"id": INSTALLATION_ID, "node_id": "x"},
    )
    return payload
