"""The SSH executor and the service key, against the real loopback sshd."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from deploy.keys import KEY_COMMENT, ensure_service_key
from deploy.model import Step
from deploy.redact import REDACTED, add_secrets
from deploy.ssh import (
    HostKeyChanged,
    SSHError,
    SSHPool,
    Target,
    Unreachable,
    fingerprint,
    key_line,
    step_command,
    wrap_script,
)
from tests.sshtarget.target import SSHTarget

STAMPED = re.compile(r"^\d\d:\d\d:\d\d (.*)$")


class Lines:
    """A progress sink that keeps every line it is given."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    async def __call__(self, line: str) -> None:
        self.lines.append(line)

    def texts(self) -> list[str]:
        found = []
        for line in self.lines:
            match = STAMPED.match(line)
            assert match, f"line without a timestamp: {line!r}"
            found.append(match.group(1))
        return found


@pytest.fixture
async def pool() -> AsyncIterator[SSHPool]:
    pool = SSHPool(reconnect_delay=0.1)
    yield pool
    await pool.close_all()


def target_of(ssh_target: SSHTarget, pinned: str | None = None) -> Target:
    return Target(
        host=ssh_target.host,
        port=ssh_target.port,
        user="root",
        pinned_key=pinned,
        client_key=ssh_target.client_key,
    )


def step(script: str, name: str = "test", timeout: float = 60.0) -> Step:
    return Step(name=name, reason="a test", script=script, timeout=timeout)


# -- pure helpers ---------------------------------------------------------------------


def test_wrap_script_makes_one_compound_command() -> None:
    assert wrap_script("echo a\necho b\n") == "{\necho a\necho b\n}\n"


def test_wrap_script_can_merge_stderr_on_the_server() -> None:
    assert wrap_script("echo a", merge_stderr=True) == "{\necho a\n} 2>&1\n"


def test_step_command_keeps_the_script_out_of_argv() -> None:
    command = step_command(90.5)
    assert command == "timeout --signal=TERM --kill-after=10 91 bash -s"


def test_step_command_never_asks_for_zero_seconds() -> None:
    # `timeout 0` would mean no limit at all.
    assert " 1 bash" in step_command(0.2)


def test_key_line_drops_the_comment() -> None:
    assert key_line("ssh-ed25519 AAAAC3Nz root@host") == "ssh-ed25519 AAAAC3Nz"


def test_fingerprint_matches_openssh() -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    line = key.export_public_key("openssh").decode()
    blob = base64.b64decode(line.split()[1])
    expected = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    assert fingerprint(line) == expected


def test_fingerprint_of_garbage_is_labelled() -> None:
    assert fingerprint("not a key") == "unreadable key"


def test_host_key_changed_message_names_both_keys() -> None:
    old = key_line(asyncssh.generate_private_key("ssh-ed25519"))
    new = key_line(asyncssh.generate_private_key("ssh-ed25519"))
    message = str(HostKeyChanged("hub.example.edu", 2222, new, old))
    assert message.startswith("the server at hub.example.edu:2222 presented a different host key")
    assert f"({fingerprint(new)}) than the one pinned ({fingerprint(old)})" in message
    assert "server.host_key" in message


def test_target_address_brackets_ipv6() -> None:
    assert Target(host="::1", port=2222).address == "[::1]:2222"
    assert Target(host="hub.example.edu").address == "hub.example.edu:22"


def test_target_equality_ignores_the_key_object() -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    assert Target(host="h", client_key=key) == Target(host="h")


# -- the service key --------------------------------------------------------------------


def test_service_key_is_made_private_then_reloaded(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = ensure_service_key(data_dir)
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    again = ensure_service_key(data_dir)
    assert again.public_line == first.public_line
    assert again.private.export_private_key("pkcs8-pem") == first.private.export_private_key(
        "pkcs8-pem"
    )


def test_service_key_public_line_and_md5(tmp_path: Path) -> None:
    key = ensure_service_key(tmp_path)
    algorithm, blob, comment = key.public_line.split()
    assert (algorithm, comment) == ("ssh-ed25519", KEY_COMMENT)
    digest = hashlib.md5(base64.b64decode(blob)).hexdigest()  # noqa: S324 - DigitalOcean's format
    assert key.fingerprint_md5 == ":".join(digest[i : i + 2] for i in range(0, 32, 2))
    assert key.fingerprint_sha256 == fingerprint(key.public_line)


def test_service_key_tightens_loose_permissions(tmp_path: Path) -> None:
    made = ensure_service_key(tmp_path)
    tmp_path.chmod(0o755)
    made.path.chmod(0o644)
    ensure_service_key(tmp_path)
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
    assert stat.S_IMODE(made.path.stat().st_mode) == 0o600


def test_service_key_unreadable_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "ssh_ed25519").write_text("not a key")
    with pytest.raises(ValueError, match="ssh_ed25519: not a readable OpenSSH private key"):
        ensure_service_key(tmp_path)


# -- against the loopback sshd ----------------------------------------------------------

needs_sshd = pytest.mark.sshd


@needs_sshd
async def test_step_streams_timestamped_redacted_lines(
    ssh_target: SSHTarget, pool: SSHPool
) -> None:
    secret = "s3cret-value-for-ssh-test"
    add_secrets([secret])
    progress = Lines()
    result = await pool.run_step(
        target_of(ssh_target),
        step(f"echo one\necho two >&2\necho token={secret}\napt-get update"),
        progress,
    )
    assert result.ok, result.output_tail
    assert progress.texts() == ["one", "two", f"token={REDACTED}", "Reading package lists... Done"]
    assert secret not in result.output_tail
    assert [c["argv"] for c in ssh_target.calls("apt-get")] == [["update"]]


@needs_sshd
async def test_failing_step_returns_the_tail(ssh_target: SSHTarget, pool: SSHPool) -> None:
    script = "for i in $(seq 1 80); do echo line $i; done\nexit 3\necho never"
    result = await pool.run_step(target_of(ssh_target), step(script, "apt"), Lines())
    assert not result.ok
    lines = result.output_tail.splitlines()
    assert lines[-1] == "step apt failed with exit status 3"
    assert lines[0] == "line 31"
    assert "line 80" in lines
    assert "never" not in result.output_tail


@needs_sshd
async def test_failing_command_under_set_e_stops_the_step(
    ssh_target: SSHTarget, pool: SSHPool
) -> None:
    ssh_target.fail_next("apt-get", "E: Could not get lock /var/lib/dpkg/lock-frontend")
    result = await pool.run_step(
        target_of(ssh_target),
        step("set -eu\napt-get install -y graphviz\necho installed"),
        Lines(),
    )
    assert not result.ok
    assert "Could not get lock" in result.output_tail
    assert "installed" not in result.output_tail.splitlines()
    assert "graphviz" not in (ssh_target.state("apt") or {})  # type: ignore[operator]


@needs_sshd
async def test_step_timeout_kills_and_fails(ssh_target: SSHTarget, pool: SSHPool) -> None:
    ssh_target.hang_next("apt-get")
    result = await pool.run_step(
        target_of(ssh_target), step("apt-get update\necho after", "apt", timeout=2), Lines()
    )
    assert not result.ok
    assert result.output_tail.endswith("step apt timed out after 2 s and was stopped")
    assert "after" not in result.output_tail.splitlines()
    # The connection is still good for the next step.
    assert (await pool.run_step(target_of(ssh_target), step("echo ok"), Lines())).ok
    assert pool.connections_opened == 1


@needs_sshd
async def test_first_contact_returns_the_key_to_pin(ssh_target: SSHTarget, pool: SSHPool) -> None:
    _, seen = await pool.connect(target_of(ssh_target))
    assert seen == ssh_target.host_key


@needs_sshd
async def test_pinned_key_that_matches_connects(ssh_target: SSHTarget, pool: SSHPool) -> None:
    target = target_of(ssh_target, pinned=ssh_target.host_key + " root@hub")
    result = await pool.run_step(target, step("echo pinned"), Lines())
    assert result.ok


@needs_sshd
async def test_changed_host_key_refuses_and_runs_nothing(
    ssh_target: SSHTarget, pool: SSHPool
) -> None:
    pinned = ssh_target.host_key
    presented = ssh_target.regenerate_host_key()
    with pytest.raises(HostKeyChanged) as raised:
        await pool.run_step(target_of(ssh_target, pinned=pinned), step("apt-get update"), Lines())
    assert raised.value.presented == presented
    assert raised.value.pinned == pinned
    assert f"127.0.0.1:{ssh_target.port}" in str(raised.value)
    assert fingerprint(presented) in str(raised.value)
    assert ssh_target.calls() == []
    assert pool.commands_run == 0


@needs_sshd
async def test_pooled_connection_is_not_reused_past_a_new_pin(
    ssh_target: SSHTarget, pool: SSHPool
) -> None:
    await pool.run_step(target_of(ssh_target), step("true"), Lines())
    other = key_line(asyncssh.generate_private_key("ssh-ed25519"))
    with pytest.raises(HostKeyChanged):
        await pool.run_step(target_of(ssh_target, pinned=other), step("apt-get update"), Lines())
    assert ssh_target.calls() == []


@needs_sshd
async def test_bad_pinned_key_is_a_clear_error(ssh_target: SSHTarget, pool: SSHPool) -> None:
    with pytest.raises(SSHError, match="not an OpenSSH public key line"):
        await pool.connect(target_of(ssh_target, pinned="ssh-ed25519 nonsense"))


@needs_sshd
async def test_one_connection_for_many_steps(ssh_target: SSHTarget, pool: SSHPool) -> None:
    target = target_of(ssh_target)
    for n in range(5):
        assert (await pool.run_step(target, step(f"echo {n}"), Lines())).ok
    assert pool.counters() == {"connections_opened": 1, "commands_run": 5, "reconnects": 0}


@needs_sshd
async def test_idle_connection_is_closed(ssh_target: SSHTarget) -> None:
    pool = SSHPool(idle_timeout=0.05)
    try:
        connection, _ = await pool.connect(target_of(ssh_target))
        await pool.run_step(target_of(ssh_target), step("true"), Lines())
        await asyncio.wait_for(connection.wait_closed(), 10)
        await pool.run_step(target_of(ssh_target), step("true"), Lines())
        assert pool.connections_opened == 2
    finally:
        await pool.close_all()


@needs_sshd
async def test_cut_connection_reconnects_and_completes(
    ssh_target: SSHTarget, pool: SSHPool
) -> None:
    ssh_target.cut_next("apt-get")
    progress = Lines()
    result = await pool.run_step(
        target_of(ssh_target),
        step("set -e\napt-get install -y graphviz\necho done", "apt"),
        progress,
    )
    assert result.ok, result.output_tail
    assert pool.reconnects == 1
    assert pool.connections_opened == 2
    assert any("reconnecting and running step apt again (1/2)" in t for t in progress.texts())
    assert progress.texts()[-1] == "done"
    assert len(ssh_target.calls("apt-get")) == 2
    assert "graphviz" in ssh_target.state("apt")  # type: ignore[operator]


@needs_sshd
async def test_connection_cut_every_time_gives_up(ssh_target: SSHTarget) -> None:
    pool = SSHPool(max_reconnects=1, reconnect_delay=0)
    try:
        ssh_target.cut_next("apt-get")
        progress = Lines()

        async def cut_again(line: str) -> None:
            # Arm the next cut as soon as the reconnect is announced.
            ssh_target.cut_next("apt-get")
            await progress(line)

        result = await pool.run_step(
            target_of(ssh_target), step("apt-get update", "apt"), cut_again
        )
        assert not result.ok
        assert "lost the connection to" in result.output_tail
        assert "2 times" in result.output_tail
    finally:
        await pool.close_all()


@needs_sshd
async def test_run_script_separates_the_streams(ssh_target: SSHTarget, pool: SSHPool) -> None:
    status, out, err = await pool.run_script(
        target_of(ssh_target), ". /etc/os-release\necho $ID $VERSION_ID\necho oops >&2\nexit 2"
    )
    assert (status, out, err) == (2, "ubuntu 24.04\n", "oops\n")
    assert pool.commands_run == 1


@needs_sshd
async def test_command_reading_stdin_does_not_eat_the_script(
    ssh_target: SSHTarget, pool: SSHPool
) -> None:
    status, out, _ = await pool.run_script(target_of(ssh_target), "cat\necho after")
    assert (status, out) == (0, "after\n")


@needs_sshd
async def test_refused_key_is_unreachable_with_advice(ssh_target: SSHTarget, pool: SSHPool) -> None:
    stranger = Target(
        host=ssh_target.host,
        port=ssh_target.port,
        client_key=asyncssh.generate_private_key("ssh-ed25519"),
    )
    with pytest.raises(Unreachable, match="refused the service's SSH key"):
        await pool.run_step(stranger, step("true"), Lines())


async def test_closed_port_is_unreachable(pool: SSHPool) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(Unreachable, match=f"could not connect to 127.0.0.1:{port}"):
        await pool.run_step(Target(host="127.0.0.1", port=port), step("true"), Lines())


@needs_sshd
async def test_full_install_leaves_home_and_the_machine_alone(
    ssh_target: SSHTarget, pool: SSHPool
) -> None:
    target = target_of(ssh_target)
    script = (
        "set -eu\n"
        "curl -fsSL https://tljh.jupyter.org/bootstrap.py"
        " | python3 - --version 2.0.0 --admin alice\n"
        "/opt/tljh/hub/bin/tljh-config set limits.memory 1G\n"
        "/opt/tljh/hub/bin/tljh-config reload hub\n"
    )
    result = await pool.run_step(target, step(script, "tljh-install"), Lines())
    assert result.ok, result.output_tail
    _, shown, _ = await pool.run_script(target, "/opt/tljh/hub/bin/tljh-config show")
    assert 'memory: "1G"' in shown
    assert ssh_target.canary.intact()
    assert not Path("/opt/tljh").exists()


async def test_executor_works_against_the_asyncssh_fallback(make_ssh_target) -> None:  # type: ignore[no-untyped-def]
    fallback: SSHTarget = make_ssh_target(backend="asyncssh")
    pool = SSHPool(reconnect_delay=0)
    try:
        fallback.cut_next("apt-get")
        target = target_of(fallback)
        result = await pool.run_step(target, step("apt-get install -y graphviz", "apt"), Lines())
        assert result.ok, result.output_tail
        assert pool.reconnects == 1
        assert "graphviz" in fallback.state("apt")  # type: ignore[operator]
        _, seen = await pool.connect(target)
        assert seen == fallback.host_key
    finally:
        await pool.close_all()
