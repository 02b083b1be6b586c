"""Tests for the observation script and its parser."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

from deploy.host.observe import observe_script, parse_observation, split_sections
from deploy.model import Observed

OS_RELEASE = 'PRETTY_NAME="Ubuntu 24.04.1 LTS"\nID=ubuntu\nVERSION_ID="24.04"\n'
CONFIG_YAML = """\
users:
  admin:
  - alice
  - bob
auth:
  type: nativeauthenticator.NativeAuthenticator
  NativeAuthenticator:
    open_signup: false
limits:
  cpu: 1
"""
CONDA_JSON = json.dumps(
    [
        {"name": "numpy", "version": "1.26.4", "channel": "conda-forge", "base_url": "x"},
        {"name": "requests", "version": "2.32.3", "channel": "pypi"},
    ]
)
STATE = '{"engine": "littlest-classroom", "apt": ["jq"]}'  # no final newline, as cat shows


def full_output() -> str:
    sections = {
        "os-release": OS_RELEASE,
        "tljh": "present",
        "tljh-version": "Name: the-littlest-jupyterhub\nVersion: 2.0.0\nSummary: x",
        "tljh-config": CONFIG_YAML,
        "apt": "graphviz\t2.42.2-9\tinstalled\nold\t1.0\tconfig-files\njq\t1.7.1-3\tinstalled",
        "conda": CONDA_JSON,
        "pip": '[{"name": "jupyterlab", "version": "4.2.5"}]',
        "services": "active\ninactive",
        "disk": "     1B-blocks         Used        Avail\n 100000 25000 75000",
        "meminfo": "MemTotal:       4000000 kB\nMemFree:  100 kB\nMemAvailable:   3000000 kB",
        "state": STATE,
    }
    return "".join(f"\n=== {name} ===\n{body}" for name, body in sections.items()) + (
        "\n=== end ===\n"
    )


def test_parses_every_section() -> None:
    observed = parse_observation(full_output())
    assert observed.os_id == "ubuntu" and observed.os_version == "24.04"
    assert observed.tljh_installed and observed.tljh_version == "2.0.0"
    assert observed.tljh_config["users"]["admin"] == ["alice", "bob"]
    assert observed.tljh_config["limits"]["cpu"] == 1
    assert observed.apt == {"graphviz": "2.42.2-9", "jq": "1.7.1-3"}
    assert observed.conda == {"numpy": "1.26.4"}  # pip's own packages are pip's
    assert observed.pip == {"jupyterlab": "4.2.5"}
    assert observed.services == {"jupyterhub": "active", "traefik": "inactive"}
    assert observed.disk_used_percent == 25.0
    assert observed.disk_free_bytes == 75000
    assert observed.memory_total_bytes == 4000000 * 1024
    assert observed.memory_available_bytes == 3000000 * 1024
    assert observed.state == {"engine": "littlest-classroom", "apt": ["jq"]}


def test_empty_output_reads_as_a_bare_server() -> None:
    assert parse_observation("") == Observed()


def test_garbage_sections_read_as_unknown() -> None:
    text = (
        "\n=== tljh ===\npresent\n=== tljh-config ===\n: : [unclosed\n"
        '=== conda ===\nnot json\n=== pip ===\n{"a": 1}\n=== disk ===\nno numbers\n'
        "=== state ===\n[1, 2]\n=== services ===\nactive\n=== apt ===\nno tabs here\n"
    )
    observed = parse_observation(text)
    assert observed.tljh_installed
    assert observed.tljh_version is None
    assert observed.tljh_config == {}
    assert observed.conda == {} and observed.pip == {} and observed.apt == {}
    assert observed.disk_used_percent is None
    assert observed.state == {}
    assert observed.services == {}  # one answer for two units cannot be matched up


def test_tool_warning_before_json_is_skipped() -> None:
    text = '=== pip ===\nWARNING: something\n[{"name": "numpy", "version": "2.1.0"}]\n'
    assert parse_observation(text).pip == {"numpy": "2.1.0"}


def test_config_ignored_when_tljh_is_absent() -> None:
    text = "=== tljh ===\nabsent\n=== tljh-config ===\nusers: {admin: [x]}\n"
    observed = parse_observation(text)
    assert not observed.tljh_installed and observed.tljh_config == {}


def test_unknown_marker_lines_are_content_not_sections() -> None:
    sections = split_sections("=== state ===\n=== nonsense ===\n{}\n")
    assert sections == {"state": "=== nonsense ===\n{}"}


def _executable(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_script_runs_against_stand_in_tools(tmp_path: Path) -> None:
    # The script names /opt/tljh and other fixed paths; point them into tmp_path so the
    # real shell runs it against stand-ins, and check the parser reads what it printed.
    root = tmp_path / "opt-tljh"
    _executable(root / "hub/bin/tljh-config", f"cat <<'EOF'\n{CONFIG_YAML}EOF\n")
    _executable(
        root / "hub/bin/pip", "echo 'Name: the-littlest-jupyterhub'; echo 'Version: 2.0.0'\n"
    )
    _executable(root / "user/bin/conda", f"cat <<'EOF'\n{CONDA_JSON}\nEOF\n")
    _executable(root / "user/bin/pip", 'echo \'[{"name": "jupyterlab", "version": "4.2.5"}]\'\n')
    state = tmp_path / "classroom.json"
    state.write_text(STATE)
    bin_dir = tmp_path / "bin"
    _executable(bin_dir / "systemctl", "echo active; echo active; exit 0\n")
    _executable(bin_dir / "dpkg-query", "printf 'jq\\t1.7.1-3\\tinstalled\\n'\n")
    script = (
        observe_script()
        .replace("/opt/tljh/state/classroom.json", str(state))
        .replace("/opt/tljh", str(root))
    )
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60, check=True
    )
    observed = parse_observation(done.stdout)
    assert observed.tljh_installed and observed.tljh_version == "2.0.0"
    assert observed.tljh_config["users"]["admin"] == ["alice", "bob"]
    assert observed.apt == {"jq": "1.7.1-3"}
    assert observed.conda == {"numpy": "1.26.4"}
    assert observed.pip == {"jupyterlab": "4.2.5"}
    assert observed.services == {"jupyterhub": "active", "traefik": "active"}
    assert observed.state["apt"] == ["jq"]
    assert observed.memory_total_bytes  # the real /proc/meminfo
    assert observed.os_id  # the real /etc/os-release


def test_script_tolerates_a_server_without_tljh(tmp_path: Path) -> None:
    script = observe_script().replace("/opt/tljh", str(tmp_path / "missing"))
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    observed = parse_observation(done.stdout)
    assert not observed.tljh_installed
    assert observed.tljh_version is None and observed.conda == {} and observed.state == {}


def test_script_only_reads() -> None:
    script = observe_script()
    for verb in (" set ", "install", "remove", "restart", "rm ", "mv ", "mkdir"):
        assert verb not in script
    # The only redirection throws tools' complaints away; nothing is written to a file.
    assert ">" not in script.replace("2>/dev/null", "")
    assert script.count("=== ") >= 12
