"""Each course has its own SSH key, over the real loopback sshd: one course's key opens no
other course's server, and a server from before per-course keys moves to its course's key
on its next deploy without ever being locked out."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from deploy import operations
from deploy.course.config import load_course
from deploy.keys import CourseKey, ServiceKey, derive_course_key
from deploy.model import ServerRecord
from deploy.ssh import SSHPool, Target, Unreachable, key_line
from tests.support.engine import MemoryRecords, noop

pytestmark = pytest.mark.sshd

COURSE_A = "math-dept/algebra"
COURSE_B = "mallory/hub-taker"
SECRET = b"a test secret for deriving course keys, 44 b="


def keys() -> dict[str, CourseKey]:
    return {COURSE_A: derive_course_key(SECRET, 101), COURSE_B: derive_course_key(SECRET, 202)}


@pytest.fixture
async def engine(tmp_path: Path, ssh_target):
    course_keys = keys()

    async def resolve(course: str) -> CourseKey | None:
        return course_keys.get(course)

    engine = operations.Engine(
        records=MemoryRecords(),
        ssh=SSHPool(),
        service_key=ServiceKey(
            ssh_target.client_key, key_line(ssh_target.client_key), "", "", tmp_path / "k"
        ),
        key_resolver=resolve,
    )
    yield engine
    await engine.close()


def config_for(target, course: str):
    """A ``provider: ssh`` course whose config names the loopback server's address."""
    owner, repo = course.split("/")
    text = (
        f"server:\n  provider: ssh\n  host: {target.host}\n  port: {target.port}\n"
        "hub:\n  admins: [alice]\n"
    )
    files = {".github/classroom.yml": text.encode(), "apt.txt": b"graphviz\n"}
    return load_course(files, owner, repo)


async def opens(target, key) -> bool:
    """Whether ``key`` alone logs in to the server (a connection of its own)."""
    pool = SSHPool(max_reconnects=0)
    try:
        status, _, _ = await pool.run_script(
            Target(target.host, target.port, "root", target.host_key, client_key=key), "true"
        )
        return status == 0
    except Unreachable:
        return False
    finally:
        await pool.close_all()


async def remember_old_server(engine, target, course: str) -> None:
    """What the service remembered of a course's server before per-course keys."""
    await engine.records.save_server(
        course, ServerRecord("ssh", address=target.host, port=target.port, host_key=None)
    )


async def test_an_old_server_moves_to_its_course_key_on_the_next_deploy(engine, ssh_target):
    service, course_key = ssh_target.client_key, keys()[COURSE_A]
    await remember_old_server(engine, ssh_target, COURSE_A)
    assert await opens(ssh_target, service)
    assert not await opens(ssh_target, course_key.private)

    result = await operations.deploy(
        engine, COURSE_A, config_for(ssh_target, COURSE_A), mode="apply", progress=noop
    )

    assert result.conclusion == "success", result.summary
    assert await opens(ssh_target, course_key.private)
    assert not await opens(ssh_target, service)
    assert ssh_target.authorized_blobs() == [course_key.public_line.split()[1]]
    record = await engine.records.get_server(COURSE_A)
    assert record is not None and record.trusts_service_key is False
    # From then on only the course's key is offered.
    config = config_for(ssh_target, COURSE_A)
    target = await operations.server_target(engine, COURSE_A, config, record)
    assert target.client_keys == [course_key.private]
    again = await operations.deploy(
        engine, COURSE_A, config_for(ssh_target, COURSE_A), mode="apply", progress=noop
    )
    assert again.conclusion in ("success", "neutral"), again.summary


async def test_a_move_cut_in_the_middle_still_logs_in_next_time(engine, ssh_target, monkeypatch):
    service, course_key = ssh_target.client_key, keys()[COURSE_A]
    await remember_old_server(engine, ssh_target, COURSE_A)
    real_run = engine.ssh.run_script

    async def cut_before_the_service_key_goes(target, script, *args, **kwargs):
        if "mv -f" in script:
            raise Unreachable("the connection was cut")
        return await real_run(target, script, *args, **kwargs)

    monkeypatch.setattr(engine.ssh, "run_script", cut_before_the_service_key_goes)
    cut = await operations.deploy(
        engine, COURSE_A, config_for(ssh_target, COURSE_A), mode="apply", progress=noop
    )
    assert cut.conclusion == "failure"
    # Both keys open it now: the course's was added, the service's not yet removed.
    assert await opens(ssh_target, course_key.private)
    assert await opens(ssh_target, service)
    record = await engine.records.get_server(COURSE_A)
    assert record is not None and record.trusts_service_key is True

    monkeypatch.setattr(engine.ssh, "run_script", real_run)
    await engine.ssh.close_all()
    done = await operations.deploy(
        engine, COURSE_A, config_for(ssh_target, COURSE_A), mode="apply", progress=noop
    )
    assert done.conclusion == "success", done.summary
    assert await opens(ssh_target, course_key.private)
    assert not await opens(ssh_target, service)
    assert len(ssh_target.authorized_blobs()) == 1


async def test_a_move_cut_after_the_service_key_went_still_logs_in(engine, ssh_target):
    """The record still says "may trust the service key", but the server already forgot it:
    the course's key, offered first, opens it and the move completes."""
    course_key = keys()[COURSE_A]
    ssh_target.authorized_keys.write_text(course_key.public_line + "\n")
    await remember_old_server(engine, ssh_target, COURSE_A)
    result = await operations.deploy(
        engine, COURSE_A, config_for(ssh_target, COURSE_A), mode="apply", progress=noop
    )
    assert result.conclusion == "success", result.summary
    record = await engine.records.get_server(COURSE_A)
    assert record is not None and record.trusts_service_key is False


async def test_course_b_key_does_not_open_course_a_server(engine, ssh_target):
    key_a, key_b = keys()[COURSE_A], keys()[COURSE_B]
    await remember_old_server(engine, ssh_target, COURSE_A)
    deployed = await operations.deploy(
        engine, COURSE_A, config_for(ssh_target, COURSE_A), mode="apply", progress=noop
    )
    assert deployed.conclusion == "success", deployed.summary
    commands = (ssh_target.sandbox / "log" / "commands.log").read_text()

    # B's config names A's address; A's connection is still pooled in the same engine.
    taken = await operations.deploy(
        engine, COURSE_B, config_for(ssh_target, COURSE_B), mode="apply", progress=noop
    )

    assert taken.conclusion == "failure"
    assert "refused the course's SSH key" in taken.summary
    assert key_b.public_line in taken.summary  # the line B's own server would need
    assert key_a.public_line not in taken.summary
    assert (ssh_target.sandbox / "log" / "commands.log").read_text() == commands
    assert not await opens(ssh_target, key_b.private)
    assert await opens(ssh_target, key_a.private)


async def test_a_new_ssh_server_is_offered_only_the_course_key(engine, ssh_target):
    """A ``provider: ssh`` host the course never had gets no service key, even one that
    (from older instructions) still trusts it: the check run says which line to add."""
    result = await operations.deploy(
        engine, COURSE_A, config_for(ssh_target, COURSE_A), mode="apply", progress=noop
    )
    assert result.conclusion == "failure"
    assert keys()[COURSE_A].public_line in result.summary
    assert "authorized_keys" in result.summary

    ssh_target.authorize(keys()[COURSE_A].public_line)
    done = await operations.deploy(
        engine, COURSE_A, config_for(ssh_target, COURSE_A), mode="apply", progress=noop
    )
    assert done.conclusion == "success", done.summary
    record = await engine.records.get_server(COURSE_A)
    assert record is not None and record.trusts_service_key is False


async def test_the_pool_never_lends_one_course_connection_to_another(engine, ssh_target):
    key_a, key_b = keys()[COURSE_A], keys()[COURSE_B]
    ssh_target.authorize(key_a.public_line)
    a = Target(ssh_target.host, ssh_target.port, "root", ssh_target.host_key, key_a.private)
    b = replace(a, client_key=key_b.private)
    assert a == b  # same server, same user: only the key tells them apart
    await engine.ssh.run_script(a, "true")
    with pytest.raises(Unreachable, match="refused"):
        await engine.ssh.run_script(b, "true")
