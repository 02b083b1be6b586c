"""Shell command builders for a TLJH server: the exact paths and commands the engine runs.

Every function returns shell text in which each value is a single ``shlex.quote``-d word,
so a value can never become two words or a second command, whatever it holds. The
callers pass values that ``deploy.course.validate`` already accepted; quoting here is the second
lock on the same door.
"""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Iterable
from typing import Any

HUB_PREFIX = "/opt/tljh/hub"
USER_PREFIX = "/opt/tljh/user"
TLJH_CONFIG = f"{HUB_PREFIX}/bin/tljh-config"
HUB_PIP = f"{HUB_PREFIX}/bin/pip"
USER_CONDA = f"{USER_PREFIX}/bin/conda"
USER_PIP = f"{USER_PREFIX}/bin/pip"
STATE_DIR = "/opt/tljh/state"
BOOTSTRAP_URL = "https://tljh.jupyter.org/bootstrap.py"
HUB_API_URL = "http://127.0.0.1/hub/api"
DEFAULT_CONDA_CHANNEL = "conda-forge"

# Every step script starts here: stop at the first failing command, and fail on unset
# variables. pipefail is bash-only (dash refuses the option outright), so it is turned on
# only where bash runs the script; root's login shell on Ubuntu and Debian is bash.
PREAMBLE = 'set -eu\nif [ -n "${BASH_VERSION:-}" ]; then set -o pipefail; fi\n'


def words(values: Iterable[str]) -> str:
    """Return ``values`` as shell words, each one quoted."""
    return " ".join(shlex.quote(v) for v in values)


def script(*lines: str) -> str:
    """Join command lines into one step script that stops at the first failure."""
    return PREAMBLE + "".join(f"{line}\n" for line in lines)


def config_value(value: object) -> str:
    """Spell ``value`` the way ``tljh-config set`` reads it back to the same YAML value.

    tljh-config turns ``true``/``false`` into booleans and numerals into numbers, so
    booleans and numbers are written in that form and compare equal once observed.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def config_set(key: str, value: object) -> str:
    return f"{TLJH_CONFIG} set {shlex.quote(key)} {shlex.quote(config_value(value))}"


def config_unset(key: str) -> str:
    return f"{TLJH_CONFIG} unset {shlex.quote(key)}"


def config_add_item(key: str, value: str) -> str:
    return f"{TLJH_CONFIG} add-item {shlex.quote(key)} {shlex.quote(value)}"


def config_remove_item(key: str, value: str) -> str:
    return f"{TLJH_CONFIG} remove-item {shlex.quote(key)} {shlex.quote(value)}"


def config_reload(component: str) -> str:
    if component not in ("hub", "proxy"):
        raise ValueError(f"tljh-config reloads 'hub' or 'proxy', not {component!r}")
    return f"{TLJH_CONFIG} reload {component}"


def bootstrap(version: str, admins: Iterable[str] = ()) -> str:
    """The official installer; it installs TLJH, or upgrades it in place when present."""
    admin_words = "".join(f" --admin {shlex.quote(a)}" for a in admins)
    return f"curl -fsSL {BOOTSTRAP_URL} | python3 - --version {shlex.quote(version)}{admin_words}"


def apt_install(packages: Iterable[str]) -> list[str]:
    """``apt-get update`` once, then install; both lines belong in the same step."""
    return [
        "apt-get update",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
        + words(packages),
    ]


def apt_remove(packages: Iterable[str]) -> str:
    return "DEBIAN_FRONTEND=noninteractive apt-get remove -y " + words(packages)


def conda_install(specs: Iterable[str], channels: Iterable[str] = ()) -> str:
    chosen = list(channels) or [DEFAULT_CONDA_CHANNEL]
    channel_words = " ".join(f"-c {shlex.quote(c)}" for c in chosen)
    return f"{USER_CONDA} install -y --override-channels {channel_words} {words(specs)}"


def conda_remove(names: Iterable[str]) -> str:
    return f"{USER_CONDA} remove -y {words(names)}"


def pip_install(requirements: Iterable[str]) -> str:
    return f"{USER_PIP} install --no-input {words(requirements)}"


def pip_uninstall(names: Iterable[str]) -> str:
    return f"{USER_PIP} uninstall -y {words(names)}"


def wait_for_hub(attempts: int = 30, pause_seconds: int = 2) -> list[str]:
    """Ask the hub's API until it answers; a hub just reloaded takes a few seconds."""
    return [
        "answered=no",
        f"for attempt in $(seq 1 {int(attempts)}); do",
        f"  if curl -fsS --max-time 10 {HUB_API_URL}; then answered=yes; break; fi",
        f"  sleep {int(pause_seconds)}",
        "done",
        'if [ "$answered" != yes ]; then',
        f"  echo 'the hub did not answer at {HUB_API_URL}' >&2",
        "  exit 1",
        "fi",
    ]


# The service's own JupyterHub service: its API token lets the console list students and
# their last activity. TLJH sets c.JupyterHub.services itself and then loads
# jupyterhub_config.d, so the file appends to what TLJH set. The token is made on the
# server and stays there (root-only file): it is never sent, printed or logged.
CONFIG_D = "/opt/tljh/config/jupyterhub_config.d"
API_SERVICE_NAME = "littlest-classroom"
API_SERVICE_FILE = f"{CONFIG_D}/littlest-classroom.py"
API_TOKEN_FILE = f"{STATE_DIR}/classroom-api-token"
API_SERVICE_SCOPES = ("list:users", "read:users:name", "read:users:activity")
API_SERVICE_CONFIG = f"""\
# Written by Littlest Classroom: the course console lists students and their last
# activity through this service. Its token never leaves this server.
import os

_token_file = {API_TOKEN_FILE!r}
if os.path.exists(_token_file):
    with open(_token_file) as _f:
        _token = _f.read().strip()
    c.JupyterHub.services.append({{"name": {API_SERVICE_NAME!r}, "api_token": _token}})
    c.JupyterHub.load_roles.append(
        {{
            "name": {API_SERVICE_NAME!r},
            "scopes": {list(API_SERVICE_SCOPES)!r},
            "services": [{API_SERVICE_NAME!r}],
        }}
    )
"""


def install_api_service() -> list[str]:
    """Make the token once (kept if present), then write the service's config file."""
    token = shlex.quote(API_TOKEN_FILE)
    config = shlex.quote(API_SERVICE_FILE)
    return [
        f"mkdir -p {shlex.quote(STATE_DIR)} {shlex.quote(CONFIG_D)}",
        f"if [ ! -s {token} ]; then",
        f"  (umask 077 && python3 -c 'import secrets; print(secrets.token_hex(32))' > {token}.tmp)",
        f"  mv {token}.tmp {token}",
        "fi",
        # One line: base64 keeps the file's lines and quotes out of the script's syntax.
        f"printf '%s' {base64.b64encode(API_SERVICE_CONFIG.encode()).decode()} "
        f"| base64 -d > {config}.tmp",
        f"mv {config}.tmp {config}",
    ]


def write_state(state: dict[str, Any], path: str) -> list[str]:
    """Write ``state`` as JSON atomically: to a temporary file, then renamed over ``path``."""
    text = json.dumps(state, sort_keys=True)
    temporary = f"{path}.tmp"
    return [
        f"mkdir -p {shlex.quote(STATE_DIR)}",
        f"printf '%s\\n' {shlex.quote(text)} > {shlex.quote(temporary)}",
        f"mv {shlex.quote(temporary)} {shlex.quote(path)}",
    ]
