"""Observe a server: one read-only shell script, and the pure parser of what it prints.

The script gathers everything the planner compares against in one SSH round trip. Each
section is printed between marker lines so the parser can find it whatever else a tool
prints, and every command tolerates being absent, since a fresh server has no TLJH yet.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import fields
from typing import Any

import yaml

from deploy.host import accounts, assignments, shared, tljh
from deploy.model import STATE_FILE, HubAccount, HubAccounts, Observed
from deploy.volumes import homevolume

# The units whose state /status reports, in the order ``systemctl is-active`` answers.
SERVICES = ("jupyterhub", "traefik")

# Section name -> the read-only command whose output it holds.
_COMMANDS: dict[str, str] = {
    "os-release": "cat /etc/os-release",
    "tljh": f"if [ -x {tljh.TLJH_CONFIG} ]; then echo present; else echo absent; fi",
    "tljh-version": f"{tljh.HUB_PIP} show the-littlest-jupyterhub",
    "tljh-config": f"{tljh.TLJH_CONFIG} show",
    "apt": "dpkg-query -W -f='${Package}\\t${Version}\\t${db:Status-Status}\\n'",
    "conda": f"{tljh.USER_CONDA} list --json",
    "pip": f"{tljh.USER_PIP} list --format=json",
    "services": "systemctl is-active " + " ".join(SERVICES),
    "disk": "df -B1 --output=size,used,avail /home",
    "meminfo": "cat /proc/meminfo",
    "state": f"cat {shlex.quote(STATE_FILE)}",
    "home-volume": homevolume.OBSERVE_COMMAND,
    "api-service": f"cat {shlex.quote(tljh.API_SERVICE_FILE)}",
    "shared": shared.OBSERVE_COMMAND,
    # Nothing on stdin: the listing reads no request.
    "hub-accounts": "{ " + accounts.command("list") + "\n} < /dev/null",
    "nbgrader": assignments.OBSERVE_COMMAND,
}

_MARKER = re.compile(r"=== ([a-z-]+) ===")


def observe_script() -> str:
    """One shell script that prints every section and changes nothing on the server."""
    lines = []
    for name, command in _COMMANDS.items():
        # The newline before each marker keeps it on a line of its own even when the
        # previous output (a state file, say) does not end with one.
        lines.append(f"printf '\\n=== %s ===\\n' {shlex.quote(name)}")
        lines.append(f"{{ {command}; }} 2>/dev/null || true")
    lines.append("printf '\\n=== end ===\\n'")
    return "\n".join(lines) + "\n"


def split_sections(stdout: str) -> dict[str, str]:
    """Map each known section name to the text printed under its marker."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in stdout.splitlines():
        marker = _MARKER.fullmatch(line.strip())
        if marker and (marker[1] in _COMMANDS or marker[1] == "end"):
            current = sections.setdefault(marker[1], [])
            continue
        if current is not None:
            current.append(line)
    return {name: "\n".join(body).strip() for name, body in sections.items() if name != "end"}


def _os_release(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, raw = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", key.strip()):
            continue
        try:
            words = shlex.split(raw)
        except ValueError:
            continue
        values[key.strip()] = words[0] if words else ""
    return values


def _tljh_version(text: str) -> str | None:
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() == "version" and value.strip():
            return value.strip()
    return None


def _tljh_config(text: str) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _apt(text: str) -> dict[str, str]:
    installed: dict[str, str] = {}
    for line in text.splitlines():
        fields = line.split("\t")
        # Removed-but-configured packages ("config-files") are listed too; only
        # "installed" means the package is there to use.
        if len(fields) == 3 and fields[0] and fields[2].strip() == "installed":
            installed[fields[0].strip()] = fields[1].strip()
    return installed


def _json_list(text: str) -> list[Any]:
    # Tools sometimes print a warning before their JSON; start at the first bracket.
    start = text.find("[")
    if start < 0:
        return []
    try:
        loaded = json.loads(text[start:])
    except ValueError:
        return []
    return loaded if isinstance(loaded, list) else []


def _packages(text: str, *, skip_channel: str | None = None) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in _json_list(text):
        if not isinstance(entry, dict):
            continue
        name, version = entry.get("name"), entry.get("version")
        if not isinstance(name, str) or not name or not isinstance(version, str):
            continue
        # conda lists what pip installed with channel "pypi"; those belong to pip.
        if skip_channel is not None and entry.get("channel") == skip_channel:
            continue
        found[name] = version
    return found


def _services(text: str) -> dict[str, str]:
    answers = [line.strip() for line in text.splitlines() if line.strip()]
    if len(answers) != len(SERVICES):
        return {}
    return dict(zip(SERVICES, answers, strict=True))


def _disk(text: str) -> tuple[float | None, int | None]:
    for line in text.splitlines():
        fields = line.split()
        if len(fields) == 3 and all(f.isdigit() for f in fields):
            _size, used, available = (int(f) for f in fields)
            usable = used + available
            # df's own Use% is used / (used + available): root's reserve is not usable.
            percent = round(100.0 * used / usable, 1) if usable else None
            return percent, available
    return None, None


def _meminfo(text: str) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+):\s+([0-9]+)(?:\s+kB)?", line.strip())
        if match:
            values[match[1]] = int(match[2]) * (1024 if line.strip().endswith("kB") else 1)
    return values


def _state(text: str) -> dict[str, Any]:
    try:
        loaded = json.loads(text) if text else None
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def parse_observation(stdout: str) -> Observed:
    """Read what ``observe_script`` printed; a missing or garbled section reads as unknown."""
    sections = split_sections(stdout)
    os_release = _os_release(sections.get("os-release", ""))
    version = _tljh_version(sections.get("tljh-version", ""))
    installed = sections.get("tljh", "") == "present"
    disk_percent, disk_free = _disk(sections.get("disk", ""))
    memory = _meminfo(sections.get("meminfo", ""))
    home_volume, home_on_volume = homevolume.parse_observed(sections.get("home-volume", ""))
    shared_laid_out, shared_commit = shared.parse_observed(sections.get("shared", ""))
    return Observed(
        reachable=True,
        os_id=os_release.get("ID", ""),
        os_version=os_release.get("VERSION_ID", ""),
        tljh_installed=installed,
        tljh_version=version if installed else None,
        tljh_config=_tljh_config(sections.get("tljh-config", "")) if installed else {},
        apt=_apt(sections.get("apt", "")),
        conda=_packages(sections.get("conda", ""), skip_channel="pypi"),
        pip=_packages(sections.get("pip", "")),
        services=_services(sections.get("services", "")),
        disk_used_percent=disk_percent,
        disk_free_bytes=disk_free,
        memory_total_bytes=memory.get("MemTotal"),
        memory_available_bytes=memory.get("MemAvailable"),
        state=_state(sections.get("state", "")),
        home_volume=home_volume,
        home_on_volume=home_on_volume,
        home_volume_outdated=home_on_volume
        and homevolume.setup_outdated(sections.get("home-volume", "")),
        accounts=accounts.parse_accounts(sections.get("hub-accounts", "")),
        api_service=sections.get("api-service", ""),
        nbgrader_config=sections.get("nbgrader", ""),
        shared_laid_out=shared_laid_out,
        shared_commit=shared_commit,
    )


def observation_record(observed: Observed) -> dict[str, Any]:
    """``observed`` as JSON-ready data, for a plan that may not look at the server itself
    (a pull request's): the accounts keep only names and approval, no e-mail or activity."""
    record = {f.name: getattr(observed, f.name) for f in fields(Observed) if f.name != "accounts"}
    record["accounts"] = {
        "database": observed.accounts.database,
        "rows": [[row.name, row.authorized] for row in observed.accounts.rows],
        "seeded": sorted(observed.accounts.seeded),
    }
    return record


def observation_from_record(record: dict[str, Any]) -> Observed | None:
    """The ``Observed`` an ``observation_record`` was made from; None if it does not read."""
    try:
        raw = dict(record)
        accounts_record = raw.pop("accounts", None) or {}
        known = {f.name for f in fields(Observed)}
        values = {key: value for key, value in raw.items() if key in known}
        hub_accounts = HubAccounts(
            database=bool(accounts_record.get("database")),
            rows=tuple(
                HubAccount(str(name), bool(authorized))
                for name, authorized in accounts_record.get("rows") or []
            ),
            seeded=frozenset(str(name) for name in accounts_record.get("seeded") or []),
        )
        return Observed(**values, accounts=hub_accounts)
    except (TypeError, ValueError, AttributeError):
        return None
