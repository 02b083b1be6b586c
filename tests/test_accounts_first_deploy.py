"""Acceptance: during a first deploy, a stranger who keeps signing up as the admin never
gets the account (safety invariant 9).

A real JupyterHub 5.5 with NativeAuthenticator 1.3.0 stands in for TLJH's hub: each time
TLJH would start it (its installer, ``tljh-config reload hub``) it is started with the
settings the deploy wrote. Meanwhile a stranger signs up as ``alice`` over and over. Each
hub start is recorded with whether sign-up was open and which accounts existed.
"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
import requests

from bot.store import Store
from deploy import operations
from deploy.course.config import load_course
from deploy.host import accounts
from deploy.keys import ServiceKey
from deploy.ssh import SSHPool, Target
from tests.sshtarget.target import SSHTarget
from tests.support.hub import Browser, HubSupervisor, RealHub, Stranger

pytestmark = pytest.mark.sshd

STRANGER_PASSWORD = "i-am-alice-honest-42"
ADMIN_PASSWORD = "the-real-alice-pw-9031"


def course_files(target: SSHTarget) -> dict[str, bytes]:
    config = (
        "server:\n"
        "  provider: ssh\n"
        f"  host: {target.host}\n"
        f"  port: {target.port}\n"
        "hub:\n"
        "  admins: [Alice]\n"
        "  signup: approval\n"
    )
    return {".github/classroom.yml": config.encode()}


async def noop(line: str) -> None:
    pass


async def test_a_stranger_signing_up_as_the_admin_during_the_first_deploy_never_gets_it(
    hub_target: tuple[SSHTarget, RealHub], tmp_path
) -> None:
    ssh, hub = hub_target
    store = await Store.open(tmp_path / "data")
    engine = operations.Engine(
        records=store,
        ssh=SSHPool(),
        service_key=ServiceKey(ssh.client_key, "", "", "", tmp_path / "key"),
    )
    config = load_course(course_files(ssh), "octo-org", "physics101")
    try:
        with (
            HubSupervisor(hub, ssh.sandbox / "control") as supervisor,
            Stranger(hub, "alice", STRANGER_PASSWORD) as stranger,
        ):
            result = await operations.deploy(
                engine, "octo-org/physics101", config, mode="apply", progress=noop
            )
            # Keep trying a while with sign-up open.
            while sum("already in use" in a for a in stranger.answers) < 3:
                await asyncio.sleep(0.2)
        assert supervisor.errors == []
        assert result.conclusion == "success", result.summary

        # Every hub start: sign-up was closed, or alice's account already existed.
        starts = ssh.state("hub-starts")
        assert isinstance(starts, list) and len(starts) >= 2
        assert starts[0]["enable_signup"] is False and starts[0]["rows"] == []
        assert any(s["enable_signup"] for s in starts)
        for start in starts:
            if start["enable_signup"]:
                assert ["alice", True] in start["rows"], starts

        # The stranger was told "closed" or "already in use", never that it worked.
        assert stranger.answers
        assert all(a == "closed" or "already in use" in a for a in stranger.answers), set(
            stranger.answers
        )
        assert not Browser(hub).login("alice", STRANGER_PASSWORD)
        with sqlite3.connect(hub.database) as db:
            rows = db.execute("SELECT username, is_authorized FROM users_info").fetchall()
        assert rows == [("alice", 1)]

        # The real alice sets her password (as the console will) and is the hub's admin.
        target = Target(ssh.host, ssh.port, pinned_key=ssh.host_key, client_key=ssh.client_key)
        assert await accounts.set_password(engine.ssh, target, "alice", ADMIN_PASSWORD)
        alice = Browser(hub)
        assert alice.login("alice", ADMIN_PASSWORD)
        assert alice.is_admin()

        # The console's hub service: its token (made on the server) lists students and
        # their last activity through the hub's REST API, and appears in no report.
        token = (ssh.sandbox / "opt" / "tljh" / "state" / "classroom-api-token").read_text()
        users = requests.get(
            f"{hub.url}/hub/api/users",
            headers={"Authorization": f"token {token.strip()}"},
            timeout=10,
        )
        assert users.status_code == 200, users.text
        assert [(u["name"], "last_activity" in u) for u in users.json()] == [("alice", True)]
        assert token.strip() not in result.summary + result.log
        with sqlite3.connect(hub.database) as db:
            (stored,) = db.execute("SELECT password FROM users_info").fetchone()
        seen = result.summary + result.log + (ssh.sandbox / "log" / "commands.log").read_text()
        assert stored.decode() not in seen and ADMIN_PASSWORD not in seen
        assert token.strip() not in (ssh.sandbox / "log" / "commands.log").read_text()

        # Deploying again changes nothing: the account is seen, sign-up stays open.
        again = await operations.deploy(
            engine, "octo-org/physics101", config, mode="apply", progress=noop
        )
        assert again.title == "Nothing to do", again.summary
    finally:
        await engine.close()
        await store.close()
