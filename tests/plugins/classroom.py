"""The whole product wired together for tests: the service in-process, the fake GitHub, the
fake DigitalOcean and the loopback SSH server, with a course repository to deploy."""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bot.app import make_app
from bot.course_keys import course_key_secret
from bot.services import SERVICES, Services
from deploy.keys import derive_course_key
from tests.fakes.github import FakeGitHub
from tests.plugins.github_fake import COURSE_REPO, COURSE_REPO_ID, INSTALLATION_ID
from tests.plugins.service import deliver
from tests.support.service_process import free_port

README_WITH_MARKERS = (
    b"# Physics 101\n\n<!-- classroom-badges:start -->\n<!-- classroom-badges:end -->\n\nWelcome.\n"
)
COMMENT_IDS = itertools.count()
NOTEBOOK = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()


def ssh_course_files(target, *, apt: str = "graphviz\n", extra: str = "") -> dict[str, bytes]:
    config = (
        "server:\n"
        "  provider: ssh\n"
        f"  host: {target.host}\n"
        f"  port: {target.port}\n"
        "hub:\n"
        "  admins: [alice]\n"
        "content:\n"
        "  open: StartHere.ipynb\n"
        f"{extra}"
    )
    return {
        ".github/classroom.yml": config.encode(),
        "apt.txt": apt.encode(),
        "README.md": README_WITH_MARKERS,
        "StartHere.ipynb": NOTEBOOK,
    }


def repository_payload(example: dict[str, Any]) -> dict[str, Any]:
    """A published example's ``repository``, made the course's (default branch ``main``)."""
    repository = dict(example.get("repository") or {})
    owner, name = COURSE_REPO.split("/")
    repository.update(
        id=COURSE_REPO_ID,
        full_name=COURSE_REPO,
        name=name,
        default_branch="main",
        owner={**(repository.get("owner") or {}), "login": owner},
    )
    return repository


def course_public_line(data_dir: Path, repo_id: int) -> str:
    """The public line of the key the service in ``data_dir`` gives this repository."""
    return derive_course_key(course_key_secret(data_dir), repo_id).public_line


@dataclass
class Classroom:
    """A running service and the fakes around it, with helpers to act as GitHub would."""

    client: Any
    github: FakeGitHub
    target: Any

    @property
    def services(self) -> Services:
        return self.client.app[SERVICES]

    async def settle(self) -> None:
        """Wait until every job and every follow-up report is done."""

        async def quiet() -> None:
            for _ in range(3):
                await self.services.drain()
                await self.services.runner.idle()
            await self.services.drain()

        try:
            await asyncio.wait_for(quiet(), 60)
        except TimeoutError:
            jobs = await self.services.store.jobs()
            raise AssertionError(f"jobs did not settle: {jobs}") from None

    def commit(self, files: dict[str, bytes], branch: str | None = "main") -> str:
        return self.github.put_commit(COURSE_REPO, files, branch=branch)

    def repository_payload(self, example: dict[str, Any]) -> dict[str, Any]:
        return repository_payload(example)

    async def push(self, example, sha: str, branch: str = "main", **changes: Any):
        payload = example("push")
        payload.update(
            ref=f"refs/heads/{branch}",
            after=sha,
            deleted=False,
            repository=self.repository_payload(payload),
            installation={"id": INSTALLATION_ID, "node_id": "x"},
            **changes,
        )
        return await deliver(self.client, "push", payload)

    async def comment(self, example, body: str, user: str = "alice", **changes: Any):
        payload = example("issue_comment", "created")
        payload["comment"] = {
            **payload["comment"],
            "body": body,
            # GitHub's comment ids are unique: a repeated id is the same comment.
            "id": 555000 + next(COMMENT_IDS),
            "user": {**payload["comment"]["user"], "login": user, "type": "User"},
            "performed_via_github_app": None,
        }
        payload["sender"] = {**payload["sender"], "login": user, "type": "User"}
        payload.update(
            repository=self.repository_payload(payload),
            installation={"id": INSTALLATION_ID, "node_id": "x"},
        )
        payload.update(changes)
        return await deliver(self.client, "issue_comment", payload)

    async def press(self, example, run: dict[str, Any], identifier: str, user: str = "alice"):
        """``user`` presses the button ``identifier`` on check run ``run``, as GitHub sends it."""
        payload = example("check_run", "requested_action")
        payload["check_run"] = {
            **payload["check_run"],
            "id": run["id"],
            "name": "classroom",
            "head_sha": run["head_sha"],
            "app": {**payload["check_run"]["app"], "id": self.github.app.id},
        }
        payload["requested_action"] = {"identifier": identifier}
        payload["sender"] = {**payload["sender"], "login": user, "type": "User"}
        payload.update(
            repository=self.repository_payload(payload),
            installation={"id": INSTALLATION_ID, "node_id": "x"},
        )
        return await deliver(self.client, "check_run", payload)

    def runs(self) -> list[dict[str, Any]]:
        return [run.current for run in self.github.check_runs.values()]


@pytest.fixture
async def classroom(aiohttp_client, make_settings, github_fake, ssh_target, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    # The service's own key is the one the loopback server authorises.
    key_file = data_dir / "ssh_ed25519"
    key_file.write_bytes(ssh_target.client_key.export_private_key("openssh"))
    key_file.chmod(0o600)
    # The course's own key, which the course's server is set up to trust.
    ssh_target.authorize(course_public_line(data_dir, COURSE_REPO_ID))
    github_fake.put_commit(COURSE_REPO, ssh_course_files(ssh_target), branch="main")
    # A port known in advance, so BOT_PUBLIC_URL is where a browser really finds the service.
    port = free_port()
    settings = make_settings(
        GITHUB_APP_ID=str(github_fake.app.id),
        GITHUB_PRIVATE_KEY=github_fake.app.private_key_pem,
        GITHUB_CLIENT_ID=github_fake.app.client_id,
        GITHUB_CLIENT_SECRET=github_fake.app.client_secret,
        GITHUB_API_URL=github_fake.url,
        GITHUB_URL=github_fake.url,
        BOT_DATA_DIR=str(data_dir),
        BOT_PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    client = await aiohttp_client(
        make_app(settings, monitoring=False), server_kwargs={"port": port}
    )
    client.app[SERVICES].app_slug = github_fake.app.slug
    room = Classroom(client, github_fake, ssh_target)
    yield room
    await room.settle()
