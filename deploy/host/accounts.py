"""Hub accounts: NativeAuthenticator's ``users_info`` rows in the hub's own database.

NativeAuthenticator keeps each account as a row of ``users_info`` in JupyterHub's SQLite
database (``/opt/tljh/state/jupyterhub.sqlite`` on TLJH), and the running hub honours a
row written there at once. So seeding an admin, approving a sign-up, discarding one and
setting a password are each one small SQL transaction on the server.

Pure parts here: the program the server runs (a constant, standard library only), the
requests it reads (built and validated here), bcrypt hashes (computed by the service, so
a password never leaves it, only its hash does) and the parsers of what comes back. The
thin executor at the end sends one request per SSH round trip through ``deploy.ssh``:
the program travels as a fixed command, every value (names, hashes) as JSON on stdin,
never on a command line.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt

from deploy.host import tljh
from deploy.model import HubAccount, HubAccounts
from deploy.ssh import SSHError, SSHPool, Target

HUB_DATABASE = f"{tljh.STATE_DIR}/jupyterhub.sqlite"
# Names the service itself created as admin rows: a row under an admin name that is not
# listed here was made by somebody's sign-up, and is reported instead of touched.
SEEDED_FILE = f"{tljh.STATE_DIR}/classroom-accounts.json"
HUB_PYTHON = f"{tljh.HUB_PREFIX}/bin/python3"
# How long seeding waits for the hub's first start to create its database.
SEED_WAIT_SECONDS = 120

# NativeAuthenticator refuses ",", " " and "/" in a name, JupyterHub an empty one; the
# service refuses every other blank or control character too and keeps names short
# (the column holds 128).
_HUB_NAME = re.compile(r"[^\s,/\x00-\x1f\x7f]{1,128}")


class AccountError(ValueError):
    """A name or password the service refuses; the message says what is allowed."""


class AccountsUnavailable(SSHError):
    """The server answered, but its hub database could not be read or written."""


def hub_name(name: str) -> str:
    """``name`` as the hub stores it (lower-cased, as NativeAuthenticator normalises)."""
    normal = name.strip().lower()
    if not _HUB_NAME.fullmatch(normal):
        raise AccountError(
            f"{name!r} is not a hub user name: 1 to 128 characters, without spaces, "
            "commas, slashes or control characters"
        )
    return normal


def hub_names(names: Iterable[str]) -> list[str]:
    """Every name normalised, each once, in the order given."""
    return list(dict.fromkeys(hub_name(n) for n in names))


MIN_PASSWORD_LENGTH = 10
# The list NativeAuthenticator's own sign-up refuses (see deploy/host/data/README.md).
COMMON_PASSWORDS_FILE = Path(__file__).parent / "data" / "common-credentials.txt"


@functools.cache
def common_passwords() -> frozenset[str]:
    return frozenset(COMMON_PASSWORDS_FILE.read_text().splitlines())


def check_new_password(password: str, again: str) -> None:
    """Refuse a new hub password that is mistyped, short or common; say which rule failed.

    The message never repeats the password.
    """
    if password != again:
        raise AccountError("the two passwords differ: type the same password twice")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password is shorter than {MIN_PASSWORD_LENGTH} characters")
    if password in common_passwords():
        raise AccountError(
            "the password is one of the 10,000 most common ones NativeAuthenticator refuses: "
            "choose another"
        )


def password_hash(password: str) -> str:
    """The bcrypt hash NativeAuthenticator checks a login against (salt and cost inside)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode("ascii")


def unusable_password_hash() -> str:
    """A hash of random bytes that are then forgotten: no password matches it."""
    return bcrypt.hashpw(secrets.token_bytes(32), bcrypt.gensalt()).decode("ascii")


# --- the program the server runs ------------------------------------------------------

# Standard library only: it runs under TLJH's hub Python (or any python3). One action per
# run, named in argv; its data comes as one JSON object on stdin; it prints one JSON
# object. Every change is one transaction, so a cut connection leaves all or nothing.
_SERVER_PROGRAM = r"""
import base64, json, os, sqlite3, sys, time
DATABASE = @DATABASE@
SEEDED = @SEEDED@
action = sys.argv[1]
request = json.loads(sys.stdin.read() or "{}")

def table_ready():
    if not os.path.exists(DATABASE):
        return False
    db = sqlite3.connect("file:" + DATABASE + "?mode=ro", uri=True, timeout=30)
    try:
        found = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='users_info'"
        ).fetchone()
        return found is not None
    finally:
        db.close()

def seeded():
    # name -> the row's otp_secret when the service made it: a row of that name with
    # another secret was made by somebody else (after ours was deleted, say).
    try:
        with open(SEEDED) as f:
            found = json.load(f)
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}

def remember(mine):
    tmp = SEEDED + ".tmp"
    with open(tmp, "w") as f:
        os.chmod(tmp, 0o600)
        json.dump(mine, f, sort_keys=True)
    os.replace(tmp, SEEDED)

def secrets_of(db):
    return dict(db.execute("SELECT username, otp_secret FROM users_info"))

def rows(db, names):
    # One course has at most a few thousand rows: read them all rather than build SQL.
    wanted = set(names)
    return {
        name: bool(authorized)
        for name, authorized in db.execute("SELECT username, is_authorized FROM users_info")
        if name in wanted
    }

deadline = time.time() + float(request.get("wait", 0))
while not table_ready():
    if time.time() >= deadline:
        print(json.dumps({"database": False}))
        sys.exit(0)
    time.sleep(1)

db = sqlite3.connect(DATABASE, timeout=30, isolation_level=None)
out = {"database": True}
db.execute("BEGIN IMMEDIATE")
if action == "seed":
    mine = seeded()
    accounts = request["accounts"]
    have = rows(db, [a["name"] for a in accounts])
    otp = secrets_of(db)
    out.update(created=[], present=[], taken=[])
    for account in accounts:
        name = account["name"]
        if name not in have:
            secret = base64.b32encode(os.urandom(10)).decode()
            db.execute(
                "INSERT INTO users_info (username, password, is_authorized, login_email_sent,"
                " has_2fa, otp_secret) VALUES (?, ?, 1, 0, 0, ?)",
                (name, account["hash"].encode(), secret),
            )
            mine[name] = secret
            out["created"].append(name)
        elif mine.get(name) is not None and mine.get(name) == otp.get(name):
            out["present"].append(name)
        else:
            out["taken"].append(name)
    if out["created"]:
        remember(mine)
elif action in ("approve", "discard"):
    # Both sort the names alike (unknown, approved already, or waiting) and change only a
    # waiting sign-up: approve authorises it, discard deletes it.
    done, kept, change = {
        "approve": ("approved", "already", "UPDATE users_info SET is_authorized=1"
                    " WHERE username=?"),
        "discard": ("discarded", "approved", "DELETE FROM users_info"
                    " WHERE username=? AND is_authorized=0"),
    }[action]
    names = request["names"]
    have = rows(db, names)
    out.update({done: [], kept: [], "unknown": []})
    for name in names:
        if name not in have:
            out["unknown"].append(name)
        elif have[name]:
            out[kept].append(name)
        else:
            db.execute(change, (name,))
            out[done].append(name)
elif action == "set-password":
    changed = db.execute(
        "UPDATE users_info SET password=? WHERE username=?",
        (request["hash"].encode(), request["name"]),
    ).rowcount
    out["updated"] = changed > 0
else:
    db.execute("ROLLBACK")
    sys.stderr.write("unknown action " + action + "\n")
    sys.exit(2)
db.execute("COMMIT")
print(json.dumps(out))
"""


def server_program(database: str = HUB_DATABASE, seeded: str = SEEDED_FILE) -> str:
    """The constant accounts program for a hub database at ``database`` (TLJH's by default;
    a Zero to JupyterHub hub keeps its own on the hub's volume)."""
    return _SERVER_PROGRAM.replace("@DATABASE@", repr(database)).replace("@SEEDED@", repr(seeded))


SERVER_PROGRAM = server_program()

# The listing, read-only (the database opened so), for the observe script as well.
LIST_PROGRAM = r"""
import json, os, sqlite3
DATABASE = @DATABASE@
SEEDED = @SEEDED@
out = {"database": False}
if os.path.exists(DATABASE):
    db = sqlite3.connect("file:" + DATABASE + "?mode=ro", uri=True, timeout=30)
    tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    if "users_info" in tables:
        out["database"] = True
        # JupyterHub's own users table: when each account was last active (UTC).
        active = {}
        if "users" in tables:
            active = dict(db.execute("SELECT name, last_activity FROM users"))
        out["rows"] = [
            {"name": n, "authorized": bool(a), "email": e or "", "last_activity": active.get(n)}
            for n, a, e in db.execute(
                "SELECT username, is_authorized, email FROM users_info ORDER BY id"
            )
        ]
        try:
            with open(SEEDED) as f:
                mine = json.load(f)
        except (OSError, ValueError):
            mine = {}
        otp = dict(db.execute("SELECT username, otp_secret FROM users_info"))
        # Only rows still the ones the service made (same secret) count as its own.
        out["seeded"] = [
            name for name, secret in (mine.items() if isinstance(mine, dict) else ())
            if secret is not None and otp.get(name) == secret
        ]
print(json.dumps(out))
""".replace("@DATABASE@", repr(HUB_DATABASE)).replace("@SEEDED@", repr(SEEDED_FILE))

ACTIONS = ("list", "seed", "approve", "discard", "set-password")


def command(action: str) -> str:
    """The shell command that runs one action; it holds no value from anyone."""
    if action not in ACTIONS:
        raise ValueError(f"unknown accounts action {action!r}")
    python = shlex.quote(HUB_PYTHON)
    # TLJH's hub Python, or the system's before TLJH exists (it has sqlite3 as well).
    program = LIST_PROGRAM if action == "list" else SERVER_PROGRAM
    return (
        f"if [ -x {python} ]; then python={python}; else python=python3; fi\n"
        f'"$python" -I -c {shlex.quote(program)} {action}'
    )


# --- requests ------------------------------------------------------------------------


def seed_request(admins: Iterable[str], wait: float = SEED_WAIT_SECONDS) -> dict[str, Any]:
    """Rows for the admins, each with a fresh unusable password (used only if created)."""
    return {
        "wait": wait,
        "accounts": [{"name": n, "hash": unusable_password_hash()} for n in hub_names(admins)],
    }


def names_request(names: Iterable[str]) -> dict[str, Any]:
    return {"names": hub_names(names)}


def password_request(name: str, password: str) -> dict[str, Any]:
    return {"name": hub_name(name), "hash": password_hash(password)}


# --- answers --------------------------------------------------------------------------


def parse_answer(stdout: str) -> dict[str, Any]:
    """The JSON object the program printed last; ``{}`` when there is none."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                loaded = json.loads(line)
            except ValueError:
                return {}
            return loaded if isinstance(loaded, dict) else {}
    return {}


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


# The approve action's answer keys, in NamesOutcome's order.
APPROVED = ("approved", "already", "unknown")


def name_lists(answer: dict[str, Any], *keys: str) -> tuple[tuple[str, ...], ...]:
    """The names the hub's script listed under each of ``keys``, in order; absent is empty."""
    return tuple(tuple(_strings(answer.get(key))) for key in keys)


def parse_accounts(stdout: str) -> HubAccounts:
    answer = parse_answer(stdout)
    if not answer.get("database"):
        return HubAccounts()
    rows = []
    for row in answer.get("rows") or []:
        if isinstance(row, dict) and isinstance(row.get("name"), str):
            email = row.get("email")
            email = email if isinstance(email, str) else ""
            active = row.get("last_activity")
            active = active if isinstance(active, str) else ""
            rows.append(HubAccount(row["name"], bool(row.get("authorized")), email, active))
    return HubAccounts(True, tuple(rows), frozenset(_strings(answer.get("seeded"))))


@dataclass(frozen=True)
class NamesOutcome:
    """What one approve or discard did with each name asked for."""

    done: tuple[str, ...]  # approved, or discarded
    already: tuple[str, ...]  # already approved (approve), or approved hence kept (discard)
    unknown: tuple[str, ...]


@dataclass(frozen=True)
class SeedOutcome:
    created: tuple[str, ...]
    present: tuple[str, ...]
    taken: tuple[str, ...]  # an admin name that somebody's sign-up holds: left alone


# --- the executor ---------------------------------------------------------------------


async def run(
    pool: SSHPool, target: Target, action: str, request: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One action in one SSH round trip; its answer, or ``AccountsUnavailable``."""
    status, stdout, _stderr = await pool.run_script(
        target, tljh.script(command(action)), stdin=json.dumps(request or {})
    )
    answer = parse_answer(stdout)
    if status != 0 or not answer:
        # stderr may echo a request line back; it is not passed on.
        raise AccountsUnavailable(
            f"the hub's accounts on {target.address} could not be read ({action} exited {status})"
        )
    if not answer.get("database"):
        raise AccountsUnavailable(
            f"the hub on {target.address} has no account database yet ({HUB_DATABASE}); "
            "deploy first"
        )
    return answer


async def list_accounts(pool: SSHPool, target: Target) -> HubAccounts:
    status, stdout, _ = await pool.run_script(target, tljh.script(command("list")))
    if status != 0:
        raise AccountsUnavailable(f"the hub's accounts on {target.address} could not be read")
    return parse_accounts(stdout)


async def seed_admins(
    pool: SSHPool, target: Target, admins: Iterable[str], wait: float = SEED_WAIT_SECONDS
) -> SeedOutcome:
    answer = await run(pool, target, "seed", seed_request(admins, wait))
    return SeedOutcome(*name_lists(answer, "created", "present", "taken"))


async def approve(pool: SSHPool, target: Target, names: Iterable[str]) -> NamesOutcome:
    """Authorise waiting sign-ups, all in one round trip; approving twice changes nothing."""
    answer = await run(pool, target, "approve", names_request(names))
    return NamesOutcome(*name_lists(answer, *APPROVED))


async def discard(pool: SSHPool, target: Target, names: Iterable[str]) -> NamesOutcome:
    """Delete waiting sign-ups; an approved account is never deleted (it is in ``already``)."""
    answer = await run(pool, target, "discard", names_request(names))
    return NamesOutcome(*name_lists(answer, "discarded", "approved", "unknown"))


async def set_password(pool: SSHPool, target: Target, name: str, password: str) -> bool:
    """Give an existing account a new password; False when there is no such account."""
    answer = await run(pool, target, "set-password", password_request(name, password))
    return bool(answer.get("updated"))
