"""Time and SSH round trips for ``/collect`` of 100 submissions, with the real nbgrader.

Against the loopback SSH target with the tests' user environment (``.venv-grader``, see
``tests/support/grader.py``): the course's nbgrader setup, ``/release hw1`` (the example
course's assignment, one autograded cell), then 100 submissions put in the exchange's
inbound folder as ``nbgrader submit`` leaves them (one folder per student, owned by the
student's UID, with ``timestamp.txt``; half right, half wrong), then ``/collect hw1``
(collect, then autograde all 100) timed, and a second ``/collect hw1`` (nothing new).

    .venv/bin/python bench/assignments.py [--students 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _service

from deploy import operations
from deploy.course.config import load_course
from deploy.host import assignments
from deploy.keys import ServiceKey
from deploy.model import ServerRecord
from deploy.operations import coursework
from deploy.ssh import SSHPool
from tests.support import grader
from tests.support.engine import MemoryRecords, noop

COURSE = "octo-org/physics101"
HW1 = Path(__file__).resolve().parent.parent / "examples/course/assignments/hw1/hw1.ipynb"


def submission(body: str) -> bytes:
    notebook = json.loads(HW1.read_text())
    for cell in notebook["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            cell["source"] = body
    return json.dumps(notebook).encode()


def submit_all(sandbox: Path, count: int) -> None:
    inbound = sandbox / "nbgrader" / "exchange" / "physics101" / "inbound"
    start = datetime(2027, 2, 1, 12, tzinfo=UTC)
    for number in range(count):
        uid = 3000 + number
        when = (start + timedelta(seconds=number)).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
        folder = inbound / f"jupyter-student{number:03d}+hw1+{when}+r{number:04d}"
        folder.mkdir()
        body = (
            "def square(x):\n    return x * x\n" if number % 2 else "def square(x):\n    return 0\n"
        )
        (folder / "hw1.ipynb").write_bytes(submission(body))
        (folder / "timestamp.txt").write_text(when)
        for path in (folder, folder / "hw1.ipynb", folder / "timestamp.txt"):
            os.chown(path, uid, uid)


async def run(base: Path, students: int) -> dict[str, object]:
    [target] = _service.start_ssh_targets(base, ("target",))
    try:
        grader.install_user_environment(target.sandbox)
        # No TLJH installer ran here: its pip stand-in (nbgrader is there already).
        pip = target.sandbox / "opt/tljh/user/bin/pip"
        pip.write_text("#!/bin/sh\nexit 0\n")
        pip.chmod(0o755)
        config = load_course(
            {
                ".github/classroom.yml": (
                    f"server: {{provider: ssh, host: {target.host}, port: {target.port}}}\n"
                    "assignments: {course_id: physics101}\n"
                ).encode()
            },
            "octo-org",
            "physics101",
        )
        records = MemoryRecords()
        records.records[COURSE] = ServerRecord(
            "ssh", target.host, target.port, host_key=target.host_key
        )
        ssh = SSHPool()
        engine = operations.Engine(
            records=records,
            ssh=ssh,
            service_key=ServiceKey(target.client_key, "", "", "", base / "key"),
        )
        spec = config.assignments
        assert spec is not None
        setup = await operations.server_target(engine, COURSE, config, records.records[COURSE])
        status, _, _ = await ssh.run_script(
            setup, assignments.setup_script(spec, on_volume=False), 600
        )
        assert status == 0
        files = {"assignments/hw1/hw1.ipynb": HW1.read_bytes()}
        released = await coursework.release(engine, COURSE, config, "hw1", files, progress=noop)
        assert released.conclusion == "success", released.summary
        submit_all(target.sandbox, students)
        before = ssh.commands_run
        started = time.monotonic()
        collected = await coursework.collect(engine, COURSE, config, "hw1", progress=noop)
        seconds = time.monotonic() - started
        trips = ssh.commands_run - before
        assert collected.details.get("graded") == students, collected.summary
        before = ssh.commands_run
        started = time.monotonic()
        again = await coursework.collect(engine, COURSE, config, "hw1", progress=noop)
        again_seconds = time.monotonic() - started
        read_started = time.monotonic()
        book = await coursework.gradebook(engine, COURSE, "physics101")
        read_seconds = time.monotonic() - read_started
        await engine.close()
        return {
            "students": students,
            "collect_seconds": round(seconds, 1),
            "collect_round_trips": trips,
            "per_submission_seconds": round(seconds / students, 2),
            "second_collect_seconds": round(again_seconds, 1),
            "second_collect_round_trips": ssh.commands_run - before - 1,
            "second_collect_summary": again.summary.splitlines()[0],
            "gradebook_rows": len(book),
            "gradebook_read_seconds": round(read_seconds, 2),
        }
    finally:
        target.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=100)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-assignments-"))
    try:
        figures = asyncio.run(run(base, args.students))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
