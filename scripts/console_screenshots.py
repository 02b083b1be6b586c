"""Take the console's screenshots in docs/ again, with a plausible course.

    .venv/bin/python scripts/console_screenshots.py [OUTPUT_FOLDER]

It runs the service as the tests do, against the fake GitHub and the fake DigitalOcean
and a course on the loopback SSH server (the tests' fixtures, loaded from
``tests/conftest.py``), deploys the course with a push, seeds what a term of use leaves
behind (sign-ups waiting and approved students in the hub's database, a gradebook,
backups, earlier jobs), presses *Restart hub* in headless Chromium and writes
``console-landing.png``, ``console-courses.png``, ``console-course.png``,
``console-accounts.png``, ``console-storage.png``, ``console-assignments.png`` and
``console-jobs.png`` (default folder: ``docs/``). It asserts what each shot must show, so
a section that stops rendering fails here rather than in a picture.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import bcrypt
import pytest

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = Path(os.environ.get("CONSOLE_SCREENSHOTS_DIR", ROOT / "docs"))
WIDTH = 1100

WAITING = [
    ("maria.gonzalez", "maria.gonzalez@student.example.edu"),
    ("wei.zhang", "wei.zhang@student.example.edu"),
    ("aisha.bello", "a.bello@student.example.edu"),
]
APPROVED = [
    ("liam.oconnor", "2026-12-05 21:14:08"),
    ("priya.nair", "2026-12-06 01:02:51"),
    ("tomas.novak", "2026-12-04 16:40:12"),
    ("hannah.schmidt", "2026-12-05 09:27:33"),
    ("kwame.mensah", None),
]
ASSIGNMENTS = {
    "course_id": "physics101",
    "names": ["hw1-kinematics", "hw2-newtons-laws", "lab1-pendulum"],
    "due": {"hw1-kinematics": "2026-11-14T23:59:00Z", "hw2-newtons-laws": "2026-11-28T23:59:00Z"},
}
# assignment, student, submitted (UTC), score, out of
SUBMISSIONS = [
    ("hw1-kinematics", "liam.oconnor", "2026-11-13 20:41:07", 9.0, 10),
    ("hw1-kinematics", "priya.nair", "2026-11-14 22:05:44", 10.0, 10),
    ("hw1-kinematics", "tomas.novak", "2026-11-15 08:12:30", 7.5, 10),
    ("hw1-kinematics", "hannah.schmidt", "2026-11-12 17:55:01", 8.0, 10),
    ("hw2-newtons-laws", "liam.oconnor", "2026-11-27 23:10:19", 14.0, 15),
    ("hw2-newtons-laws", "priya.nair", "2026-11-26 19:48:02", 15.0, 15),
    ("hw2-newtons-laws", "hannah.schmidt", "2026-11-28 21:33:47", None, 15),
]
EARLIER_JOBS = [
    # (operation, user, source, conclusion, title, log)
    ("approve", "alice", "console", "success", "Approved 2 students",
     "approved 2, already 0"),
    ("collect", "alice", "comment", "success", "Collected hw2-newtons-laws",
     "3 submissions collected, 2 autograded"),
    ("backup", None, "schedule", "success", "Snapshot physics101-hub-home-20261206-020000",
     "snapshot taken of volume physics101-hub-home\n1 older snapshot deleted (keep: 7)"),
]  # fmt: skip


def main() -> int:
    if len(sys.argv) > 1:
        os.environ["CONSOLE_SCREENSHOTS_DIR"] = str(Path(sys.argv[1]).resolve())
    output = Path(os.environ.get("CONSOLE_SCREENSHOTS_DIR", ROOT / "docs"))
    output.mkdir(parents=True, exist_ok=True)
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    return pytest.main(
        [
            __file__,
            "--rootdir",
            str(ROOT),
            "-p",
            "tests.conftest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-n",
            "0",
        ]
    )


def hub_database(classroom: Any) -> Path:
    return classroom.target.sandbox / "opt" / "tljh" / "state" / "jupyterhub.sqlite"


def seed_hub_accounts(classroom: Any) -> None:
    """Sign-ups as NativeAuthenticator keeps them, and JupyterHub's last activity."""
    hashed = bcrypt.hashpw(b"their-own-password", bcrypt.gensalt(4))
    with sqlite3.connect(hub_database(classroom)) as db:
        db.executemany(
            "INSERT INTO users_info (username, password, is_authorized, email) VALUES (?,?,?,?)",
            [(name, hashed, 0, email) for name, email in WAITING]
            + [(name, hashed, 1, f"{name}@student.example.edu") for name, _ in APPROVED],
        )
        db.execute("CREATE TABLE IF NOT EXISTS users (name TEXT, last_activity TEXT)")
        db.executemany(
            "INSERT INTO users (name, last_activity) VALUES (?, ?)",
            [(name, active) for name, active in APPROVED if active],
        )


def seed_gradebook(classroom: Any) -> None:
    """The few tables of nbgrader's gradebook.db the console's read-only query uses."""
    course = classroom.target.sandbox / "nbgrader" / ASSIGNMENTS["course_id"]
    course.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(course / "gradebook.db") as db:
        db.executescript(
            "CREATE TABLE assignment (id INTEGER PRIMARY KEY, name TEXT);"
            "CREATE TABLE notebook (id INTEGER PRIMARY KEY, assignment_id INTEGER);"
            "CREATE TABLE base_cell (id INTEGER PRIMARY KEY, notebook_id INTEGER);"
            "CREATE TABLE grade_cells (id INTEGER PRIMARY KEY, max_score REAL);"
            "CREATE TABLE submitted_assignment (id INTEGER PRIMARY KEY, assignment_id INTEGER,"
            " student_id TEXT, timestamp TEXT);"
            "CREATE TABLE submitted_notebook (id INTEGER PRIMARY KEY, assignment_id INTEGER);"
            "CREATE TABLE grade (id INTEGER PRIMARY KEY, notebook_id INTEGER,"
            " manual_score REAL, auto_score REAL, extra_credit REAL);"
        )
        names = {name: index for index, name in enumerate(ASSIGNMENTS["names"], 1)}
        for name, index in names.items():
            db.execute("INSERT INTO assignment VALUES (?, ?)", (index, name))
            db.execute("INSERT INTO notebook VALUES (?, ?)", (index, index))
            db.execute("INSERT INTO base_cell VALUES (?, ?)", (index, index))
            out_of = next((s[4] for s in SUBMISSIONS if s[0] == name), 10)
            db.execute("INSERT INTO grade_cells VALUES (?, ?)", (index, out_of))
        for number, (name, student, at, score, _) in enumerate(SUBMISSIONS, 1):
            db.execute(
                "INSERT INTO submitted_assignment VALUES (?, ?, ?, ?)",
                (number, names[name], f"jupyter-{student}", f"{at} UTC"),
            )
            db.execute("INSERT INTO submitted_notebook VALUES (?, ?)", (number, number))
            if score is not None:
                db.execute(
                    "INSERT INTO grade VALUES (?, ?, NULL, ?, NULL)", (number, number, score)
                )


async def seed_course(classroom: Any, do_fake: Any) -> None:
    """The course as a term leaves it: a droplet with its volume, backups, assignments."""
    from bot.backup_schedule import due_key
    from bot.store import NewJob
    from deploy.providers.droplets import DropletDriver
    from tests.plugins.github_fake import COURSE_REPO

    services = classroom.services
    store = services.store
    droplet = do_fake.add_droplet(
        "physics101-hub", region="fra1", size="s-2vcpu-4gb", tags=["littlest-classroom"]
    )
    services.engine.droplets = DropletDriver(do_fake.token, poll_interval=0.01)
    record = await store.get_server(COURSE_REPO)
    # The server stays the loopback one (its accounts and gradebook are read over SSH).
    await store.save_server(
        COURSE_REPO,
        dataclasses.replace(
            record,
            provider="digitalocean",
            droplet_id=droplet.id,
            size=droplet.size,
            region=droplet.region,
        ),
    )
    facts = await store.course_facts(COURSE_REPO)
    await store.save_course_facts(
        COURSE_REPO,
        {
            **facts,
            "hub_url": "https://physics101.classroom.example.edu",
            "assignments": ASSIGNMENTS,
            "backup_every": 86400,
        },
    )
    await store.set_meta(due_key(COURSE_REPO), "2026-12-07T02:00:00+00:00")
    observed, _ = await store.last_observation(COURSE_REPO)
    assert observed is not None
    await store.save_observation(
        COURSE_REPO,
        dataclasses.replace(
            observed,
            home_volume="physics101-hub-home",
            home_on_volume=True,
            disk_used_percent=38.0,
            disk_free_bytes=31 * 2**30,
        ),
    )
    for name, user, source, conclusion, title, log in EARLIER_JOBS:
        payload = {"name": name, "args": [], "user": user, "source": source}
        added = await store.enqueue(NewJob(COURSE_REPO, "command", payload))
        assert added is not None
        await store.finish_job(
            added[0], "done", result={"conclusion": conclusion, "title": title, "log": log}
        )


async def shoot(browser: Any, selector: str, path: Path) -> None:
    """The part of the page ``selector`` shows, as PNG."""
    await shoot_range(browser, selector, selector, path)


async def test_console_screenshots(classroom, example, do_fake, tmp_path) -> None:
    from tests.plugins.classroom import ssh_course_files
    from tests.plugins.github_fake import COURSE_REPO
    from tests.support.chromium import CHROMIUM, Chromium

    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: install Debian's chromium package"
    await classroom.push(example, classroom.commit(ssh_course_files(classroom.target)))
    await classroom.settle()
    seed_hub_accounts(classroom)
    seed_gradebook(classroom)
    await seed_course(classroom, do_fake)
    public = classroom.services.settings.public_url

    async with Chromium(tmp_path / "chromium-profile") as browser:
        await browser.send("Page.enable")
        await browser.send(
            "Emulation.setDeviceMetricsOverride", width=WIDTH, height=760, deviceScaleFactor=1,
            mobile=False,
        )  # fmt: skip
        await browser.open(public + "/")
        await shoot_range(browser, "header", "main", OUTPUT / "console-landing.png")
        await browser.evaluate("document.getElementById('sign-in').click()")
        await browser.wait_for("location.pathname === '/courses'", "signed in")
        await shoot_range(browser, "header", "main", OUTPUT / "console-courses.png")
        await browser.evaluate("document.querySelector('a.course').click()")
        await browser.wait_for(f"location.pathname === '/courses/{COURSE_REPO}'", "the course")
        await browser.evaluate("document.getElementById('run-restart').click()")
        await browser.wait_for(
            "(() => { const row = document.querySelector('#job-table tbody tr[data-job]');"
            " return row.cells[1].textContent === 'restart' && row.dataset.done === 'yes'; })()",
            "the restart job is done",
        )
        await browser.evaluate(
            "document.querySelector('#job-table tbody tr.log details').open = true"
        )
        page = await browser.evaluate("document.body.innerText")
        for shown in (
            "maria.gonzalez",  # waiting
            "priya.nair",  # approved
            "physics101-hub-home",  # storage
            "every day",  # backups
            "hw2-newtons-laws",  # assignments
            "10 / 10",  # a score
            "Approved 2 students",  # an earlier job
            "s-4vcpu-8gb: 4 vCPU, 8.0 GiB, $48.00/month",  # DigitalOcean's sizes
        ):
            assert shown in page, shown
        await shoot_range(browser, "header", "#operations", OUTPUT / "console-course.png")
        await shoot(browser, "#accounts", OUTPUT / "console-accounts.png")
        await shoot(browser, "#storage", OUTPUT / "console-storage.png")
        await shoot(browser, "#assignments", OUTPUT / "console-assignments.png")
        await shoot(browser, "#jobs", OUTPUT / "console-jobs.png")


async def shoot_range(browser: Any, first: str, last: str, path: Path) -> None:
    """From the top of ``first`` to the bottom of ``last``, as PNG."""
    clip = await browser.evaluate(
        f"(() => {{ const a = document.querySelector({first!r}).getBoundingClientRect();"
        f" const b = document.querySelector({last!r}).getBoundingClientRect();"
        f" const top = Math.max(0, a.top + window.scrollY - 12);"
        f" return {{x: 0, y: top, width: {WIDTH},"
        " height: b.bottom + window.scrollY + 12 - top}; })()"
    )
    result = await browser.send(
        "Page.captureScreenshot",
        format="png",
        captureBeyondViewport=True,
        clip={**clip, "scale": 1},
    )
    path.write_bytes(base64.b64decode(result["data"]))


if __name__ == "__main__":
    sys.exit(main())
