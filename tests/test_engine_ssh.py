"""The engine end to end over a real SSH server on loopback (sandboxed stand-ins for TLJH,
apt, conda, pip and systemctl): deploy from scratch, again, and with one package added."""

from __future__ import annotations

import pytest

from bot.store import Store
from deploy import operations
from deploy.course.config import load_course
from deploy.keys import ServiceKey
from deploy.ssh import SSHPool

pytestmark = pytest.mark.sshd


def course_files(
    target, *, apt: str = "graphviz\n", host_key: str | None = None
) -> dict[str, bytes]:
    pin = f"  host_key: {host_key}\n" if host_key else ""
    config = (
        "server:\n"
        "  provider: ssh\n"
        f"  host: {target.host}\n"
        f"  port: {target.port}\n"
        f"{pin}"
        "hub:\n"
        "  admins: [alice]\n"
        "  limits: {memory: 1G, cpu: 1}\n"
    )
    return {
        ".github/classroom.yml": config.encode(),
        "apt.txt": apt.encode(),
        "requirements.txt": b"numpy==1.26.4\n",
    }


@pytest.fixture
async def engine(tmp_path, ssh_target):
    store = await Store.open(tmp_path / "data")
    key = ServiceKey(ssh_target.client_key, "", "", "", tmp_path / "key")
    engine = operations.Engine(records=store, ssh=SSHPool(), service_key=key)
    yield engine
    await engine.close()
    await store.close()


def changing_calls(target) -> list[dict]:
    changing = []
    for call in target.calls():
        program, args = call["program"], call.get("argv", [])
        if program == "systemctl" and args and args[0] in ("is-active", "status"):
            continue
        if program in ("dpkg-query", "curl") or (program == "tljh-config" and args[:1] == ["show"]):
            continue
        if program in ("conda", "pip-user", "pip-hub") and args[:1] in (["list"], ["show"]):
            continue
        changing.append(call)
    return changing


async def noop(_line: str) -> None:
    return None


async def test_deploy_from_scratch_then_nothing_then_one_package(engine, ssh_target):
    config = load_course(course_files(ssh_target), "octo-org", "physics101")
    lines: list[str] = []

    async def progress(line: str) -> None:
        lines.append(line)

    first = await operations.deploy(
        engine, "octo-org/physics101", config, mode="apply", progress=progress
    )
    assert first.conclusion == "success", first.summary
    assert first.hub_url == "http://127.0.0.1"
    assert lines, "progress lines were streamed"
    apt_state = ssh_target.state("apt")
    assert "graphviz" in apt_state
    assert ssh_target.canary.intact()
    record = await engine.records.get_server("octo-org/physics101")
    assert record.host_key and record.host_key.split()[:2] == ssh_target.host_key.split()[:2]

    before = len(ssh_target.calls())
    again = await operations.deploy(
        engine, "octo-org/physics101", config, mode="apply", progress=noop
    )
    assert again.conclusion == "neutral" and again.title == "Nothing to do"
    assert changing_calls_since(ssh_target, before) == []

    more = load_course(course_files(ssh_target, apt="graphviz\njq\n"), "octo-org", "physics101")
    before = len(ssh_target.calls())
    third = await operations.deploy(
        engine, "octo-org/physics101", more, mode="apply", progress=noop
    )
    assert third.conclusion == "success", third.summary
    installs = [
        c
        for c in ssh_target.calls()[before:]
        if c["program"] == "apt-get" and "install" in c["argv"]
    ]
    assert len(installs) == 1
    assert "jq" in installs[0]["argv"] and "graphviz" not in installs[0]["argv"]
    assert ssh_target.canary.intact()


def changing_calls_since(target, index: int) -> list[dict]:
    class Window:
        def calls(self):
            return target.calls()[index:]

    return changing_calls(Window())


async def test_plan_mode_changes_nothing(engine, ssh_target):
    config = load_course(course_files(ssh_target), "octo-org", "physics101")
    result = await operations.deploy(
        engine, "octo-org/physics101", config, mode="plan", progress=noop
    )
    assert result.conclusion == "success"
    assert "graphviz" in result.summary
    assert changing_calls(ssh_target) == []
    assert ssh_target.canary.intact()


async def test_a_changed_host_key_refuses_and_runs_nothing(engine, ssh_target):
    config = load_course(course_files(ssh_target), "octo-org", "physics101")
    ok = await operations.deploy(engine, "octo-org/physics101", config, mode="apply", progress=noop)
    assert ok.conclusion == "success", ok.summary
    await engine.ssh.close_all()
    ssh_target.regenerate_host_key()
    before = len(ssh_target.calls())
    more = load_course(course_files(ssh_target, apt="graphviz\njq\n"), "octo-org", "physics101")
    refused = await operations.deploy(
        engine, "octo-org/physics101", more, mode="apply", progress=noop
    )
    assert refused.conclusion == "failure"
    assert "host key" in refused.summary
    assert ssh_target.calls()[before:] == []


async def test_the_configs_host_key_wins_over_first_contact(engine, ssh_target, tmp_path):
    from tests.sshtarget.target import generate_key, public_line

    other = public_line(generate_key(tmp_path / "other"))
    config = load_course(course_files(ssh_target, host_key=other), "octo-org", "physics101")
    refused = await operations.deploy(
        engine, "octo-org/physics101", config, mode="plan", progress=noop
    )
    assert refused.conclusion == "failure" and "host key" in refused.summary
    assert ssh_target.calls() == []
