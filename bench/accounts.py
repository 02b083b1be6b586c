"""Approving 100 waiting students: the console's way beside NativeAuthenticator's page.

A real JupyterHub (the tests' ``.venv-hub``) keeps its database where the loopback SSH
target's commands see ``/opt/tljh/state/jupyterhub.sqlite``; 100 waiting sign-ups are
written into it. Ours: ``deploy.host.accounts.approve`` with all 100 names (what the console's
Approve does). Theirs: an admin's browser session opening ``/hub/authorize/NAME`` once per
student, as NativeAuthenticator's page does. Prints SSH connections, remote commands, HTTP
requests and wall time, each checked by reading every row back.

    .venv/bin/python bench/accounts.py [--students 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _service

from deploy.host import accounts
from deploy.ssh import SSHPool, Target
from tests.plugins.real_hub import prepare_hub_python
from tests.support.hub import Browser, HubSettings, RealHub

ADMIN_PASSWORD = "bench-admin-password-77"


def reset_waiting(database: Path, names: list[str]) -> None:
    with sqlite3.connect(database) as db:
        db.execute("DELETE FROM users_info WHERE username LIKE 'student-%'")
        db.executemany(
            "INSERT INTO users_info (username, password, is_authorized) VALUES (?, ?, 0)",
            [(name, accounts.unusable_password_hash().encode()) for name in names],
        )


def approved(database: Path, names: list[str]) -> int:
    with sqlite3.connect(database) as db:
        rows = dict(db.execute("SELECT username, is_authorized FROM users_info"))
    return sum(1 for name in names if rows.get(name))


async def ours(pool: SSHPool, target: Target, names: list[str]) -> tuple[int, int, float]:
    before = pool.counters()
    started = time.perf_counter()
    outcome = await accounts.approve(pool, target, names)
    seconds = time.perf_counter() - started
    assert len(outcome.done) == len(names), outcome
    after = pool.counters()
    return (
        after["connections_opened"] - before["connections_opened"],
        after["commands_run"] - before["commands_run"],
        seconds,
    )


def theirs(admin: Browser, names: list[str]) -> tuple[int, float]:
    started = time.perf_counter()
    requests_made = 0
    for name in names:
        answer = admin.session.get(
            f"{admin.hub.url}/hub/authorize/{name}", allow_redirects=False, timeout=30
        )
        requests_made += 1
        assert answer.status_code in (200, 302), answer.status_code
    return requests_made, time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    names = [f"student-{i:03d}" for i in range(args.students)]
    with tempfile.TemporaryDirectory(prefix="bench-accounts-") as workdir:
        base = Path(workdir)
        (ssh,) = _service.start_ssh_targets(base)
        prepare_hub_python(ssh)
        tljh_root = ssh.sandbox / "opt" / "tljh"
        hub = RealHub(base / "hub", tljh_root / "state" / "jupyterhub.sqlite")
        pool = SSHPool()
        try:
            hub.start(HubSettings(enable_signup=True, admins=("alice",)))
            admin = Browser(hub)
            admin.signup("alice", ADMIN_PASSWORD)  # an admin name: authorized at once
            assert admin.login("alice", ADMIN_PASSWORD)
            target = Target(ssh.host, ssh.port, pinned_key=ssh.host_key, client_key=ssh.client_key)
            await accounts.list_accounts(pool, target)  # the connection, opened once
            ours_runs, theirs_runs = [], []
            for _ in range(args.repeat):
                reset_waiting(hub.database, names)
                ours_runs.append(await ours(pool, target, names))
                assert approved(hub.database, names) == len(names)
                reset_waiting(hub.database, names)
                theirs_runs.append(theirs(admin, names))
                assert approved(hub.database, names) == len(names)
        finally:
            await pool.close_all()
            hub.stop()
            ssh.stop()
    connections, commands = ours_runs[-1][0], ours_runs[-1][1]
    ours_s = statistics.median(r[2] for r in ours_runs)
    theirs_requests = theirs_runs[-1][0]
    theirs_s = statistics.median(r[1] for r in theirs_runs)
    print(f"approving {len(names)} waiting students, median of {args.repeat}:")
    print(
        f"  console (deploy.host.accounts.approve): {commands} SSH round trip(s), "
        f"{connections} new connection(s), {ours_s * 1000:.0f} ms"
    )
    print(
        f"  NativeAuthenticator /hub/authorize: {theirs_requests} HTTP requests, "
        f"{theirs_s * 1000:.0f} ms"
    )
    print(f"  ratio (theirs/ours): {theirs_s / ours_s:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
