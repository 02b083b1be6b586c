"""What a stranger's pull request and a hostile SSH answer cost the service.

1. A fork's pull request: the service in-process against the spec-checked fake GitHub and
   the loopback sshd, a course deployed once, then a pull request from a fork whose
   configuration names another SSH server (a loopback port that counts connections).
   Prints the plan's wall time (delivery to concluded check run), its GitHub API
   requests, and its SSH connections and commands; beside it, in the same run, the plan
   computed the way it was before (observing the server over SSH: the engine's
   ``deploy(mode="plan")``), and the ratio.
2. Memory held while reading a large SSH answer from the real loopback sshd: each case in a
   fresh process, RSS high-water mark minus RSS once connected. Ours (the capped reader of
   ``SSHPool.run_script``) on a 1 GB and a 150 MB answer; beside it, asyncssh's own
   ``connection.run`` (how the service read before) on the 150 MB answer.

    .venv/bin/python bench/trust.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _service
import github_requests as gh

from bot.app import make_app
from bot.services import SERVICES
from bot.settings import load_settings
from deploy import operations
from deploy.course.config import load_course
from tests.fakes.github import FakeGitHub
from tests.plugins.classroom import ssh_course_files
from tests.plugins.service import WEBHOOK_SECRET, signed_headers

SIZES = {"1 GB": 10**9, "150 MB": 150 * 10**6}


class CountingPort:
    """A loopback port that counts connections and closes them: the attacker's host."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0

    async def start(self) -> None:
        async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]


def fork_pull_request(github: FakeGitHub, sha: str, number: int) -> dict:
    payload = gh.example("pull_request", "opened")
    pr = payload["pull_request"]
    payload["number"] = number
    payload["pull_request"] = {
        **pr,
        "number": number,
        "head": {**pr["head"], "sha": sha, "repo": {**pr["head"]["repo"], "full_name": "m/fork"}},
        "base": {**pr["base"], "repo": {**pr["base"]["repo"], "full_name": gh.COURSE}},
    }
    payload.update(repository=gh.repository(payload), installation={"id": gh.INSTALLATION})
    return payload


async def pull_request_plans(repeat: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        [target] = _service.start_ssh_targets(base)
        github = FakeGitHub()
        github.add_installation(gh.INSTALLATION, "octo-org")
        github.add_repository(
            gh.COURSE,
            ssh_course_files(target),
            installation_id=gh.INSTALLATION,
            collaborators={"alice": "admin"},
        )
        await github.start()
        data = base / "data"
        data.mkdir(mode=0o700)
        (data / "ssh_ed25519").write_bytes(target.client_key.export_private_key("openssh"))
        (data / "ssh_ed25519").chmod(0o600)
        settings = load_settings(
            {
                "BOT_DATA_DIR": str(data),
                "GITHUB_APP_ID": str(github.app.id),
                "GITHUB_PRIVATE_KEY": github.app.private_key_pem,
                "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "GITHUB_API_URL": github.url,
                "GITHUB_URL": github.url,
            },
            env_file=base / ".env",
        )
        client = TestClient(TestServer(make_app(settings, monitoring=False)))
        await client.start_server()
        services = client.server.app[SERVICES]
        services.app_slug = github.app.slug
        attacker = CountingPort()
        await attacker.start()
        ours, before_way, requests = [], [], []
        ssh_used = {"connections_opened": 0, "commands_run": 0}
        try:
            push = gh.example("push")
            push.update(
                ref="refs/heads/main",
                deleted=False,
                repository=gh.repository(push),
                installation={"id": gh.INSTALLATION},
                after=github.repositories[gh.COURSE].branches["main"],
            )
            await gh.counted(github, client, "push", push)  # the course deployed once
            engine = services.engine
            for index in range(repeat):
                files = ssh_course_files(target, apt=f"graphviz\njq\nzip{index}\n")
                config = files[".github/classroom.yml"].decode()
                files[".github/classroom.yml"] = config.replace(
                    f"port: {target.port}", f"port: {attacker.port}"
                ).encode()
                sha = github.put_commit(gh.COURSE, files)
                counters = engine.ssh.counters()
                before = len(github.requests)
                started = time.perf_counter()
                body = json.dumps(fork_pull_request(github, sha, 100 + index)).encode()
                headers = signed_headers(body, "pull_request", str(uuid.uuid4()))
                assert (await client.post("/webhook", data=body, headers=headers)).status == 202
                await gh.settle(client)
                ours.append(time.perf_counter() - started)
                requests.append(
                    [r.operation_id for r in github.requests[before:] if r.operation_id]
                )
                after = engine.ssh.counters()
                for key in ssh_used:
                    ssh_used[key] += after[key] - counters[key]
                # Before: the same plan observing the server over SSH (the course's own
                # server here; the fork's would have been the attacker's), a fresh pool.
                await engine.ssh.close_all()
                own = load_course(ssh_course_files(target, apt="graphviz\njq\n"), "o", "r")
                counters = engine.ssh.counters()
                started = time.perf_counter()
                result = await operations.deploy(
                    engine, gh.COURSE, own, mode="plan", progress=_quiet
                )
                before_way.append(time.perf_counter() - started)
                assert result.conclusion in ("success", "neutral"), result.summary
                after = engine.ssh.counters()
                old_ssh = {k: after[k] - counters[k] for k in ssh_used}
        finally:
            await client.close()
            await github.close()
            attacker.server.close()
            target.stop()
    return {
        "ours_ms": statistics.median(ours) * 1000,
        "before_ms": statistics.median(before_way) * 1000,
        "requests": requests[-1],
        "ssh": ssh_used,
        "attacker_connections": attacker.connections,
        "before_ssh": old_ssh,
    }


async def _quiet(_line: str) -> None:
    return None


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


async def read_once(way: str, size: int, host: str, port: int, key: str) -> dict:
    """In a fresh process: RSS growth while reading ``size`` bytes of one SSH answer."""
    import asyncssh

    from deploy.ssh import OutputTooLarge, SSHPool, Target

    script = f"head -c {size} /dev/zero"
    client_key = asyncssh.read_private_key(key)
    started = time.perf_counter()
    if way == "ours":
        pool = SSHPool()
        target = Target(host=host, port=port, user="root", client_key=client_key)
        await pool.run_script(target, "true")
        baseline = rss_kib("VmRSS")
        started = time.perf_counter()
        try:
            await pool.run_script(target, script)
            outcome = "read in full"
        except OutputTooLarge as exc:
            outcome = str(exc)
        await pool.close_all()
    else:
        async with asyncssh.connect(
            host, port=port, username="root", client_keys=[client_key], known_hosts=None
        ) as connection:
            await connection.run("true")
            baseline = rss_kib("VmRSS")
            started = time.perf_counter()
            result = await connection.run(
                "bash -s", input=script + "\n", encoding="utf-8", errors="replace"
            )
            outcome = f"read in full: {len(result.stdout or ''):,} characters"
    return {
        "growth_mib": (rss_kib("VmHWM") - baseline) / 1024,
        "seconds": time.perf_counter() - started,
        "outcome": outcome,
    }


def large_answers() -> list[tuple[str, str, dict]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        [target] = _service.start_ssh_targets(base)
        key = base / "client.key"
        key.write_bytes(target.client_key.export_private_key("openssh"))
        try:
            for way, label in (("ours", "1 GB"), ("ours", "150 MB"), ("asyncssh", "150 MB")):
                args = [way, str(SIZES[label]), target.host, str(target.port), str(key)]
                out = subprocess.run(
                    [sys.executable, __file__, "--child", *args],
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=600,
                ).stdout
                rows.append((way, label, json.loads(out.strip().splitlines()[-1])))
        finally:
            target.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="pull requests (median time)")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        way, size, host, port, key = args.child
        print(json.dumps(asyncio.run(read_once(way, int(size), host, int(port), key))))
        return 0
    plans = asyncio.run(pull_request_plans(args.repeat))
    print("A fork's pull request naming another SSH server:")
    print(
        f"  ours (config alone): {plans['ours_ms']:.0f} ms delivery to concluded run; "
        f"SSH {plans['ssh']}; connections to the named server: {plans['attacker_connections']}"
    )
    counts: dict[str, int] = {}
    for operation in plans["requests"]:
        counts[operation] = counts.get(operation, 0) + 1
    print(f"  GitHub requests: {len(plans['requests'])}: {counts}")
    print(
        f"  before (observing over SSH): {plans['before_ms']:.0f} ms for the plan alone; "
        f"SSH {plans['before_ssh']}; ratio ours/before "
        f"{plans['ours_ms'] / plans['before_ms']:.2f}"
    )
    print("Reading one large SSH answer (RSS high-water mark above RSS once connected):")
    rows = large_answers()
    for way, label, row in rows:
        print(
            f"  {way:<9} {label:>6}: +{row['growth_mib']:.0f} MiB in {row['seconds']:.2f} s"
            f" ({row['outcome']})"
        )
    ours_150 = next(r for w, label, r in rows if w == "ours" and label == "150 MB")
    theirs = next(r for w, label, r in rows if w == "asyncssh")
    print(f"  150 MB ratio asyncssh/ours: {theirs['growth_mib'] / ours_150['growth_mib']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
