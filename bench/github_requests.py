"""GitHub API requests per event, with tokens and conditional requests cached.

Runs the service in-process against the spec-checked fake GitHub and the loopback SSH
target, deploys a course once (which also caches the installation token), then counts
the API requests, and the bytes GitHub sent, that each of these events causes:

- a push that changes nothing on a healthy server;
- the same push in a repository that also carries 1 GB of data files (virtual in the
  fake: listed in the tree, generated only if read, which the service never does);
- a ``/status`` comment.

    .venv/bin/python bench/github_requests.py
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
import tempfile
import uuid
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _service

from bot.app import make_app
from bot.services import SERVICES
from bot.settings import load_settings
from tests.fakes.github import FakeGitHub, VirtualFile
from tests.plugins.classroom import ssh_course_files
from tests.plugins.service import EXAMPLES, WEBHOOK_SECRET, signed_headers

COURSE = "octo-org/physics101"
INSTALLATION = 1001


def example(event: str, action: str | None = None) -> dict:
    for entry in json.loads(EXAMPLES.read_text()):
        if entry["name"] == event:
            for payload in entry["examples"]:
                if action is None or payload.get("action") == action:
                    return json.loads(json.dumps(payload))
    raise LookupError(event)


def repository(payload: dict) -> dict:
    return {
        **payload["repository"],
        "full_name": COURSE,
        "name": "physics101",
        "default_branch": "main",
        "owner": {**payload["repository"]["owner"], "login": "octo-org"},
    }


async def settle(client: TestClient) -> None:
    services = client.server.app[SERVICES]
    for _ in range(3):
        await services.drain()
        await services.runner.idle()
    await services.drain()


async def deliver(client: TestClient, event: str, payload: dict) -> int:
    body = json.dumps(payload).encode()
    response = await client.post(
        "/webhook", data=body, headers=signed_headers(body, event, str(uuid.uuid4()))
    )
    return response.status


async def counted(github: FakeGitHub, client: TestClient, event: str, payload: dict):
    """The webhook's answer, API requests by operation, and bytes sent back by operation."""
    before = len(github.requests)
    status = await deliver(client, event, payload)
    await settle(client)
    api = [r for r in github.requests[before:] if r.operation_id]
    sent: collections.Counter[str] = collections.Counter()
    for r in api:
        sent[r.operation_id] += r.sent_bytes
    return status, collections.Counter(r.operation_id for r in api), sent


async def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        [target] = _service.start_ssh_targets(base)
        client_key = target.client_key
        github = FakeGitHub()
        github.add_installation(INSTALLATION, "octo-org")
        github.add_repository(
            COURSE,
            ssh_course_files(target),
            installation_id=INSTALLATION,
            collaborators={"alice": "admin"},
        )
        await github.start()
        data = base / "data"
        data.mkdir(mode=0o700)
        (data / "ssh_ed25519").write_bytes(client_key.export_private_key("openssh"))
        (data / "ssh_ed25519").chmod(0o600)
        settings = load_settings(
            {
                "BOT_DATA_DIR": str(data),
                "GITHUB_APP_ID": str(github.app.id),
                "GITHUB_PRIVATE_KEY": github.app.private_key_pem,
                "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "GITHUB_API_URL": github.url,
                "GITHUB_URL": github.url,
            },
            env_file=base / ".env",
        )
        client = TestClient(TestServer(make_app(settings, monitoring=False)))
        await client.start_server()
        client.server.app[SERVICES].app_slug = github.app.slug
        try:
            push = example("push")
            push.update(
                ref="refs/heads/main",
                deleted=False,
                repository=repository(push),
                installation={"id": INSTALLATION},
            )
            push["after"] = github.repositories[COURSE].branches["main"]
            _, first, first_sent = await counted(github, client, "push", push)  # token, README…
            files = dict(github.files(COURSE, "main"))
            files["notes.md"] = b"A change that needs nothing on the server.\n"
            push = {**push, "after": github.put_commit(COURSE, files, branch="main")}
            status, noop, noop_sent = await counted(github, client, "push", push)
            data = {f"data/run-{i:03}.h5": VirtualFile(10**7, str(i)) for i in range(100)}
            files = {**files, **data, "notes.md": b"Now with a gigabyte of data.\n"}
            push = {**push, "after": github.put_commit(COURSE, files, branch="main")}
            status_big, big, big_sent = await counted(github, client, "push", push)
            issue = github.add_issue(COURSE, "Hub")
            comment = example("issue_comment", "created")
            comment["comment"] = {
                **comment["comment"],
                "body": "/status",
                "id": 777,
                "user": {**comment["comment"]["user"], "login": "alice", "type": "User"},
                "performed_via_github_app": None,
            }
            comment["issue"] = {**comment["issue"], "number": issue.number, "pull_request": None}
            comment.update(
                sender={**comment["sender"], "login": "alice", "type": "User"},
                repository=repository(comment),
                installation={"id": INSTALLATION},
            )
            status2, slash, slash_sent = await counted(github, client, "issue_comment", comment)
        finally:
            await client.close()
            await github.close()
            target.stop()
    for name, answer, counts, sent, goal in (
        ("first push, deploys", 202, first, first_sent, None),
        ("push, nothing to change", status, noop, noop_sent, 6),
        ("push, nothing to change, 1 GB of data in the repository", status_big, big, big_sent, 6),
        ("/status comment", status2, slash, slash_sent, 4),
    ):
        total = sum(counts.values())
        read = sent["git/get-tree"] + sent["git/get-blob"]
        print(
            f"{name}: webhook {answer}; {total} API requests"
            + (f" (goal <= {goal})" if goal else "")
            + f"; {read:,} bytes of repository read, {sum(sent.values()):,} bytes in all"
        )
        for operation, count in sorted(counts.items()):
            print(f"    {count} x {operation}: {sent[operation]:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
