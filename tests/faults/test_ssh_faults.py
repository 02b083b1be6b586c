"""SSH faults: the connection cut at every step of a fresh deploy, by each program the step
runs. The step runs again on a new connection and the deploy succeeds with the same steps
as a clean one; the server ends exactly as a clean deploy leaves it (written out by hand
below), TLJH's installer and every package install ran to the end exactly once, nothing
is left to plan, and the students' /home is untouched."""

from __future__ import annotations

import json
import sqlite3

import pytest

from bot.store import Store
from deploy import operations
from deploy.course.config import load_course
from deploy.keys import ServiceKey
from deploy.ssh import SSHPool

pytestmark = pytest.mark.sshd

COURSE = "octo-org/physics101"
HOSTNAME = "hub.example.edu"

# What a fresh deploy of COURSE_FILES runs, step by step (the plan's step names), and the
# stand-in programs each step calls. "observe" is the look at the server before planning.
# (The installer starts the hub with the authenticator already set, sign-up closed; sign-up
# opens in its own step once the admins have accounts.)
STEP_PROGRAMS: list[tuple[str, str]] = [
    ("observe", "dpkg-query"),
    ("observe", "systemctl"),
    ("tljh-install", "curl"),
    ("tljh-install", "bootstrap"),
    ("signup", "tljh-config"),
    ("https", "tljh-config"),
    ("hub-settings", "tljh-config"),
    ("apt", "apt-get"),
    ("conda", "conda"),
    ("pip", "pip-user"),
    ("reload", "tljh-config"),
    ("verify", "curl"),
]

# The steps of a clean fresh deploy of course_files(), in order.
CLEAN_STEPS = [
    "tljh-install",
    "accounts",
    "signup",
    "api-service",
    "https",
    "hub-settings",
    "apt",
    "conda",
    "pip",
    "reload",
    "verify",
    "state",
]

# The calls that change the server in a clean fresh deploy, in order: TLJH's installer,
# tljh-config edits and package installs. Each must run to the end exactly once.
CLEAN_ACTIONS: list[tuple[str, list[str]]] = [
    # The installer finds the authenticator set and sign-up closed; sign-up opens once the
    # admins' accounts exist.
    ("bootstrap", ["--version", "2.0.0", "--admin", "alice", "--admin", "carol"]),
    ("tljh-config", ["set", "auth.NativeAuthenticator.enable_signup", "true"]),
    ("tljh-config", ["set", "https.enabled", "true"]),
    ("tljh-config", ["set", "https.letsencrypt.email", "teacher@example.edu"]),
    ("tljh-config", ["add-item", "https.letsencrypt.domains", HOSTNAME]),
    ("tljh-config", ["set", "user_environment.default_app", "jupyterlab"]),
    ("tljh-config", ["set", "limits.memory", "1G"]),
    ("tljh-config", ["set", "limits.cpu", "1"]),
    ("tljh-config", ["set", "services.cull.timeout", "3600"]),
    ("apt-get", ["install", "-y", "--no-install-recommends", "graphviz"]),
    ("conda", ["install", "-y", "--override-channels", "-c", "conda-forge", "numpy=1.26", "pip"]),
    ("pip-user", ["install", "--no-input", "nbgitpuller==1.2.1"]),
]
CONFIG_EDITS = ("set", "unset", "add-item", "remove-item")

# The server after a clean fresh deploy, as the stand-ins keep it (their state files).
# The stand-ins' own baseline (curl, git, python3, jupyterlab, ...) is there before it.
CLEAN_END_STATE: dict[str, object] = {
    "tljh-config": {
        "auth": {
            "type": "nativeauthenticator.NativeAuthenticator",
            "NativeAuthenticator": {
                "open_signup": False,
                "enable_signup": True,
                "allow_all": True,
            },
        },
        "https": {
            "enabled": True,
            "letsencrypt": {"email": "teacher@example.edu", "domains": [HOSTNAME]},
        },
        "user_environment": {"default_app": "jupyterlab"},
        "limits": {"memory": "1G", "cpu": 1},
        "services": {"cull": {"timeout": 3600}},
        "users": {"admin": ["alice", "carol"]},
    },
    "apt": {
        "curl": "8.5.0-2ubuntu10.6",
        "git": "1:2.43.0-1ubuntu7",
        "graphviz": "1.0-1",
        "python3": "3.12.3-0ubuntu2",
    },
    "conda": [
        {"channel": "conda-forge", "name": "numpy", "version": "1.26"},
        {"channel": "conda-forge", "name": "pip", "version": "1.0.0"},
        {"channel": "conda-forge", "name": "python", "version": "3.12.7"},
    ],
    "pip-user": {
        "jupyterhub": "5.1.0",
        "jupyterlab": "4.2.5",
        "nbgitpuller": "1.2.1",
        "notebook": "7.2.2",
    },
    "pip-hub": {
        "jupyterhub": "5.1.0",
        "jupyterhub-nativeauthenticator": "1.3.0",
        "the-littlest-jupyterhub": "2.0.0",
    },
    "services": {"jupyterhub": "active", "traefik": "active"},
}
# What the state file records (all but the time it was written).
CLEAN_STATE_RECORD = {
    "engine": "littlest-classroom",
    "tljh_version": "2.0.0",
    "apt": ["graphviz"],
    "conda": ["numpy=1.26", "pip"],
    "pip": ["nbgitpuller==1.2.1"],
    "config": {
        "auth.type": "nativeauthenticator.NativeAuthenticator",
        "auth.NativeAuthenticator.open_signup": False,
        "auth.NativeAuthenticator.enable_signup": True,
        "auth.NativeAuthenticator.allow_all": True,
        "https.enabled": True,
        "https.letsencrypt.email": "teacher@example.edu",
        "https.letsencrypt.domains": [HOSTNAME],
        "user_environment.default_app": "jupyterlab",
        "limits.memory": "1G",
        "limits.cpu": 1.0,
        "services.cull.timeout": 3600,
        "users.admin": ["alice", "carol"],
    },
}


def course_files(target) -> dict[str, bytes]:
    config = (
        "server:\n"
        "  provider: ssh\n"
        f"  host: {target.host}\n"
        f"  port: {target.port}\n"
        "hub:\n"
        f"  hostname: {HOSTNAME}\n"
        "  letsencrypt_email: teacher@example.edu\n"
        "  admins: [alice, carol]\n"
        "  limits: {memory: 1G, cpu: 1}\n"
    )
    environment = (
        "channels: [conda-forge]\n"
        "dependencies:\n"
        "  - numpy=1.26\n"
        "  - pip\n"
        "  - pip:\n"
        "    - nbgitpuller==1.2.1\n"
    )
    return {
        ".github/classroom.yml": config.encode(),
        "apt.txt": b"graphviz\n",
        "environment.yml": environment.encode(),
    }


@pytest.fixture
async def engine(tmp_path, ssh_target):
    store = await Store.open(tmp_path / "data")
    key = ServiceKey(ssh_target.client_key, "", "", "", tmp_path / "key")
    engine = operations.Engine(records=store, ssh=SSHPool(reconnect_delay=0.05), service_key=key)
    yield engine
    await engine.close()
    await store.close()


class CutAtStep:
    """Progress sink that cuts the connection at the next call of ``program`` once step
    ``step`` begins (or at once, for the observation before any step)."""

    def __init__(self, target, step: str, program: str) -> None:
        self.target = target
        self.step = step
        self.program = program
        self.lines: list[str] = []
        self.calls_before: int | None = None
        if step == "observe":
            self.arm()

    def arm(self) -> None:
        # The step's line comes before any of its commands runs, so the next call of the
        # program is the first one after those already recorded.
        self.calls_before = len(self.target.calls(self.program))
        self.target.cut_next(self.program)

    async def progress(self, line: str) -> None:
        self.lines.append(line)
        if self.calls_before is None and line.startswith(f"step {self.step}:"):
            self.arm()

    def cut_call(self) -> dict:
        """The call the connection was cut in: the first of ``program`` once armed."""
        assert self.calls_before is not None, f"step {self.step} never began"
        # The stand-in removes its one-shot marker when it honours it.
        marker = self.target.sandbox / "control" / f"{self.program}.cut"
        assert not marker.exists(), f"{self.program} was not called in step {self.step}"
        return self.target.calls(self.program)[self.calls_before]


async def noop(_line: str) -> None:
    return None


def state_record(target) -> dict:
    path = target.sandbox / "opt" / "tljh" / "state" / "classroom.json"
    record = json.loads(path.read_text())
    return {key: record[key] for key in CLEAN_STATE_RECORD}


def assert_clean_end_state(target) -> None:
    """The server is exactly as a clean fresh deploy leaves it."""
    for name, expected in CLEAN_END_STATE.items():
        assert target.state(name) == expected, name
    assert state_record(target) == CLEAN_STATE_RECORD
    # Each admin has exactly one hub account, authorized, made before sign-up opened.
    database = target.sandbox / "opt" / "tljh" / "state" / "jupyterhub.sqlite"
    with sqlite3.connect(database) as db:
        accounts = sorted(db.execute("SELECT username, is_authorized FROM users_info"))
    assert accounts == [("alice", 1), ("carol", 1)]
    assert target.canary.intact(), "a student's file in /home changed"


def actions(calls: list[dict]) -> list[tuple[str, list[str]]]:
    """The calls that change the server: the installer, config edits, package installs."""
    found = []
    for call in calls:
        program, argv = call["program"], call.get("argv", [])
        if (
            program == "bootstrap"
            or (program == "tljh-config" and argv[:1] and argv[0] in CONFIG_EDITS)
            or (program in ("apt-get", "conda", "pip-user") and "install" in argv)
        ):
            found.append((program, argv))
    return found


async def test_a_clean_deploy_ends_in_the_state_written_out_above(engine, ssh_target):
    # The reference the cut deploys are held to: a deploy with no fault.
    config = load_course(course_files(ssh_target), "octo-org", "physics101")

    first = await operations.deploy(engine, COURSE, config, mode="apply", progress=noop)

    assert first.conclusion == "success", first.summary
    assert [s.step.name for s in first.steps] == CLEAN_STEPS
    assert actions(ssh_target.calls()) == CLEAN_ACTIONS
    assert_clean_end_state(ssh_target)


@pytest.mark.parametrize(("step", "program"), STEP_PROGRAMS, ids=lambda v: v)
async def test_a_cut_connection_at_each_step_converges(engine, ssh_target, step, program):
    config = load_course(course_files(ssh_target), "octo-org", "physics101")
    cutter = CutAtStep(ssh_target, step, program)

    first = await operations.deploy(engine, COURSE, config, mode="apply", progress=cutter.progress)

    cut = cutter.cut_call()
    # The cut step ran again on a new connection, once, and the deploy went on as a clean
    # one does: the same steps, the same success.
    assert first.conclusion == "success", (first.title, first.summary)
    assert first.title == f"Deployed: {len(CLEAN_STEPS)} step(s)"
    assert [s.step.name for s in first.steps] == CLEAN_STEPS
    retries = [line for line in cutter.lines if "reconnecting and running step" in line]
    if step == "observe":
        # The look before planning is read-only and is simply taken again.
        assert retries == []
    else:
        assert len(retries) == 1, retries
        assert f"reconnecting and running step {step} again (1/2)" in retries[0]

    # Every change ran to the end exactly once: the cut call was stopped before it acted
    # (the stand-in cuts first), and the rerun did not repeat what had finished.
    calls = [c for c in ssh_target.calls() if c != cut]
    assert actions(calls) == CLEAN_ACTIONS
    assert len([c for c in calls if c["program"] == "bootstrap"]) == 1
    assert_clean_end_state(ssh_target)

    # Nothing is left to do: a second deploy changes nothing and a plan is empty.
    done = actions(ssh_target.calls())
    second = await operations.deploy(engine, COURSE, config, mode="apply", progress=noop)
    assert second.conclusion == "neutral" and second.steps == [], second.summary
    plan = await operations.deploy(engine, COURSE, config, mode="plan", progress=noop)
    assert plan.conclusion == "neutral" and plan.title == "Nothing to do", plan.summary
    assert actions(ssh_target.calls()) == done
    assert_clean_end_state(ssh_target)


async def test_a_connection_cut_three_times_in_one_step_fails_clearly(engine, ssh_target):
    """More cuts than reconnects: the step fails, naming the step and the server."""
    config = load_course(course_files(ssh_target), "octo-org", "physics101")
    lines: list[str] = []
    cuts = 0

    async def progress(line: str) -> None:
        nonlocal cuts
        lines.append(line)
        # Each new try of the apt step meets a cut again.
        if line.startswith("step apt:") or (
            "reconnecting and running step apt" in line and cuts < 3
        ):
            ssh_target.cut_next("apt-get")
            cuts += 1

    first = await operations.deploy(engine, COURSE, config, mode="apply", progress=progress)

    assert first.conclusion == "failure"
    assert first.title == "Step apt failed"
    assert f"lost the connection to {ssh_target.host}:{ssh_target.port} 3 times" in first.summary
    assert ssh_target.canary.intact()

    again = await operations.deploy(engine, COURSE, config, mode="apply", progress=noop)
    assert again.conclusion == "success", again.summary
    assert again.steps[0].step.name == "apt", "only what was left is done"
    assert_clean_end_state(ssh_target)


async def test_a_step_failing_on_the_server_stops_the_deploy_and_a_rerun_finishes(
    engine, ssh_target
):
    config = load_course(course_files(ssh_target), "octo-org", "physics101")
    ssh_target.fail_next("conda", "CondaHTTPError: HTTP 000 CONNECTION FAILED")

    first = await operations.deploy(engine, COURSE, config, mode="apply", progress=noop)
    assert first.conclusion == "failure" and first.title == "Step conda failed"
    assert "CondaHTTPError" in first.summary

    again = await operations.deploy(engine, COURSE, config, mode="apply", progress=noop)
    assert again.conclusion == "success", again.summary
    assert "tljh-install" not in [s.step.name for s in again.steps]
    assert_clean_end_state(ssh_target)
