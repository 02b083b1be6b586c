"""The loopback SSH target: real sshd, sandboxed commands, stand-ins that keep state."""

from __future__ import annotations

import json
from pathlib import Path

import asyncssh
import pytest
import yaml

from tests.sshtarget.target import SSHTarget

pytestmark = pytest.mark.sshd

TLJH_CONFIG = "/opt/tljh/hub/bin/tljh-config"
DPKG_FORMAT = "dpkg-query -W -f='${Package}\\t${Version}\\t${db:Status-Status}\\n'"
BOOTSTRAP = (
    "curl -fsSL https://tljh.jupyter.org/bootstrap.py"
    " | python3 - --version {version} --admin alice --admin bob"
)


async def run(
    target: SSHTarget, command: str, stdin: str | None = None
) -> asyncssh.SSHCompletedProcess:
    async with asyncssh.connect(
        target.host,
        target.port,
        username="root",
        client_keys=[target.client_key],
        known_hosts=None,
    ) as connection:
        return await connection.run(command, input=stdin)


async def assert_cut(target: SSHTarget, command: str) -> None:
    """The command's connection drops: no exit status, nothing after the cut ran."""
    try:
        result = await run(target, command)
    except (asyncssh.ConnectionLost, asyncssh.DisconnectError):
        return
    assert result.exit_status is None
    assert result.exit_signal is None
    assert "after" not in str(result.stdout)


async def install_tljh(target: SSHTarget, version: str = "2.0.0") -> None:
    result = await run(target, BOOTSTRAP.format(version=version))
    assert result.exit_status == 0, result.stderr


async def test_commands_see_ubuntu_and_the_private_paths(ssh_target: SSHTarget) -> None:
    result = await run(
        ssh_target,
        ". /etc/os-release; echo $ID $VERSION_ID; echo hi > /tmp/x; mkdir -p /opt/new; ls /home",
    )
    assert result.exit_status == 0, result.stderr
    lines = str(result.stdout).splitlines()
    assert lines[0] == "ubuntu 24.04"
    assert lines[1] == "jupyter-student"
    assert (ssh_target.sandbox / "tmp" / "x").read_text() == "hi\n"
    assert (ssh_target.sandbox / "opt" / "new").is_dir()
    assert not Path("/opt/new").exists()


async def test_commands_get_a_servers_path_not_this_machines_shell_start_up(
    ssh_target: SSHTarget,
) -> None:
    # The command runs through root's login shell: whatever root's ~/.bashrc on the test
    # machine adds to PATH (pyenv, cargo, …) must not reach the server's commands.
    result = await run(ssh_target, 'echo "$PATH"')
    assert result.exit_status == 0, result.stderr
    system = {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}
    entries = str(result.stdout).strip().split(":")
    assert entries[0] == "/srv/bin"
    assert set(entries[1:]) <= system, entries


async def test_script_on_stdin_runs(ssh_target: SSHTarget) -> None:
    result = await run(ssh_target, "sh -s", stdin="echo one\necho two >&2\nexit 4\n")
    assert (result.exit_status, result.stdout, result.stderr) == (4, "one\n", "two\n")


async def test_apt_install_shows_in_dpkg_query(ssh_target: SSHTarget) -> None:
    before = await run(ssh_target, DPKG_FORMAT)
    assert "python3\t" in str(before.stdout)
    assert "graphviz" not in str(before.stdout)
    result = await run(
        ssh_target,
        "apt-get update && apt-get install -y --no-install-recommends graphviz=2.42.2-9 "
        f"ffmpeg && {DPKG_FORMAT}",
    )
    assert result.exit_status == 0, result.stderr
    assert "graphviz\t2.42.2-9\tinstalled" in str(result.stdout).splitlines()
    assert any(line.startswith("ffmpeg\t") for line in str(result.stdout).splitlines())
    removed = await run(ssh_target, f"apt-get remove -y ffmpeg && {DPKG_FORMAT} ffmpeg")
    assert removed.exit_status == 1
    assert "no packages found matching ffmpeg" in str(removed.stderr)
    programs = [(c["program"], c["argv"][0]) for c in ssh_target.calls()]
    assert ("apt-get", "update") in programs
    assert ("apt-get", "install") in programs


async def test_apt_get_refuses_unknown_options_and_packages(ssh_target: SSHTarget) -> None:
    unknown_option = await run(ssh_target, "apt-get install -y --force-yes x")
    assert unknown_option.exit_status == 100
    assert "--force-yes" in str(unknown_option.stderr)
    missing = await run(ssh_target, "apt-get install -y no-such-package")
    assert missing.exit_status == 100
    assert "Unable to locate package no-such-package" in str(missing.stderr)


async def test_bootstrap_installs_tljh_with_admins(ssh_target: SSHTarget) -> None:
    down = await run(ssh_target, "curl -fsS http://127.0.0.1/hub/api")
    assert down.exit_status == 7
    await install_tljh(ssh_target)
    result = await run(
        ssh_target,
        f"{TLJH_CONFIG} show; /opt/tljh/hub/bin/pip show the-littlest-jupyterhub;"
        " curl -fsS http://127.0.0.1/hub/api; systemctl is-active jupyterhub traefik",
    )
    assert result.exit_status == 0, result.stderr
    out = str(result.stdout)
    assert "Version: 2.0.0" in out
    assert '{"version": "5.1.0"}' in out
    assert out.rstrip().endswith("active\nactive")
    config = yaml.safe_load((ssh_target.sandbox / "opt/tljh/config/config.yaml").read_text())
    assert config == {"users": {"admin": ["alice", "bob"]}}
    bootstrap = ssh_target.calls("bootstrap")
    assert bootstrap[0]["argv"] == ["--version", "2.0.0", "--admin", "alice", "--admin", "bob"]


async def test_bootstrap_upgrade_keeps_config_and_user_env(ssh_target: SSHTarget) -> None:
    await install_tljh(ssh_target)
    setup = await run(
        ssh_target,
        f"{TLJH_CONFIG} set auth.type nativeauthenticator.NativeAuthenticator"
        " && /opt/tljh/user/bin/conda install -y -c conda-forge scipy=1.14.1",
    )
    assert setup.exit_status == 0, setup.stderr
    await install_tljh(ssh_target, "2.0.1")
    result = await run(
        ssh_target,
        f"/opt/tljh/hub/bin/pip show the-littlest-jupyterhub; {TLJH_CONFIG} show;"
        " /opt/tljh/user/bin/conda list --json",
    )
    out = str(result.stdout)
    assert "Version: 2.0.1" in out
    assert "type: nativeauthenticator.NativeAuthenticator" in out
    assert {"name": "scipy", "version": "1.14.1", "channel": "conda-forge"} in ssh_target.state(
        "conda"
    )  # type: ignore[operator]


async def test_tljh_config_edits_like_tljh(ssh_target: SSHTarget) -> None:
    await install_tljh(ssh_target)
    script = "\n".join(
        [
            "set -e",
            f"{TLJH_CONFIG} set limits.memory 1G",
            f"{TLJH_CONFIG} set limits.cpu 1.5",
            f"{TLJH_CONFIG} set services.cull.timeout 3600",
            f"{TLJH_CONFIG} set auth.NativeAuthenticator.open_signup true",
            f"{TLJH_CONFIG} set user_environment.default_app 'yes'",
            f"{TLJH_CONFIG} add-item users.admin alice",
            f"{TLJH_CONFIG} remove-item users.admin bob",
            f"{TLJH_CONFIG} reload hub",
            f"{TLJH_CONFIG} show",
        ]
    )
    result = await run(ssh_target, "sh -s", stdin=script)
    assert result.exit_status == 0, result.stderr
    shown = yaml.safe_load(str(result.stdout).split("complete\n", 1)[1])
    assert shown["limits"] == {"memory": "1G", "cpu": 1.5}
    assert shown["services"]["cull"]["timeout"] == 3600
    assert shown["auth"]["NativeAuthenticator"]["open_signup"] is True
    assert shown["user_environment"]["default_app"] == "yes"
    # add-item appends a duplicate, as TLJH does.
    assert shown["users"]["admin"] == ["alice", "alice"]
    assert ssh_target.state("reloads") == ["hub"]
    unset_missing = await run(ssh_target, f"{TLJH_CONFIG} unset https.enabled")
    assert unset_missing.exit_status == 1
    assert "https.enabled does not exist" in str(unset_missing.stderr)


async def test_conda_and_pip_keep_state(ssh_target: SSHTarget) -> None:
    await install_tljh(ssh_target)
    result = await run(
        ssh_target,
        "set -e; /opt/tljh/user/bin/conda install -y --override-channels -c conda-forge"
        " numpy=1.26.4 pandas; /opt/tljh/user/bin/conda remove -y pandas;"
        " /opt/tljh/user/bin/pip install --no-input 'altair>=5.1' rich==13.7.1 'httpx<1';"
        " /opt/tljh/user/bin/pip uninstall -y rich; /opt/tljh/user/bin/pip list --format=json;"
        " /opt/tljh/user/bin/conda list --json",
    )
    assert result.exit_status == 0, result.stderr
    pip_list, conda_list = str(result.stdout).split("\n", 1)
    pip_versions = {p["name"]: p["version"] for p in json.loads(pip_list)}
    assert pip_versions["altair"] == "5.1"
    assert "rich" not in pip_versions
    assert "httpx" in pip_versions
    conda_versions = {p["name"]: p["version"] for p in json.loads(conda_list)}
    assert conda_versions["numpy"] == "1.26.4"
    assert "pandas" not in conda_versions
    assert conda_versions["python"].startswith("3.12")


async def test_systemctl_is_stateful(ssh_target: SSHTarget) -> None:
    await install_tljh(ssh_target)
    stopped = await run(
        ssh_target, "systemctl stop jupyterhub; systemctl is-active jupyterhub traefik"
    )
    assert stopped.exit_status == 3
    assert str(stopped.stdout) == "inactive\nactive\n"
    started = await run(
        ssh_target, "systemctl restart jupyterhub && systemctl is-active jupyterhub"
    )
    assert (started.exit_status, started.stdout) == (0, "active\n")
    unknown = await run(ssh_target, "systemctl restart nosuch")
    assert unknown.exit_status == 5


async def test_fail_next_fails_once(ssh_target: SSHTarget) -> None:
    ssh_target.fail_next("apt-get", "E: Could not get lock /var/lib/dpkg/lock-frontend")
    first = await run(ssh_target, "apt-get update")
    assert first.exit_status == 1
    assert "Could not get lock" in str(first.stderr)
    second = await run(ssh_target, "apt-get update")
    assert second.exit_status == 0


async def test_cut_drops_the_connection(ssh_target: SSHTarget) -> None:
    ssh_target.cut_next("systemctl")
    await assert_cut(ssh_target, "systemctl daemon-reload; echo after")
    assert len(ssh_target.calls("systemctl")) == 1


async def test_regenerated_host_key_differs(ssh_target: SSHTarget) -> None:
    before = ssh_target.host_key
    after = ssh_target.regenerate_host_key()
    assert after != before
    key = await asyncssh.get_server_host_key(ssh_target.host, ssh_target.port)
    assert key is not None
    assert " ".join(key.export_public_key("openssh").decode().split()[:2]) == after


async def test_asyncssh_fallback_serves_the_same_sandbox(make_ssh_target) -> None:  # type: ignore[no-untyped-def]
    target = make_ssh_target(backend="asyncssh")
    result = await run(target, f"apt-get install -y graphviz && {DPKG_FORMAT} graphviz")
    assert result.exit_status == 0, result.stderr
    assert str(result.stdout).endswith("\ngraphviz\t1.0-1\tinstalled\n")
    target.cut_next("curl")
    await assert_cut(target, "curl -fsS http://127.0.0.1/hub/api; echo after")
    assert target.canary.intact()


async def test_nothing_lands_outside_the_sandbox(ssh_target: SSHTarget) -> None:
    await install_tljh(ssh_target)
    result = await run(ssh_target, "apt-get install -y git && touch /home/new-file /srv/x")
    assert result.exit_status == 0, result.stderr
    assert (ssh_target.sandbox / "home" / "new-file").exists()
    assert not Path("/opt/tljh").exists()
    assert not Path("/home/new-file").exists()
    assert not Path("/srv/x").exists()
    assert ssh_target.canary.intact()
