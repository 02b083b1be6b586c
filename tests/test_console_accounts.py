"""The account operations the console calls, against a real JupyterHub 5.5 with
NativeAuthenticator 1.3.0: list, discard, an admin's own password, a student's reset."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.store import Store
from deploy import operations
from deploy.host import accounts
from deploy.keys import ServiceKey
from deploy.model import ServerRecord
from deploy.ssh import SSHPool, Target
from tests.sshtarget.target import SSHTarget
from tests.support.hub import Browser, HubSettings, RealHub

pytestmark = pytest.mark.sshd

COURSE = "octo-org/physics101"
STUDENT_PASSWORD = "student-pass-4471"
ADMIN_PASSWORD = "pale-otter-87-lantern"


@pytest.fixture
async def engine(hub_target: tuple[SSHTarget, RealHub], tmp_path: Path):
    ssh, _ = hub_target
    store = await Store.open(tmp_path / "data")
    engine = operations.Engine(
        records=store,
        ssh=SSHPool(),
        service_key=ServiceKey(ssh.client_key, "", "", "", tmp_path / "key"),
    )
    await store.save_server(COURSE, ServerRecord("ssh", ssh.host, ssh.port, host_key=ssh.host_key))
    yield engine
    await engine.close()
    await store.close()


async def test_the_consoles_account_operations(
    hub_target: tuple[SSHTarget, RealHub], engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ssh, hub = hub_target
    hub.start(HubSettings(enable_signup=True, admins=("alice",)))
    target = Target(ssh.host, ssh.port, pinned_key=ssh.host_key, client_key=ssh.client_key)
    await accounts.seed_admins(engine.ssh, target, ["alice"], wait=0)
    for name in ("erin", "frank"):
        assert "sent to the admin" in Browser(hub).signup(name, STUDENT_PASSWORD)
    await operations.approve_students(engine, COURSE, ["erin"], progress=_noop)

    listed = await operations.hub_accounts(engine, COURSE)
    assert [r.name for r in listed.waiting] == ["frank"]
    assert [r.name for r in listed.approved] == ["alice", "erin"]

    outcome = await operations.discard_students(engine, COURSE, ["frank", "erin"])
    assert outcome.done == ("frank",) and outcome.already == ("erin",)
    assert "frank" not in (await operations.hub_accounts(engine, COURSE)).names()

    with pytest.raises(operations.OperationError, match="shorter than 10"):
        await operations.set_hub_password(engine, COURSE, "alice", "short", "short")
    with pytest.raises(operations.OperationError, match="most common"):
        await operations.set_hub_password(engine, COURSE, "alice", "1234567890", "1234567890")
    with pytest.raises(operations.OperationError, match="differ"):
        await operations.set_hub_password(engine, COURSE, "alice", ADMIN_PASSWORD, "typo")
    await operations.set_hub_password(engine, COURSE, "alice", ADMIN_PASSWORD, ADMIN_PASSWORD)
    alice = Browser(hub)
    assert alice.login("alice", ADMIN_PASSWORD) and alice.is_admin()

    with pytest.raises(operations.OperationError, match="admins set their own"):
        await operations.reset_student_password(engine, COURSE, "alice")
    with pytest.raises(operations.OperationError, match="not an approved student"):
        await operations.reset_student_password(engine, COURSE, "frank")
    fresh = await operations.reset_student_password(engine, COURSE, "erin")
    assert len(fresh) >= 16
    assert Browser(hub).login("erin", fresh)
    assert not Browser(hub).login("erin", STUDENT_PASSWORD)

    seen = caplog.text + (ssh.sandbox / "log" / "commands.log").read_text()
    assert ADMIN_PASSWORD not in seen and fresh not in seen


async def _noop(line: str) -> None:
    pass
