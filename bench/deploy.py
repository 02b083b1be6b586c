"""Deploy round trips against the loopback SSH target: ours beside the template's way.

For a no-op deploy and for a one-package change it prints SSH connections opened, remote
commands run, commands that changed the server, and wall time. The template this product
replaces opened one SSH connection per command and re-ran every install on each push; its
way is replayed over the same target (one connection per command) for the same change.

    .venv/bin/python bench/deploy.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncssh

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _service

from bot.store import Store
from deploy import operations
from deploy.course.config import load_course
from deploy.keys import ServiceKey
from deploy.ssh import SSHPool
from tests.sshtarget.target import SSHTarget

APT = ["graphviz", "jq"]
EXTRA = ["ffmpeg", "htop", "tree", "zip", "unzip", "rsync", "tmux", "nano", "less", "bc"]
PIP = ["numpy==1.26.4", "pandas==2.2.2", "matplotlib==3.8.4"]
READ_ONLY = {("tljh-config", "show"), ("pip-hub", "show"), ("pip-user", "list"), ("conda", "list")}


def files(target: SSHTarget, apt: list[str]) -> dict[str, bytes]:
    config = (
        f"server:\n  provider: ssh\n  host: {target.host}\n  port: {target.port}\n"
        "hub:\n  admins: [alice]\n  limits: {memory: 1G, cpu: 1}\n"
    )
    return {
        ".github/classroom.yml": config.encode(),
        "apt.txt": "\n".join(apt).encode() + b"\n",
        "requirements.txt": "\n".join(PIP).encode() + b"\n",
    }


def changing(calls: list[dict]) -> list[dict]:
    found = []
    for call in calls:
        program, argv = call["program"], call.get("argv", [])
        if program in ("dpkg-query", "curl") or (program, (argv or [""])[0]) in READ_ONLY:
            continue
        if program == "systemctl" and argv[:1] == ["is-active"]:
            continue
        found.append(call)
    return found


@dataclass
class Measure:
    connections: int
    commands: int
    changing: int
    installs: int
    seconds: float


async def ours(engine: operations.Engine, target: SSHTarget, apt: list[str]) -> Measure:
    config = load_course(files(target, apt), "bench", "course")
    before_calls = len(target.calls())
    before = engine.ssh.counters()

    async def quiet(_line: str) -> None:
        return None

    started = time.perf_counter()
    result = await operations.deploy(engine, "bench/course", config, mode="apply", progress=quiet)
    seconds = time.perf_counter() - started
    if result.conclusion not in ("success", "neutral"):
        raise SystemExit(f"deploy failed: {result.summary}")
    after = engine.ssh.counters()
    calls = target.calls()[before_calls:]
    return Measure(
        after["connections_opened"] - before["connections_opened"],
        after["commands_run"] - before["commands_run"],
        len(changing(calls)),
        sum(1 for c in calls if c["program"] == "apt-get" and "install" in c.get("argv", [])),
        seconds,
    )


def template_commands(apt: list[str]) -> list[str]:
    """What the template's workflow ran on every push, one SSH connection each."""
    return [
        "apt-get update",
        "DEBIAN_FRONTEND=noninteractive apt-get install -y " + " ".join(apt),
        "/opt/tljh/user/bin/pip install " + " ".join(shlex.quote(p) for p in PIP),
        "/opt/tljh/hub/bin/tljh-config set limits.memory 1G",
        "/opt/tljh/hub/bin/tljh-config set limits.cpu 1",
        "/opt/tljh/hub/bin/tljh-config add-item users.admin alice",
        "/opt/tljh/hub/bin/tljh-config reload hub",
    ]


async def template(target: SSHTarget, apt: list[str]) -> Measure:
    before_calls = len(target.calls())
    started = time.perf_counter()
    commands = template_commands(apt)
    for command in commands:
        async with asyncssh.connect(
            target.host,
            port=target.port,
            username="root",
            client_keys=[target.client_key],
            known_hosts=None,
        ) as connection:
            await connection.run(command, check=True)
    seconds = time.perf_counter() - started
    calls = target.calls()[before_calls:]
    return Measure(
        len(commands),
        len(commands),
        len(changing(calls)),
        sum(1 for c in calls if c["program"] == "apt-get" and "install" in c.get("argv", [])),
        seconds,
    )


def row(name: str, measures: list[Measure]) -> str:
    m = measures[-1]
    wall = statistics.median(x.seconds for x in measures) * 1000
    return (
        f"{name:<34} {m.connections:>11} {m.commands:>8} {m.changing:>9} {m.installs:>12}"
        f" {wall:>9.0f}"
    )


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each case (median time)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        # The template's way runs on a server of its own: it adds admins again on every
        # push, which would otherwise show up as work in our next plan.
        target, old = _service.start_ssh_targets(base, ("target", "template"))
        client_key = target.client_key
        store = await Store.open(base / "data")
        engine = operations.Engine(
            records=store,
            ssh=SSHPool(),
            service_key=ServiceKey(client_key, "", "", "", base / "key"),
        )
        try:
            await ours(engine, target, APT)  # the fresh install, not measured
            await ours(engine, old, APT)  # the template's server starts from the same state
            apt = list(APT)
            noop, change, old_noop, old_change = [], [], [], []
            for index in range(min(args.repeat, len(EXTRA))):
                await engine.ssh.close_all()  # each push starts without a pooled connection
                noop.append(await ours(engine, target, apt))
                old_noop.append(await template(old, apt))
                apt.append(EXTRA[index])  # one package more than the last push
                await engine.ssh.close_all()
                change.append(await ours(engine, target, apt))
                old_change.append(await template(old, apt))
        finally:
            await engine.close()
            await store.close()
            target.stop()
            old.stop()
    print(
        "case                               connections commands  changing  apt installs   wall ms"
    )
    print(row("ours: no-op push", noop))
    print(row("ours: one package added", change))
    print(row("template: no-op push", old_noop))
    print(row("template: one package added", old_change))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
