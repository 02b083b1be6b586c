"""Hub accounts against a real JupyterHub 5.5 with NativeAuthenticator 1.3.0.

The service's own code (``deploy.host.accounts`` over the loopback SSH server) seeds, approves,
discards and sets passwords in the hub's database; the hub's own sign-up and login pages
prove each effect.
"""

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

ADMIN_PASSWORD = "pale-otter-87-lantern"
STUDENT_PASSWORD = "student-pass-4471"


def target_of(ssh: SSHTarget) -> Target:
    return Target(ssh.host, ssh.port, pinned_key=ssh.host_key, client_key=ssh.client_key)


def everything_the_server_saw(ssh: SSHTarget) -> str:
    log = ssh.sandbox / "log"
    places = (log / "commands.log", log / "calls.jsonl", ssh.sshd_dir / "sshd.log")
    return "\n".join(p.read_text() for p in places if p.exists())


def password_hashes(database: Path) -> list[bytes]:
    import sqlite3

    with sqlite3.connect(database) as db:
        return [row[0] for row in db.execute("SELECT password FROM users_info")]


@pytest.fixture
async def pool():
    pool = SSHPool()
    yield pool
    await pool.close_all()


async def test_a_seeded_admin_cannot_be_claimed_and_logs_in_once_given_a_password(
    hub_target: tuple[SSHTarget, RealHub], pool: SSHPool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ssh, hub = hub_target
    target = target_of(ssh)
    hub.start(HubSettings(enable_signup=False, admins=("alice",)))

    seeded = await accounts.seed_admins(pool, target, ["Alice"], wait=0)
    assert seeded.created == ("alice",)
    again = await accounts.seed_admins(pool, target, ["alice"], wait=0)
    assert again == accounts.SeedOutcome(created=(), present=("alice",), taken=())

    hub.start(HubSettings(enable_signup=True, admins=("alice",)))
    stranger = Browser(hub)
    assert "already in use" in stranger.signup("alice", "stranger-password-1")
    assert not stranger.login("alice", "stranger-password-1")
    assert not Browser(hub).login("alice", ADMIN_PASSWORD)

    assert await accounts.set_password(pool, target, "alice", ADMIN_PASSWORD)
    admin = Browser(hub)
    assert admin.login("alice", ADMIN_PASSWORD)
    assert admin.is_admin()
    assert not await accounts.set_password(pool, target, "nobody", ADMIN_PASSWORD)

    # Neither the password nor any stored hash reached a command, a log or the service's log.
    hashes = password_hashes(hub.database)
    seen = everything_the_server_saw(ssh) + caplog.text
    assert ADMIN_PASSWORD not in seen
    for stored in hashes:
        assert stored.decode() not in seen
        assert stored[7:29].decode() not in seen  # the salt alone


async def test_an_admin_name_taken_by_a_sign_up_is_reported_and_left_alone(
    hub_target: tuple[SSHTarget, RealHub], pool: SSHPool
) -> None:
    ssh, hub = hub_target
    hub.start(HubSettings(enable_signup=True, admins=()))
    assert "sent to the admin" in Browser(hub).signup("carol", "carol-own-password-1")

    seeded = await accounts.seed_admins(pool, target_of(ssh), ["carol", "dave"], wait=0)
    assert seeded.created == ("dave",)
    assert seeded.taken == ("carol",)
    listed = await accounts.list_accounts(pool, target_of(ssh))
    assert {r.name: r.authorized for r in listed.rows} == {"carol": False, "dave": True}
    assert listed.seeded == {"dave"}


async def test_students_are_approved_and_discarded_through_the_database(
    hub_target: tuple[SSHTarget, RealHub], pool: SSHPool
) -> None:
    ssh, hub = hub_target
    target = target_of(ssh)
    hub.start(HubSettings(enable_signup=True))
    for name in ("erin", "frank", "grace"):
        assert "sent to the admin" in Browser(hub).signup(name, STUDENT_PASSWORD)
    assert not Browser(hub).login("erin", STUDENT_PASSWORD)

    listed = await accounts.list_accounts(pool, target)
    assert [r.name for r in listed.waiting] == ["erin", "frank", "grace"]

    before = pool.commands_run
    outcome = await accounts.approve(pool, target, ["erin", "Frank", "nobody"])
    assert pool.commands_run == before + 1  # many names, one round trip
    assert outcome == accounts.NamesOutcome(("erin", "frank"), (), ("nobody",))
    for name in ("erin", "frank"):
        student = Browser(hub)
        assert student.login(name, STUDENT_PASSWORD)
        student.home()  # the hub records activity on a signed-in request
    active = {r.name: r.last_activity for r in (await accounts.list_accounts(pool, target)).rows}
    assert active["erin"] and active["frank"] and active["grace"] == ""
    again = await accounts.approve(pool, target, ["erin"])
    assert again == accounts.NamesOutcome((), ("erin",), ())
    assert Browser(hub).login("erin", STUDENT_PASSWORD)  # approving twice does not toggle

    discarded = await accounts.discard(pool, target, ["grace", "erin"])
    assert discarded == accounts.NamesOutcome(("grace",), ("erin",), ())
    listed = await accounts.list_accounts(pool, target)
    assert [r.name for r in listed.rows] == ["erin", "frank"]
    assert not Browser(hub).login("grace", STUDENT_PASSWORD)
    assert Browser(hub).login("erin", STUDENT_PASSWORD)

    # A locked-out student gets a new password; the old one stops working.
    assert await accounts.set_password(pool, target, "frank", "brand-new-pass-2209")
    assert not Browser(hub).login("frank", STUDENT_PASSWORD)
    assert Browser(hub).login("frank", "brand-new-pass-2209")


async def test_before_the_hub_made_its_database_nothing_is_written(
    hub_target: tuple[SSHTarget, RealHub], pool: SSHPool
) -> None:
    ssh, hub = hub_target
    with pytest.raises(accounts.AccountsUnavailable, match="no account database yet"):
        await accounts.seed_admins(pool, target_of(ssh), ["alice"], wait=0)
    assert not hub.database.exists()  # the hub must create it (it refuses one made by us)
    assert await accounts.list_accounts(pool, target_of(ssh)) == accounts.HubAccounts()


async def test_approve_command_approves_waiting_students_and_says_which(
    hub_target: tuple[SSHTarget, RealHub], tmp_path: Path
) -> None:
    ssh, hub = hub_target
    hub.start(HubSettings(enable_signup=True))
    for name in ("erin", "<img>"):
        assert "sent to the admin" in Browser(hub).signup(name, STUDENT_PASSWORD)
    assert "sent to the admin" in Browser(hub).signup("quiet-student", STUDENT_PASSWORD)
    store = await Store.open(tmp_path / "data")
    engine = operations.Engine(
        records=store,
        ssh=SSHPool(),
        service_key=ServiceKey(ssh.client_key, "", "", "", tmp_path / "key"),
    )
    await store.save_server(
        "octo-org/physics101",
        ServerRecord("ssh", ssh.host, ssh.port, host_key=ssh.host_key),
    )

    async def progress(line: str) -> None:
        pass

    try:
        result = await operations.approve_students(
            engine, "octo-org/physics101", ["Erin", "<IMG>", "nobody"], progress=progress
        )
        again = await operations.approve_students(
            engine, "octo-org/physics101", ["erin"], progress=progress
        )
    finally:
        await engine.close()
        await store.close()
    assert result.conclusion == "success" and result.title == "Approved 2 students"
    assert result.details["approved"] == ["erin", "<img>"]
    assert result.details["unknown"] == ["nobody"]
    assert "- Approved; they can log in now: erin, &lt;img&gt;" in result.summary
    assert "- Unknown: nobody signed up under these names: nobody" in result.summary
    assert "<img>" not in result.summary
    assert "quiet-student" not in result.summary  # nothing else about students is posted
    assert Browser(hub).login("erin", STUDENT_PASSWORD)
    assert Browser(hub).login("<img>", STUDENT_PASSWORD)
    assert not Browser(hub).login("quiet-student", STUDENT_PASSWORD)
    assert again.title == "Nobody new approved"
    assert "Already approved: erin" in again.summary


async def test_a_name_reclaimed_after_the_admin_row_was_deleted_is_not_taken_for_ours(
    hub_target: tuple[SSHTarget, RealHub], pool: SSHPool
) -> None:
    import sqlite3

    ssh, hub = hub_target
    target = target_of(ssh)
    hub.start(HubSettings(enable_signup=True, admins=()))
    await accounts.seed_admins(pool, target, ["alice"], wait=0)
    assert (await accounts.list_accounts(pool, target)).seeded == {"alice"}
    # Somebody removed the row by hand (NativeAuthenticator's pages can): the name is free.
    with sqlite3.connect(hub.database) as db:
        db.execute("DELETE FROM users_info WHERE username='alice'")
    assert "sent to the admin" in Browser(hub).signup("alice", "stranger-password-1")

    listed = await accounts.list_accounts(pool, target)
    assert listed.seeded == frozenset() and "alice" in listed.names()
    seeded = await accounts.seed_admins(pool, target, ["alice"], wait=0)
    assert seeded.taken == ("alice",) and seeded.present == ()
