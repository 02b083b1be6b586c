"""A real nbgrader in the SSH target's user environment, and students who use it.

``install_user_environment`` makes the sandbox's ``/opt/tljh/user`` a Python prefix as
TLJH's user environment is one: ``bin/python3`` (the system's python3, which every
account may run) with a ``pyvenv.cfg``, so ``sys.prefix`` is ``/opt/tljh/user`` and
nbgrader finds ``/opt/tljh/user/etc/jupyter/nbgrader_config.py`` there; its packages
are those of ``.venv-grader`` (``tests/grader/requirements.txt``, made by
``scripts/test``), reached through a ``.pth`` file, and its console scripts (nbgrader,
alembic, jupyter…) are ``.venv-grader``'s with the prefix's python.

``Student`` runs nbgrader's own student commands (``fetch_assignment``, ``submit``,
``fetch_feedback``) over SSH as a Linux user of its own: in the command's mount
namespace a ``passwd`` and ``group`` naming the students are bound over the machine's,
and ``setpriv`` drops to the student's UID, so nbgrader sees the user TLJH would have
made (``jupyter-NAME``) and the exchange's permissions apply as on a hub.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import asyncssh

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-grader"
USER_PREFIX = "/opt/tljh/user"
# Where students' commands see the packages: the venv bound there (a path they can reach).
STUDENT_SITE = f"{USER_PREFIX}/test-site-packages"
SKIPPED_SCRIPTS = ("python", "pip", "activate", "Activate")


def _venv_site() -> Path:
    found = sorted((VENV / "lib").glob("python3*/site-packages"))
    if not found:
        raise RuntimeError(f"{VENV} has no site-packages: run scripts/test to make it")
    return found[0]


def install_user_environment(sandbox: Path) -> None:
    """Make the sandbox's /opt/tljh/user a prefix whose nbgrader is the real one."""
    lines = (VENV / "pyvenv.cfg").read_text().splitlines()
    config = dict(line.split(" = ", 1) for line in lines if " = " in line)
    home = Path(config["home"])
    site = _venv_site()
    prefix = sandbox / USER_PREFIX.lstrip("/")
    (prefix / "bin").mkdir(parents=True, exist_ok=True)
    (prefix / "pyvenv.cfg").write_text(
        f"home = {home}\ninclude-system-site-packages = false\nversion = {config['version']}\n"
    )
    for name in ("python3", "python", site.parent.name):
        link = prefix / "bin" / name
        if not link.exists():
            link.symlink_to(home / "python3")
    # The venv's packages and shared data (nbconvert's templates: feedback is made from
    # them) are lent to the server at paths everyone there reaches, whatever the path of
    # this checkout (the server covers this machine's /tmp).
    lent = {site: STUDENT_SITE, VENV / "share": f"{USER_PREFIX}/share"}
    for inside in lent.values():
        (sandbox / inside.lstrip("/")).mkdir(parents=True, exist_ok=True)
    (sandbox / "lent-paths.list").write_text(
        "".join(f"{source} {inside}\n" for source, inside in lent.items())
    )
    own_site = prefix / "lib" / site.parent.name / "site-packages"
    own_site.mkdir(parents=True, exist_ok=True)
    (own_site / "littlest-classroom-tests.pth").write_text(
        f"import site; site.addsitedir({STUDENT_SITE!r})\n"
    )
    python = f"#!{USER_PREFIX}/bin/python3\n"
    for script in (VENV / "bin").iterdir():
        if script.name.startswith(SKIPPED_SCRIPTS) or not script.is_file():
            continue
        text = script.read_text(errors="replace")
        if not text.startswith("#!"):
            continue
        target = prefix / "bin" / script.name
        target.write_text(python + text.split("\n", 1)[1])
        target.chmod(0o755)
    # Students reach /srv (the sandbox) and /home, as on a server.
    sandbox.chmod(0o755)


@dataclass(frozen=True)
class Student:
    """A hub user ``name`` with the Linux account TLJH makes, ``jupyter-NAME``."""

    name: str
    uid: int

    @property
    def linux(self) -> str:
        return f"jupyter-{self.name}"

    @property
    def home(self) -> str:
        return f"/home/{self.linux}"


def add_students(sandbox: Path, students: list[Student]) -> None:
    """Their homes (their own, mode 700) and a passwd and group naming them."""
    etc = sandbox / "grader-etc"
    etc.mkdir(exist_ok=True)
    passwd = Path("/etc/passwd").read_text()
    group = Path("/etc/group").read_text()
    for student in students:
        home = sandbox / "home" / student.linux
        home.mkdir(parents=True, exist_ok=True)
        os.chown(home, student.uid, student.uid)
        home.chmod(0o700)
        passwd += f"{student.linux}:x:{student.uid}:{student.uid}::{student.home}:/bin/sh\n"
        group += f"{student.linux}:x:{student.uid}:\n"
    (etc / "passwd").write_text(passwd)
    (etc / "group").write_text(group)


def student_command(student: Student, *words: str) -> str:
    """The SSH command running ``words`` as ``student`` in their home, in the sandbox."""
    binds = [
        ("/srv/grader-etc/passwd", "/etc/passwd"),
        ("/srv/grader-etc/group", "/etc/group"),
    ]
    mounts = " && ".join(
        f"/usr/bin/mount --bind {shlex.quote(a)} {shlex.quote(b)}" for a, b in binds
    )
    environment = [
        f"HOME={student.home}",
        f"USER={student.linux}",
        f"PATH={USER_PREFIX}/bin:/usr/bin:/bin",
    ]
    drop = f"setpriv --reuid={student.uid} --regid={student.uid} --clear-groups"
    return (
        f"{mounts} && cd {shlex.quote(student.home)} && {drop} "
        f"env -i {shlex.join(environment)} {shlex.join(words)}"
    )


ANSWER_PROGRAM = """
import json, sys
path, body = sys.argv[1], sys.argv[2]
nb = json.load(open(path))
for cell in nb["cells"]:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    if meta.get("solution"):
        cell["source"] = body
json.dump(nb, open(path, "w"))
"""


async def run_as(target, student: Student, *words: str) -> tuple[int, str]:
    """Run ``words`` as the student over SSH; (exit status, output)."""
    async with asyncssh.connect(
        target.host,
        port=target.port,
        username="root",
        client_keys=[target.client_key],
        known_hosts=None,
    ) as connection:
        result = await connection.run(student_command(student, *words), stderr=asyncssh.STDOUT)
    return int(result.exit_status or 0), str(result.stdout or "")


async def answer(target, student: Student, assignment: str, notebook: str, body: str) -> None:
    """The student writes ``body`` into the notebook's solution cell."""
    path = f"{assignment}/{notebook}"
    status, output = await run_as(
        target, student, f"{USER_PREFIX}/bin/python3", "-c", ANSWER_PROGRAM, path, body
    )
    assert status == 0, output
