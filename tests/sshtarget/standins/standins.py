"""Stand-ins for the programs the engine drives on a server, for the loopback SSH target.

One program, dispatched on its first two arguments (the sandbox root and the name it
stands in for): curl, TLJH's bootstrap, tljh-config, apt-get, dpkg-query, conda, pip,
systemctl, for block storage blkid, mkfs.ext4, mount, resize2fs, e2fsck and tune2fs, and
for the server's accounts getent, useradd and groupadd. Each call is
recorded as one JSON line in ``<root>/log/calls.jsonl`` and each keeps its state in
files under the sandbox, so a second call sees what the first did.

It runs under the server's own ``/usr/bin/python3 -I`` inside the sandbox's mount
namespace, where the project's virtualenv may be hidden (it can live under /opt or
/home), so it uses the standard library only.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import sys
import time
from pathlib import Path

# sqlite3, subprocess, shutil and uuid are imported by the few stand-ins that use them:
# every command the engine runs starts this program afresh, and those imports were a
# third of its start-up.

ROOT = Path(sys.argv[1])
PROGRAM = sys.argv[2]
ARGS = sys.argv[3:]
STATE = ROOT / "state"
CONTROL = ROOT / "control"
TLJH = Path("/opt/tljh")
TLJH_CONFIG_YAML = TLJH / "config" / "config.yaml"
HUB_DATABASE = TLJH / "state" / "jupyterhub.sqlite"
# NativeAuthenticator's table, as JupyterHub creates it at the hub's first start.
USERS_INFO_TABLE = (
    "CREATE TABLE users_info (id INTEGER NOT NULL PRIMARY KEY, username VARCHAR(128) NOT NULL,"
    " password BLOB NOT NULL, is_authorized BOOLEAN, login_email_sent BOOLEAN,"
    " email VARCHAR(128), has_2fa BOOLEAN, otp_secret VARCHAR(16))"
)
REAL_HUB_WAIT_SECONDS = 120
HUB_API_URLS = ("http://127.0.0.1/hub/api", "http://localhost/hub/api")
BOOTSTRAP_URL = "https://tljh.jupyter.org/bootstrap.py"
CUT_MARKER = "\x00SSHTARGET-CUT\x00"


class Refused(Exception):
    """The stand-in refuses the call as the real program would, with its exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


# -- state ------------------------------------------------------------------------------


def load(name: str, default: object) -> object:
    path = STATE / f"{name}.json"
    if not path.exists():
        return default
    return json.loads(path.read_text())


def save(name: str, value: object) -> None:
    path = STATE / f"{name}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=1, sort_keys=True))
    tmp.replace(path)


def record(extra: dict | None = None) -> None:
    entry = {"program": PROGRAM, "argv": ARGS, "pid": os.getpid(), "time": time.time()}
    entry.update(extra or {})
    with open(ROOT / "log" / "calls.jsonl", "a") as log:
        log.write(json.dumps(entry) + "\n")


def injected_trouble() -> None:
    """Honour the one-shot hooks the fixture leaves in ``control/``: fail, hang or cut."""
    fail = CONTROL / f"{PROGRAM}.fail"
    if fail.exists():
        message = fail.read_text()
        fail.unlink()
        status = CONTROL / f"{PROGRAM}.fail-status"
        code = int(status.read_text()) if status.exists() else 1
        status.unlink(missing_ok=True)
        raise Refused(message or f"{PROGRAM}: injected failure", code)
    hang = CONTROL / f"{PROGRAM}.hang"
    if hang.exists():
        hang.unlink()
        (CONTROL / f"hanging-{os.getpid()}").write_text("")
        time.sleep(3600)
    cut = CONTROL / f"{PROGRAM}.cut"
    if cut.exists():
        cut.unlink()
        cut_connection()


def cut_connection() -> None:
    """Drop this SSH session as a network failure would.

    Under OpenSSH the session's own sshd processes are killed (every sshd ancestor whose
    parent is also sshd, so the listener lives on); the asyncssh fallback server watches
    stderr for a marker instead.
    """
    sys.stderr.write(CUT_MARKER + "\n")
    sys.stderr.flush()
    pid = os.getppid()
    while pid > 1:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        try:
            pstat = Path(f"/proc/{parent}/stat").read_text()
            parent_comm = pstat[pstat.index("(") + 1 : pstat.rindex(")")]
        except OSError:
            parent_comm = ""
        if comm.startswith("sshd") and parent_comm.startswith("sshd"):
            os.kill(pid, signal.SIGKILL)
        pid = parent
    time.sleep(0.5)
    os.killpg(os.getpgrp(), signal.SIGKILL)


# -- a small YAML writer, as TLJH writes config.yaml (block style) -------------------------

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_./@-]*$")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "~", "y", "n"}


def yaml_scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text)


def yaml_dump(value: object, indent: int = 0) -> str:
    pad = " " * indent
    if isinstance(value, dict):
        if not value:
            return pad + "{}\n"
        out = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                out.append(f"{pad}{yaml_scalar(key)}:\n{yaml_dump(item, indent + 2)}")
            else:
                empty = "{}" if isinstance(item, dict) else "[]"
                shown = empty if isinstance(item, (dict, list)) else yaml_scalar(item)
                out.append(f"{pad}{yaml_scalar(key)}: {shown}\n")
        return "".join(out)
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, (dict, list)) and item:
                body = yaml_dump(item, indent + 2)
                out.append(f"{pad}- {body.lstrip()}")
            else:
                out.append(f"{pad}- {yaml_scalar(item)}\n")
        return "".join(out)
    return pad + yaml_scalar(value) + "\n"


# -- TLJH -------------------------------------------------------------------------------


def tljh_config_load() -> dict:
    return load("tljh-config", {})  # type: ignore[return-value]


def tljh_config_save(config: dict) -> None:
    save("tljh-config", config)
    TLJH_CONFIG_YAML.parent.mkdir(parents=True, exist_ok=True)
    TLJH_CONFIG_YAML.write_text(yaml_dump(config) if config else "{}\n")


def parse_value(text: str) -> object:
    """Turn a command-line value into a config value the way tljh-config does."""
    if text.isdigit():
        return int(text)
    if text.replace(".", "", 1).isdigit():
        return float(text)
    if text.lower() == "true":
        return True
    if text.lower() == "false":
        return False
    return text


def shim(program: str, path: Path) -> None:
    """Make ``path`` an executable that runs this stand-in as ``program``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'#!/bin/sh\nexec /usr/bin/python3 -I {ROOT}/standins.py {ROOT} {program} "$@"\n'
    )
    path.chmod(0o755)


def bootstrap() -> int:
    """TLJH's installer: install or upgrade in place, keep config and the user env."""
    version = "2.0.0"
    admins: list[str] = []
    args = list(ARGS)
    while args:
        arg = args.pop(0)
        if arg == "--version" and args:
            version = args.pop(0)
        elif arg.startswith("--version="):
            version = arg.split("=", 1)[1]
        elif arg == "--admin" and args:
            admins.append(args.pop(0).split(":", 1)[0])
        elif arg in ("--show-progress-page",):
            continue
        elif arg in ("--plugin", "--user-requirements-txt-url") and args:
            args.pop(0)
        else:
            raise Refused(f"bootstrap.py: error: unrecognized arguments: {arg}", 2)
    print("Checking if TLJH is already installed...", flush=True)
    upgrade = (TLJH / "hub" / "bin" / "tljh-config").exists()
    print("TLJH already installed, upgrading..." if upgrade else "Setting up hub environment...")
    shim("tljh-config", TLJH / "hub" / "bin" / "tljh-config")
    shim("pip-hub", TLJH / "hub" / "bin" / "pip")
    shim("conda", TLJH / "user" / "bin" / "conda")
    shim("conda", TLJH / "user" / "bin" / "mamba")
    shim("pip-user", TLJH / "user" / "bin" / "pip")
    hub = load("pip-hub", {})
    assert isinstance(hub, dict)
    hub.update(
        {
            "the-littlest-jupyterhub": version,
            "jupyterhub": "5.1.0",
            "jupyterhub-nativeauthenticator": "1.3.0",
        }
    )
    save("pip-hub", hub)
    if not upgrade:
        save("conda", [{"name": "python", "version": "3.12.7", "channel": "conda-forge"}])
        save(
            "pip-user",
            {"jupyterhub": "5.1.0", "jupyterlab": "4.2.5", "notebook": "7.2.2"},
        )
    config = tljh_config_load()
    if not config and TLJH_CONFIG_YAML.exists():
        # A config file written before the first install is what TLJH starts from (JSON
        # is YAML; the stand-in reads no other form).
        try:
            written = json.loads(TLJH_CONFIG_YAML.read_text())
        except ValueError:
            written = {}
        config = written if isinstance(written, dict) else {}
    users = config.setdefault("users", {})
    existing = users.setdefault("admin", [])
    existing.extend(a for a in admins if a not in existing)
    tljh_config_save(config)
    services = load("services", {})
    assert isinstance(services, dict)
    hub_unit_start("bootstrap")
    services.update({"jupyterhub": "active", "traefik": "active"})
    save("services", services)
    start_hub()
    print("Done!")
    return 0


def hub_rows() -> list[list]:
    if not HUB_DATABASE.exists():
        return []
    import sqlite3

    with sqlite3.connect(HUB_DATABASE) as db:
        return [
            [name, bool(authorized)]
            for name, authorized in db.execute("SELECT username, is_authorized FROM users_info")
        ]


def start_hub() -> None:
    """The hub (re)starts with tljh-config's settings as they are now.

    Each start is recorded with whether sign-up was open and which accounts existed. Where
    a test runs a real JupyterHub beside the sandbox (``control/real-hub``), the start is
    handed to it and waited for; otherwise the hub's first start makes its database.
    """
    python = TLJH / "hub" / "bin" / "python3"
    if not python.exists():
        python.parent.mkdir(parents=True, exist_ok=True)
        python.symlink_to("/usr/bin/python3")
    config = tljh_config_load()
    native = config.get("auth", {}).get("NativeAuthenticator", {})
    starts = load("hub-starts", [])
    assert isinstance(starts, list)
    starts.append(
        {"enable_signup": native.get("enable_signup", True), "rows": hub_rows(), "at": time.time()}
    )
    save("hub-starts", starts)
    if (CONTROL / "real-hub").exists():
        number = len(starts)
        request = CONTROL / f"hub-start-{number}.json"
        request.with_suffix(".tmp").write_text(json.dumps(config))
        request.with_suffix(".tmp").replace(request)
        deadline = time.time() + REAL_HUB_WAIT_SECONDS
        while not (CONTROL / f"hub-started-{number}").exists():
            if time.time() > deadline:
                raise Refused("Job for jupyterhub.service failed: the hub did not start", 1)
            time.sleep(0.1)
        return
    if not HUB_DATABASE.exists():
        HUB_DATABASE.parent.mkdir(parents=True, exist_ok=True)
        import sqlite3

        with sqlite3.connect(HUB_DATABASE) as db:
            db.execute(USERS_INFO_TABLE)


def get_path(config: dict, key: str) -> tuple[dict, str]:
    *parents, last = key.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise Refused(f"{key}: {part} is not a mapping", 1)
    return node, last


def tljh_config() -> int:
    if not ARGS:
        raise Refused("usage: tljh-config {show,set,unset,add-item,remove-item,reload}", 2)
    action, rest = ARGS[0], ARGS[1:]
    config = tljh_config_load()
    if action == "show" and not rest:
        sys.stdout.write(yaml_dump(config) if config else "{}\n")
        return 0
    if action == "set" and len(rest) == 2:
        node, last = get_path(config, rest[0])
        node[last] = parse_value(rest[1])
    elif action == "unset" and len(rest) == 1:
        node, last = get_path(config, rest[0])
        if last not in node:
            raise Refused(f"{rest[0]} does not exist", 1)
        del node[last]
    elif action == "add-item" and len(rest) == 2:
        node, last = get_path(config, rest[0])
        node.setdefault(last, []).append(parse_value(rest[1]))
    elif action == "remove-item" and len(rest) == 2:
        node, last = get_path(config, rest[0])
        items = node.get(last, [])
        value = parse_value(rest[1])
        if value not in items:
            raise Refused(f"{rest[1]} is not in {rest[0]}", 1)
        items.remove(value)
    elif action == "reload" and len(rest) <= 1 and (not rest or rest[0] in ("hub", "proxy")):
        which = rest[0] if rest else "hub"
        if which == "hub":
            hub_unit_start("tljh-config reload hub")
        services = load("services", {})
        assert isinstance(services, dict)
        services["jupyterhub" if which == "hub" else "traefik"] = "active"
        save("services", services)
        reloads = load("reloads", [])
        assert isinstance(reloads, list)
        reloads.append(which)
        save("reloads", reloads)
        if which == "hub":
            start_hub()
        print(f"{'Hub' if which == 'hub' else 'Proxy'} reload with new configuration complete")
        return 0
    else:
        raise Refused(f"tljh-config: error: invalid arguments: {' '.join(ARGS)}", 2)
    tljh_config_save(config)
    return 0


# -- curl -------------------------------------------------------------------------------

BOOTSTRAP_SCRIPT = """\
# Fake TLJH bootstrap served by the loopback SSH target's curl stand-in.
import os
import sys

os.execv(
    "/usr/bin/python3",
    ["/usr/bin/python3", "-I", "{root}/standins.py", "{root}", "bootstrap", *sys.argv[1:]],
)
"""


def curl() -> int:
    fail_on_http_error = False
    output: str | None = None
    urls = []
    args = list(ARGS)
    while args:
        arg = args.pop(0)
        if arg in ("-o", "--output", "-m", "--max-time", "-H", "--header", "--retry"):
            value = args.pop(0)
            if arg in ("-o", "--output"):
                output = value
        elif arg == "--fail":
            fail_on_http_error = True
        elif arg.startswith("--"):
            continue
        elif arg.startswith("-"):
            fail_on_http_error |= "f" in arg
        else:
            urls.append(arg)
    if len(urls) != 1:
        raise Refused("curl: (2) expected exactly one URL", 2)
    url = urls[0]
    if url == BOOTSTRAP_URL:
        body = BOOTSTRAP_SCRIPT.format(root=ROOT)
    elif url.rstrip("/") in HUB_API_URLS:
        services = load("services", {})
        assert isinstance(services, dict)
        if services.get("jupyterhub") != "active":
            raise Refused(f"curl: (7) Failed to connect to {url.split('/')[2]} port 80", 7)
        body = json.dumps({"version": "5.1.0"}) + "\n"
    else:
        host = url.split("/")[2] if "//" in url else url
        if fail_on_http_error:
            raise Refused(f"curl: (6) Could not resolve host: {host}", 6)
        raise Refused(f"curl: (6) Could not resolve host: {host}", 6)
    if output:
        Path(output).write_text(body)
    else:
        sys.stdout.write(body)
    return 0


# -- apt and dpkg -----------------------------------------------------------------------

APT_SEED = {"python3": "3.12.3-0ubuntu2", "curl": "8.5.0-2ubuntu10.6", "git": "1:2.43.0-1ubuntu7"}
APT_OPTIONS = {"-y", "--yes", "-q", "-qq", "--quiet", "--no-install-recommends"}


def apt_get() -> int:
    options = [a for a in ARGS if a.startswith("-")]
    words = [a for a in ARGS if not a.startswith("-")]
    for option in options:
        if option not in APT_OPTIONS:
            raise Refused(f"E: Command line option {option!r} is not understood", 100)
    if not words:
        raise Refused("E: No command given", 100)
    command, packages = words[0], words[1:]
    installed = load("apt", dict(APT_SEED))
    assert isinstance(installed, dict)
    if command == "update" and not packages:
        print("Reading package lists... Done")
        save("apt-updated", time.time())
        return 0
    if command in ("install", "remove", "purge") and not ({"-y", "--yes"} & set(options)):
        raise Refused("E: Refusing to ask a question without -y (stand-in has no terminal)", 1)
    if command == "install":
        for spec in packages:
            name, _, version = spec.partition("=")
            if name.startswith("no-such-"):
                raise Refused(f"E: Unable to locate package {name}", 100)
            installed[name] = version or installed.get(name) or "1.0-1"
    elif command in ("remove", "purge"):
        for name in packages:
            installed.pop(name, None)
    else:
        raise Refused(f"E: Invalid operation {command}", 100)
    save("apt", installed)
    print("Reading package lists... Done")
    return 0


def dpkg_query() -> int:
    fmt = "${Package}\t${Version}\n"
    packages: list[str] = []
    listing = False
    args = list(ARGS)
    while args:
        arg = args.pop(0)
        if arg in ("-W", "--show"):
            listing = True
        elif arg.startswith(("-f=", "--showformat=")):
            fmt = arg.split("=", 1)[1]
        elif arg in ("-f", "--showformat"):
            fmt = args.pop(0)
        elif arg.startswith("-"):
            raise Refused(f"dpkg-query: error: unknown option {arg}", 2)
        else:
            packages.append(arg)
    if not listing:
        raise Refused("dpkg-query: error: need an action option", 2)
    fmt = fmt.replace("\\t", "\t").replace("\\n", "\n")
    installed = load("apt", dict(APT_SEED))
    assert isinstance(installed, dict)
    names = packages or sorted(installed)
    missing = [n for n in names if n not in installed]
    for name in names:
        if name not in installed:
            continue
        fields = {
            "Package": name,
            "binary:Package": name,
            "Version": installed[name],
            "db:Status-Status": "installed",
            "db:Status-Abbrev": "ii ",
            "Status": "install ok installed",
        }
        sys.stdout.write(re.sub(r"\$\{([^}]+)\}", lambda m, f=fields: f.get(m.group(1), ""), fmt))
    if missing:
        for name in missing:
            sys.stderr.write(f"dpkg-query: no packages found matching {name}\n")
        return 1
    return 0


# -- conda and pip ----------------------------------------------------------------------


def made_up_version(spec: str) -> str:
    """A version satisfying a simple requirement specifier (==, >=, >, ~=, <=, <)."""
    clauses = [c.strip() for c in spec.split(",") if c.strip()]
    for op in ("===", "==", "~=", ">=", "<="):
        for clause in clauses:
            if clause.startswith(op) and "*" not in clause:
                return clause[len(op) :].strip()
    for clause in clauses:
        if clause.startswith(">"):
            parts = clause[1:].strip().split(".")
            parts[-1] = str(int(re.sub(r"\D.*", "", parts[-1]) or 0) + 1)
            return ".".join(parts)
    return "1.0.0"


_REQ = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*(.*)$")


def conda() -> int:
    if not ARGS:
        raise Refused("usage: conda [-h] [-V] command ...", 2)
    command, rest = ARGS[0], ARGS[1:]
    packages = load("conda", [])
    assert isinstance(packages, list)
    by_name = {p["name"]: p for p in packages}
    if command == "list":
        if "--json" not in rest:
            for p in packages:
                print(f"{p['name']:<30}{p['version']:<15}{p['channel']}")
            return 0
        print(json.dumps(packages, indent=1))
        return 0
    channels: list[str] = []
    specs: list[str] = []
    args = list(rest)
    while args:
        arg = args.pop(0)
        if arg in ("-c", "--channel"):
            channels.append(args.pop(0))
        elif arg in ("-y", "--yes", "-q", "--quiet", "--override-channels"):
            continue
        elif arg.startswith("-"):
            raise Refused(f"conda: error: unrecognized arguments: {arg}", 2)
        else:
            specs.append(arg)
    if command == "install":
        channel = channels[0] if channels else "conda-forge"
        for spec in specs:
            match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*)$", spec)
            if not match:
                raise Refused(f"InvalidMatchSpec: Invalid spec: {spec}", 1)
            name, constraint = match.groups()
            if constraint.startswith("=") and not constraint.startswith("=="):
                constraint = "=" + constraint
            version = made_up_version(constraint) if constraint else "1.0.0"
            by_name[name] = {"name": name, "version": version, "channel": channel}
    elif command in ("remove", "uninstall"):
        for name in specs:
            if name not in by_name:
                raise Refused(f"PackagesNotFoundError: {name}", 1)
            del by_name[name]
    else:
        raise Refused(f"conda: error: invalid choice: {command!r}", 2)
    save("conda", sorted(by_name.values(), key=lambda p: p["name"]))
    return 0


def pip(env: str) -> int:
    if not ARGS:
        raise Refused("Usage: pip <command> [options]", 2)
    command, rest = ARGS[0], ARGS[1:]
    installed = load(env, {})
    assert isinstance(installed, dict)
    flags = {"-q", "--quiet", "--no-input", "-y", "--yes", "--no-cache-dir", "-U", "--upgrade"}
    bad = [a for a in rest if a.startswith("-") and a not in flags and a != "--format=json"]
    if bad:
        raise Refused(f"no such option: {bad[0]}", 2)
    words = [a for a in rest if not a.startswith("-")]
    if command == "list":
        if "--format=json" in rest:
            print(json.dumps([{"name": n, "version": v} for n, v in sorted(installed.items())]))
        else:
            for name, version in sorted(installed.items()):
                print(f"{name:<30}{version}")
        return 0
    if command == "show":
        found = [w for w in words if w in installed]
        if not found:
            sys.stderr.write(f"WARNING: Package(s) not found: {', '.join(words)}\n")
            return 1
        for name in found:
            print(f"Name: {name}\nVersion: {installed[name]}")
        return 0
    if command == "install":
        for requirement in words:
            match = _REQ.match(requirement)
            if not match:
                raise Refused(f"ERROR: Invalid requirement: {requirement!r}", 1)
            name, specifier = match.groups()
            installed[name.lower()] = made_up_version(specifier) if specifier else "1.0.0"
    elif command == "uninstall":
        for name in words:
            installed.pop(name.lower(), None)
    else:
        raise Refused(f'ERROR: unknown command "{command}"', 1)
    save(env, installed)
    return 0


# -- systemctl --------------------------------------------------------------------------
#
# The hub's unit honours the drop-ins under /etc/systemd/system/jupyterhub.service.d (a
# private folder in the sandbox) as systemd does for these settings: an unmet
# AssertPathIsMountPoint= / AssertPathExists= fails the start, an unmet ConditionPath…=
# skips it. RequiresMountsFor= is read but mounts nothing on demand. Every start of the
# hub, from systemctl, TLJH's installer or ``tljh-config reload hub``, is recorded in the
# state file ``hub-unit-starts`` with whether /opt/tljh/state was a mount and the volume
# named by its marker, so tests see every start the server made.

HUB_DROP_INS = Path("/etc/systemd/system/jupyterhub.service.d")
STATE_MARKER = TLJH / "state" / ".littlest-classroom-volume"


def mount_points() -> set[str]:
    points = set()
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        points.add(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), point))
    return points


def hub_unit_start(by: str) -> None:
    """Start the hub's unit as systemd would with its drop-ins; record the attempt."""
    settings: list[tuple[str, str]] = []
    for conf in sorted(HUB_DROP_INS.glob("*.conf")) if HUB_DROP_INS.is_dir() else []:
        for line in conf.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.startswith(("#", ";")):
                settings.append((key.strip(), value.strip()))
    points = mount_points()
    state = str(TLJH / "state")
    failed, skipped = [], []
    for key, value in settings:
        kind, _, check = key.partition("Path")
        if kind not in ("Assert", "Condition"):
            continue
        met = {
            "IsMountPoint": value in points,
            "Exists": Path(value).exists(),
        }.get(check, True)
        if not met:
            (failed if kind == "Assert" else skipped).append(f"{key}={value}")
    marker = STATE_MARKER.read_text().strip() if STATE_MARKER.is_file() else ""
    starts = load("hub-unit-starts", [])
    assert isinstance(starts, list)
    starts.append(
        {
            "by": by,
            "state_is_mount": state in points,
            "state_volume": marker,
            "started": not failed and not skipped,
            "unmet": failed + skipped,
        }
    )
    save("hub-unit-starts", starts)
    if failed:
        raise Refused(
            "Assertion failed on job for jupyterhub.service ("
            + ", ".join(failed)
            + '). See "systemctl status jupyterhub.service" for details.',
            1,
        )


def systemctl() -> int:
    if not ARGS:
        raise Refused("systemctl: missing command", 1)
    command, units = ARGS[0], [u.removesuffix(".service") for u in ARGS[1:]]
    services = load("services", {})
    assert isinstance(services, dict)
    if command == "daemon-reload":
        return 0
    if not units:
        raise Refused(f"Too few arguments for {command}.", 1)
    if command == "is-active":
        states = [services.get(u, "inactive") for u in units]
        print("\n".join(states))
        return 0 if all(s == "active" for s in states) else 3
    for unit in units:
        if unit not in services:
            raise Refused(f"Failed to {command} {unit}.service: Unit {unit}.service not found.", 5)
    if command in ("start", "restart", "try-restart") and "jupyterhub" in units:
        hub_unit_start(f"systemctl {command}")
    if command in ("start", "restart", "reload", "try-restart", "enable"):
        for unit in units:
            services[unit] = "active"
    elif command == "stop":
        for unit in units:
            services[unit] = "inactive"
    else:
        raise Refused(f"Unknown command verb {command}.", 1)
    save("services", services)
    return 0


# -- block storage: blkid, mkfs.ext4, mount, resize2fs ---------------------------------------
#
# A volume is the folder <root>/volumes/<name>; it is attached while the file
# /dev/disk/by-id/scsi-0DO_Volume_<name> exists (sandbox.sh lays <root>/devices over /dev).
# Its filesystem, if any, is an entry of the state file ``filesystems``: formatting makes
# one (and empties the folder, as a real format loses everything); mounting binds the
# folder for real inside the command's mount namespace and records it in
# ``state/mounts.list``, which sandbox.sh replays for every later command, as a server
# mounts its fstab at each boot.

DEVICE_PREFIX = "/dev/disk/by-id/scsi-0DO_Volume_"
# A device file reads as the volume's first bytes: zeros, or ext4's magic once formatted.
SUPERBLOCK_MAGIC_OFFSET = 1080
EXT4_MAGIC = b"\x53\xef"


def volume_of(device: str) -> str:
    if not device.startswith(DEVICE_PREFIX) or "/" in device[len(DEVICE_PREFIX) :]:
        raise Refused(f"{device}: not a device this server has", 2)
    name = device[len(DEVICE_PREFIX) :]
    if not Path(device).exists():
        raise Refused(f"{device}: No such file or directory", 2)
    return name


def blkid() -> int:
    tag = None
    args = list(ARGS)
    if "-s" in args:
        tag = args[args.index("-s") + 1]
    try:
        name = volume_of(args[-1])
    except Refused:
        return 2
    filesystem = load("filesystems", {}).get(name)  # type: ignore[union-attr]
    if not filesystem:
        return 2  # what blkid answers when it finds no signature
    fields = {"TYPE": filesystem["type"], "UUID": filesystem["uuid"]}
    if tag is not None:
        print(fields.get(tag, ""))
    else:
        print(f'{args[-1]}: UUID="{fields["UUID"]}" TYPE="{fields["TYPE"]}"')
    return 0


def mkfs_ext4() -> int:
    import shutil
    import uuid

    name = volume_of(ARGS[-1])
    if any(line.split()[0] == str(ROOT / "volumes" / name) for line in mounts()):
        raise Refused(f"{ARGS[-1]} is mounted; will not make a filesystem here!", 1)
    folder = ROOT / "volumes" / name
    for child in list(folder.iterdir()):
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    filesystems = load("filesystems", {})
    assert isinstance(filesystems, dict)
    label = ARGS[ARGS.index("-L") + 1] if "-L" in ARGS else ""
    filesystems[name] = {"type": "ext4", "uuid": str(uuid.uuid4()), "label": label, "grown": 0}
    save("filesystems", filesystems)
    with open(ARGS[-1], "r+b") as device:
        device.seek(SUPERBLOCK_MAGIC_OFFSET)
        device.write(EXT4_MAGIC)
    return 0


def e2fsck() -> int:
    """Check (here: find) the filesystem; a clone of a mounted one needs its journal."""
    name = volume_of(ARGS[-1])
    if name not in load("filesystems", {}):  # type: ignore[operator]
        raise Refused(f"e2fsck: Bad magic number in super-block while trying to open {ARGS[-1]}", 8)
    if any(line.split()[0] == str(ROOT / "volumes" / name) for line in mounts()):
        raise Refused(f"{ARGS[-1]} is mounted.\ne2fsck: Cannot continue, aborting.", 8)
    return 0


def tune2fs() -> int:
    """Only ``tune2fs -U random DEVICE``: a new filesystem UUID, as on a clone."""
    if ARGS[:2] != ["-U", "random"] or len(ARGS) != 3:
        raise Refused("tune2fs: the stand-in knows only -U random DEVICE", 1)
    name = volume_of(ARGS[-1])
    filesystems = load("filesystems", {})
    assert isinstance(filesystems, dict)
    if name not in filesystems:
        raise Refused(f"tune2fs: Bad magic number in super-block while trying to open {ARGS[-1]}")
    if any(line.split()[0] == str(ROOT / "volumes" / name) for line in mounts()):
        raise Refused("The UUID may only be changed when the filesystem is unmounted.", 1)
    import uuid

    filesystems[name]["uuid"] = str(uuid.uuid4())
    save("filesystems", filesystems)
    return 0


def resize2fs() -> int:
    name = volume_of(ARGS[-1])
    filesystems = load("filesystems", {})
    assert isinstance(filesystems, dict)
    if name not in filesystems:
        raise Refused(f"resize2fs: Bad magic number in super-block while trying to open {ARGS[-1]}")
    filesystems[name]["grown"] = filesystems[name].get("grown", 0) + 1
    save("filesystems", filesystems)
    return 0


def mounts() -> list[str]:
    path = STATE / "mounts.list"
    return path.read_text().splitlines() if path.exists() else []


def mount() -> int:
    positional = [a for a in ARGS if not a.startswith("-")]
    if "-o" in ARGS:
        positional.remove(ARGS[ARGS.index("-o") + 1])
    if len(positional) == 1:
        target = positional[0]
        entries = [
            line.split()
            for line in Path("/etc/fstab").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
        found = [e for e in entries if len(e) >= 2 and e[1] == target]
        if not found:
            raise Refused(f"mount: {target}: can't find in /etc/fstab.", 1)
        source = found[0][0]
    elif len(positional) == 2:
        source, target = positional
    else:
        raise Refused("mount: bad usage", 1)
    if source.startswith("UUID="):
        filesystems = load("filesystems", {})
        assert isinstance(filesystems, dict)
        names = [
            n
            for n, f in filesystems.items()
            if f["uuid"] == source[5:] and Path(DEVICE_PREFIX + n).exists()
        ]
        if not names:
            raise Refused(f"mount: {target}: can't find {source}.", 32)
        source = str(ROOT / "volumes" / names[0])
    elif source.startswith(DEVICE_PREFIX):
        name = volume_of(source)
        if name not in load("filesystems", {}):  # type: ignore[operator]
            raise Refused(f"mount: {target}: wrong fs type, bad option, bad superblock", 32)
        source = str(ROOT / "volumes" / name)
    options = ["--bind"]
    if "-o" in ARGS and "ro" in ARGS[ARGS.index("-o") + 1].split(","):
        options += ["-o", "ro"]
    import subprocess

    result = subprocess.run(["/usr/bin/mount", *options, source, target], check=False)
    if result.returncode != 0:
        raise Refused(f"mount: {target}: mount failed", 32)
    with open(STATE / "mounts.list", "a") as listing:
        listing.write(f"{source} {target}\n")
    return 0


def cp() -> int:
    """The real cp; with ``control/cp.corrupt`` armed, one copied file then differs; with
    ``control/cp.race`` armed, a student wins a race first: the destination is made a
    symbolic link to the path that file names."""
    race = CONTROL / "cp.race"
    if race.exists():
        elsewhere = race.read_text()
        race.unlink()
        if not os.path.lexists(ARGS[-1]):
            os.symlink(elsewhere, ARGS[-1])
    import subprocess

    result = subprocess.run(["/usr/bin/cp", *ARGS], check=False)
    corrupt = CONTROL / "cp.corrupt"
    if result.returncode == 0 and corrupt.exists():
        corrupt.unlink()
        copied = sorted(p for p in Path(ARGS[-1]).rglob("*") if p.is_file())
        if copied:
            with open(copied[0], "ab") as changed:
                changed.write(b"!")
    return result.returncode


def umount() -> int:
    target = ARGS[-1]
    import subprocess

    result = subprocess.run(["/usr/bin/umount", target], check=False)
    if result.returncode != 0:
        raise Refused(f"umount: {target}: not mounted.", 32)
    kept = [line for line in mounts() if line.split()[-1] != target]
    (STATE / "mounts.list").write_text("".join(f"{line}\n" for line in kept))
    return 0


# -- the server's accounts: getent, useradd, groupadd ------------------------------------------
#
# Kept in the state file ``accounts`` ({"passwd": {name: [uid, gid]}, "group": {name: gid}}),
# not in the machine's real /etc/passwd, which the sandbox must never touch. A new machine
# starts with none.


def accounts() -> dict:
    found = load("accounts", {})
    assert isinstance(found, dict)
    found.setdefault("passwd", {})
    found.setdefault("group", {})
    return found


def getent() -> int:
    if not ARGS or ARGS[0] not in ("passwd", "group"):
        raise Refused("getent: unknown database", 1)
    database, keys = ARGS[0], ARGS[1:]
    entries = accounts()[database]
    names = keys or sorted(entries)
    missing = False
    for name in names:
        if name not in entries:
            missing = True
            continue
        if database == "passwd":
            uid, gid = entries[name]
            print(f"{name}:x:{uid}:{gid}::/home/{name}:/bin/bash")
        else:
            print(f"{name}:x:{entries[name]}:")
    return 2 if missing else 0


def option(flag: str) -> str | None:
    return ARGS[ARGS.index(flag) + 1] if flag in ARGS else None


def groupadd() -> int:
    name, gid = ARGS[-1], option("-g")
    state = accounts()
    if name in state["group"]:
        if "--force" in ARGS or "-f" in ARGS:
            return 0
        raise Refused(f"groupadd: group '{name}' already exists", 9)
    if gid is None:
        gid = str(max([999, *state["group"].values()]) + 1)
    if int(gid) in state["group"].values():
        raise Refused(f"groupadd: GID '{gid}' already exists", 4)
    state["group"][name] = int(gid)
    save("accounts", state)
    return 0


def useradd() -> int:
    name, uid, group = ARGS[-1], option("-u"), option("-g")
    state = accounts()
    if name in state["passwd"]:
        raise Refused(f"useradd: user '{name}' already exists", 9)
    if uid is None:
        uid = str(max([999, *(u for u, _ in state["passwd"].values())]) + 1)
    if any(u == int(uid) for u, _ in state["passwd"].values()):
        raise Refused(f"useradd: UID {uid} is not unique", 4)
    if group is None:
        raise Refused("useradd: the stand-in needs -g", 2)
    gid = int(group) if group.isdigit() else state["group"].get(group)
    if gid not in state["group"].values():
        raise Refused(f"useradd: group '{group}' does not exist", 6)
    state["passwd"][name] = [int(uid), gid]
    save("accounts", state)
    return 0


PROGRAMS = {
    "getent": getent,
    "useradd": useradd,
    "groupadd": groupadd,
    "cp": cp,
    "umount": umount,
    "blkid": blkid,
    "mkfs.ext4": mkfs_ext4,
    "mount": mount,
    "resize2fs": resize2fs,
    "e2fsck": e2fsck,
    "tune2fs": tune2fs,
    "bootstrap": bootstrap,
    "tljh-config": tljh_config,
    "curl": curl,
    "apt-get": apt_get,
    "dpkg-query": dpkg_query,
    "conda": conda,
    "pip-user": lambda: pip("pip-user"),
    "pip-hub": lambda: pip("pip-hub"),
    "systemctl": systemctl,
}


def main() -> int:
    record()
    injected_trouble()
    # One stand-in at a time, as dpkg's and conda's own locks would have it.
    with open(STATE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return PROGRAMS[PROGRAM]()
        except Refused as refusal:
            sys.stderr.write(f"{refusal}\n")
            return refusal.status


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Refused as refusal:
        sys.stderr.write(f"{refusal}\n")
        sys.exit(refusal.status)
