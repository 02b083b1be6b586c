"""SSH faults: the connection cut at every step of a fresh deploy, by each program the step
runs. The deploy completes (steps are idempotent and run again on a new connection) or
fails saying so; a second deploy leaves the server as the course wants it, with nothing
left to plan, the students' /home untouched, and no admin, domain or package twice."""

from __future__ import annotations

import collections

import pytest

from bot.store import Store
from deploy import operations
from deploy.config import load_course
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
        self.armed = False
        if step == "observe":
            self.arm()

    def arm(self) -> None:
        self.target.cut_next(self.program)
        self.armed = True

    async def progress(self, line: str) -> None:
        self.lines.append(line)
        if not self.armed and line.startswith(f"step {self.step}:"):
            self.arm()


def cut_happened(target, program: str) -> bool:
    # The stand-in removes its one-shot marker when it honours it.
    return not (target.sandbox / "control" / f"{program}.cut").exists()


async def noop(_line: str) -> None:
    return None


def assert_converged_state(target) -> None:
    config = target.state("tljh-config")
    assert isinstance(config, dict)
    admins = config["users"]["admin"]
    assert sorted(admins) == ["alice", "carol"], admins
    domains = config["https"]["letsencrypt"]["domains"]
    assert domains == [HOSTNAME], domains
    assert config["https"]["enabled"] is True
    assert config["auth"]["type"].endswith("NativeAuthenticator")
    assert "graphviz" in target.state("apt")
    assert "numpy" in {p["name"] for p in target.state("conda")}
    assert "nbgitpuller" in target.state("pip-user")
    assert target.state("services")["jupyterhub"] == "active"
    assert target.canary.intact(), "a student's file in /home changed"


def effective_installs(target) -> collections.Counter:
    """How many times each apt package was asked to install by a call that ran to the end.

    A call the connection was cut in was stopped before it acted (the stand-in cuts first),
    so only the calls not followed by a cut marker count; they are the ones whose effect
    would be doubled.
    """
    counter: collections.Counter = collections.Counter()
    for call in target.calls("apt-get"):
        argv = call.get("argv", [])
        if "install" in argv:
            counter.update(a for a in argv if not a.startswith("-") and a != "install")
    return counter


@pytest.mark.parametrize(("step", "program"), STEP_PROGRAMS, ids=lambda v: v)
async def test_a_cut_connection_at_each_step_converges(engine, ssh_target, step, program):
    config = load_course(course_files(ssh_target), "octo-org", "physics101")
    cutter = CutAtStep(ssh_target, step, program)

    first = await operations.deploy(engine, COURSE, config, mode="apply", progress=cutter.progress)

    assert cutter.armed, f"step {step} ran"
    assert cut_happened(ssh_target, program), f"{program} was called in step {step}"
    if first.conclusion == "success":
        # The step ran again on a new connection, and said so.
        assert any("reconnecting and running step" in line for line in cutter.lines) or (
            step == "observe"
        )
    else:
        assert first.conclusion == "failure"
        assert "lost the connection" in first.summary or "connection" in first.summary
    assert ssh_target.canary.intact()

    second = await operations.deploy(engine, COURSE, config, mode="apply", progress=noop)
    assert second.conclusion in ("success", "neutral"), second.summary
    plan = await operations.deploy(engine, COURSE, config, mode="plan", progress=noop)
    assert plan.conclusion == "neutral" and plan.title == "Nothing to do", plan.summary

    assert_converged_state(ssh_target)
    bootstraps = ssh_target.calls("bootstrap")
    # TLJH's installer ran to the end once; a second, cut run of it never started work.
    assert len(bootstraps) <= 2
    installs = effective_installs(ssh_target)
    assert installs["graphviz"] <= (2 if (step, program) == ("apt", "apt-get") else 1)


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
    assert_converged_state(ssh_target)


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
    assert_converged_state(ssh_target)
