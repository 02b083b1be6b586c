"""Assignments with nbgrader: the hub's setup, and ``/release``, ``/collect``, ``/return``.

Pure parts: the plan step that installs nbgrader (pinned, from PyPI) into TLJH's user
environment and lays out its folders and configuration, the one program the server runs
for each action (a constant, standard library only), the requests it reads and the
parsers of its answers. The thin executors at the end send one request per SSH round
trip: the program travels as a fixed command, every value (course id, assignment name,
the assignment's files) as JSON on stdin, and the program calls nbgrader with argument
lists, never through a shell.

Layout on the server (``/srv/nbgrader`` is on the course's volume with ``storage``, see
``deploy.volumes.homevolume.BINDS``):

- ``/srv/nbgrader/exchange``: nbgrader's exchange, world-writable with the sticky bit;
- ``/srv/nbgrader/<course_id>``: the course directory (source, release, submitted,
  autograded, feedback, ``gradebook.db``), root's, group ``jupyterhub-admins`` (TLJH's
  group of hub admins, the instructors), mode 2770: no student can read it;
- ``/opt/tljh/user/etc/jupyter/nbgrader_config.py``: course id, exchange and course
  directory for every nbgrader in the user environment;
- students' servers get ``JUPYTER_CONFIG_PATH`` pointing at a folder that turns the
  formgrader and create-assignment extensions off (a hub setting, so nothing is written
  in anyone's home).

Privacy (safety invariant 13): what comes back from the server for ``/collect`` and
``/return`` is counts only; nbgrader's own output, which names students, stays on the
server. Only the console reads the gradebook (``read_gradebook``).
"""

from __future__ import annotations

import base64
import json
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from deploy.course.validate import Invalid, check_assignment_name, check_course_id
from deploy.host import accounts, tljh
from deploy.model import AssignmentsSpec, CourseConfig, Observed, Reload, Step
from deploy.ssh import SSHError, SSHPool, Target
from deploy.volumes import homevolume

NBGRADER_VERSION = "0.9.6"
NBGRADER_ROOT = "/srv/nbgrader"
EXCHANGE = f"{NBGRADER_ROOT}/exchange"
USER_BIN = f"{tljh.USER_PREFIX}/bin"
NBGRADER = f"{USER_BIN}/nbgrader"
USER_CONFIG_DIR = f"{tljh.USER_PREFIX}/etc/jupyter"
NBGRADER_CONFIG = f"{USER_CONFIG_DIR}/nbgrader_config.py"
STUDENT_CONFIG_DIR = f"{tljh.USER_PREFIX}/etc/jupyter-students"
HUB_CONFIG_FILE = f"{tljh.CONFIG_D}/littlest-classroom-nbgrader.py"
INSTRUCTORS_GROUP = "jupyterhub-admins"  # TLJH puts every hub admin in it
STEP_TIMEOUT = 1800.0
ACTION_TIMEOUT = 3600.0
GRADEBOOK_TIMEOUT = 60.0
# What one /release may carry to the server on stdin.
MAX_ASSIGNMENT_BYTES = 50 * 1024 * 1024
LINUX_PREFIX = "jupyter-"  # TLJH's Linux user for hub user NAME is jupyter-NAME


class AssignmentError(Exception):
    """An assignment action cannot go on; the message is for the instructor and names no
    student."""


def course_dir(course_id: str) -> str:
    return f"{NBGRADER_ROOT}/{check_course_id(course_id)}"


def nbgrader_config(spec: AssignmentsSpec) -> str:
    """The user environment's ``nbgrader_config.py``: every nbgrader there finds the course."""
    return (
        "# Written by Littlest Classroom from .github/classroom.yml (assignments).\n"
        "c = get_config()  # noqa: F821\n"
        f"c.CourseDirectory.course_id = {check_course_id(spec.course_id)!r}\n"
        f"c.CourseDirectory.root = {course_dir(spec.course_id)!r}\n"
        f"c.Exchange.root = {EXCHANGE!r}\n"
    )


STUDENT_SERVER_CONFIG = json.dumps(
    {"ServerApp": {"jpserver_extensions": {"nbgrader.server_extensions.formgrader": False}}},
    indent=1,
)
STUDENT_PAGE_CONFIG = json.dumps(
    {
        "disabledExtensions": {
            "@jupyter/nbgrader:formgrader": True,
            "@jupyter/nbgrader:create-assignment": True,
        }
    },
    indent=1,
)
HUB_CONFIG = f"""\
# Written by Littlest Classroom (assignments): students' servers load a config folder
# that turns nbgrader's formgrader and create-assignment off; hub admins keep them.


def _nbgrader_config_path(spawner):
    return "" if spawner.user.admin else {STUDENT_CONFIG_DIR!r}


c.Spawner.environment.update({{"JUPYTER_CONFIG_PATH": _nbgrader_config_path}})
"""


def _write_file(path: str, text: str) -> list[str]:
    """Write ``text`` to ``path`` atomically; base64 keeps it out of the script's syntax."""
    quoted = shlex.quote(path)
    return [
        f"mkdir -p {shlex.quote(path.rsplit('/', 1)[0])}",
        f"printf '%s' {base64.b64encode(text.encode()).decode()} | base64 -d > {quoted}.tmp",
        f"mv {quoted}.tmp {quoted}",
    ]


def setup_script(spec: AssignmentsSpec, *, on_volume: bool) -> str:
    """Install nbgrader, lay out the exchange and the course directory, write the configs.

    Idempotent: pip keeps a matching version, ``mkdir -p`` and ``chmod`` converge, and the
    files are rewritten whole. With ``on_volume`` (the course has ``storage``), the
    volume's ``nbgrader`` folder is bound on ``/srv/nbgrader`` first, if the volume is
    mounted and it is not bound yet (a course that had its volume before assignments).
    """
    course = shlex.quote(course_dir(spec.course_id))
    exchange = shlex.quote(EXCHANGE)
    lines = [
        tljh.pip_install([f"nbgrader=={NBGRADER_VERSION}"]),
    ]
    if on_volume:
        lines += [
            f"if [ -f {shlex.quote(homevolume.MARKER)} ]; then",
            *(f"  {line}" for line in homevolume.bind_lines(over_existing=False)),
            "fi",
        ]
    lines += [
        f"mkdir -p {exchange} {course}/source",
        f"chmod 1777 {exchange}",
        f"chown root:root {course}",
        f"if getent group {INSTRUCTORS_GROUP} >/dev/null; then "
        f"chgrp {INSTRUCTORS_GROUP} {course}; fi",
        f"chmod 2770 {course}",
        *_write_file(NBGRADER_CONFIG, nbgrader_config(spec)),
        *_write_file(f"{STUDENT_CONFIG_DIR}/jupyter_server_config.json", STUDENT_SERVER_CONFIG),
        *_write_file(f"{STUDENT_CONFIG_DIR}/labconfig/page_config.json", STUDENT_PAGE_CONFIG),
        *_write_file(HUB_CONFIG_FILE, HUB_CONFIG),
    ]
    return tljh.script(*lines)


OBSERVE_COMMAND = f"cat {shlex.quote(NBGRADER_CONFIG)}"


def plan_steps(desired: CourseConfig, seen: Observed, pip: dict[str, str]) -> list[Step]:
    """The ``nbgrader`` step, when the course has ``assignments`` and the server differs."""
    spec = desired.assignments
    if spec is None:
        return []
    installed = {name.lower(): version for name, version in pip.items()}
    version_ok = installed.get("nbgrader") == NBGRADER_VERSION
    config_ok = seen.nbgrader_config.strip() == nbgrader_config(spec).strip()
    if version_ok and config_ok:
        return []
    why = (
        f"install nbgrader {NBGRADER_VERSION} in the user environment"
        if not version_ok
        else f"nbgrader's configuration changes (course {spec.course_id})"
    )
    on_volume = desired.storage is not None and desired.server.provider == "digitalocean"
    return [
        Step(
            "nbgrader",
            f"assignments: {why}; the exchange in {EXCHANGE}, the course's gradebook in "
            f"{course_dir(spec.course_id)} (hub admins only)",
            setup_script(spec, on_volume=on_volume),
            reload=Reload.HUB,
            timeout=STEP_TIMEOUT,
        )
    ]


# --- the program the server runs ------------------------------------------------------

# Standard library only, run by the system's python3 as root. One action per run, named
# in argv; its request comes as one JSON object on stdin; it prints one JSON object, the
# last line. nbgrader's own output (which names students) goes to a log file in the
# course directory, never back over SSH.
SERVER_PROGRAM = r"""
import base64, glob, json, os, shutil, sqlite3, subprocess, sys, tempfile
ROOT = @ROOT@
EXCHANGE = @EXCHANGE@
NBGRADER = @NBGRADER@
USER_BIN = @USER_BIN@
action = sys.argv[1]
request = json.loads(sys.stdin.read() or "{}")
course_id = request["course_id"]
course = os.path.join(ROOT, course_id)
out = {}

def nbgrader(*words):
    env = dict(os.environ, PATH=USER_BIN + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
    with open(os.path.join(course, "littlest-classroom.log"), "a") as log:
        done = subprocess.run(
            [NBGRADER, *words, "--CourseDirectory.root=" + course,
             "--CourseDirectory.course_id=" + course_id, "--Exchange.root=" + EXCHANGE],
            cwd=course, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
    return done.returncode

def count(pattern):
    return len([p for p in glob.glob(os.path.join(course, pattern)) if os.path.isdir(p)])

def files_in(folder):
    found = {}
    for top, _dirs, names in os.walk(folder):
        for name in names:
            path = os.path.join(top, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, folder)] = f.read()
    return found

if not os.path.isdir(course):
    print(json.dumps({"error": "no course directory: deploy with assignments first"}))
    sys.exit(0)

if action == "release":
    name = request["assignment"]
    files = {p: base64.b64decode(b) for p, b in request["files"].items()}
    source = os.path.join(course, "source", name)
    changed = files_in(source) != files if os.path.isdir(source) else True
    if changed:
        staging = tempfile.mkdtemp(dir=os.path.join(course, "source"))
        for path, data in files.items():
            target = os.path.join(staging, path)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(data)
        if os.path.isdir(source):
            shutil.rmtree(source)
        os.chmod(staging, 0o755)
        os.rename(staging, source)
    release = os.path.join(course, "release", name)
    generated = os.path.isdir(release) and not changed
    if not generated:
        status = nbgrader("generate_assignment", name, "--force")
        # nbgrader reports some failures only in its log: the folder is the proof.
        if status != 0 or not os.path.isdir(release):
            print(json.dumps({"error": "generate_assignment failed", "step": "generate"}))
            sys.exit(0)
    outbound = os.path.join(EXCHANGE, course_id, "outbound", name)
    released = os.path.isdir(outbound) and generated
    if not released:
        status = nbgrader("release_assignment", name, "--force")
        if status != 0 or not os.path.isdir(outbound):
            print(json.dumps({"error": "release_assignment failed", "step": "release"}))
            sys.exit(0)
    out.update(changed=changed, generated=not generated, released=not released,
               notebooks=len([p for p in files if p.endswith(".ipynb")]))
elif action == "collect":
    name = request["assignment"]
    def stamps(folder):
        found = {}
        for path in glob.glob(os.path.join(course, folder, "*", name, "timestamp.txt")):
            with open(path) as f:
                found[path.split(os.sep)[-3]] = f.read().strip()
        return found
    before = stamps("submitted")
    status = nbgrader("collect", name, "--update")
    inbound = glob.glob(os.path.join(EXCHANGE, course_id, "inbound", "*+" + name + "+*"))
    if status != 0 and inbound:
        print(json.dumps({"error": "collect failed", "step": "collect"}))
        sys.exit(0)
    after = stamps("submitted")
    submitted = count(os.path.join("submitted", "*", name))
    if after != before or stamps("autograded") != after:
        # Grades new and updated submissions; one that fails is left ungraded and counted.
        nbgrader("autograde", name, "--create")
    graded = count(os.path.join("autograded", "*", name))
    out.update(submitted=submitted, graded=graded, failed=max(0, submitted - graded))
elif action == "return":
    name = request["assignment"]
    graded = count(os.path.join("autograded", "*", name))
    if graded:
        nbgrader("generate_feedback", name)
        nbgrader("release_feedback", name)
    out.update(graded=graded, feedback=count(os.path.join("feedback", "*", name)))
elif action == "gradebook":
    database = os.path.join(course, "gradebook.db")
    rows = []
    if os.path.exists(database):
        db = sqlite3.connect("file:" + database + "?mode=ro", uri=True, timeout=30)
        rows = [list(r) for r in db.execute(
            "SELECT a.name, sa.student_id, sa.timestamp,"
            " SUM(COALESCE(g.manual_score, g.auto_score, 0) + COALESCE(g.extra_credit, 0)),"
            " COUNT(g.id),"
            " (SELECT SUM(gc.max_score) FROM grade_cells gc JOIN base_cell bc ON bc.id = gc.id"
            "  JOIN notebook n ON n.id = bc.notebook_id WHERE n.assignment_id = a.id)"
            " FROM submitted_assignment sa JOIN assignment a ON a.id = sa.assignment_id"
            " LEFT JOIN submitted_notebook sn ON sn.assignment_id = sa.id"
            " LEFT JOIN grade g ON g.notebook_id = sn.id"
            " GROUP BY sa.id ORDER BY a.name, sa.student_id"
        )]
    out.update(rows=rows)
else:
    sys.stderr.write("unknown action " + action + "\n")
    sys.exit(2)
out["ok"] = True
print(json.dumps(out))
"""
for _key, _value in (
    ("@ROOT@", NBGRADER_ROOT),
    ("@EXCHANGE@", EXCHANGE),
    ("@NBGRADER@", NBGRADER),
    ("@USER_BIN@", USER_BIN),
):
    SERVER_PROGRAM = SERVER_PROGRAM.replace(_key, repr(_value))

ACTIONS = ("release", "collect", "return", "gradebook")


def command(action: str) -> str:
    """The shell command that runs one action; it holds no value from anyone."""
    if action not in ACTIONS:
        raise ValueError(f"unknown assignments action {action!r}")
    return f"python3 -I -c {shlex.quote(SERVER_PROGRAM)} {action}"


# --- requests -------------------------------------------------------------------------


def assignment_files(files: dict[str, bytes], source: str, name: str) -> dict[str, bytes]:
    """The files of ``source/name/``, by their path inside it; refuses an empty folder."""
    check_assignment_name(name)
    prefix = f"{source}/{name}/"
    found = {path[len(prefix) :]: data for path, data in files.items() if path.startswith(prefix)}
    if not any(path.endswith(".ipynb") for path in found):
        raise AssignmentError(
            f"{prefix} holds no notebook at this commit: nbgrader's source layout is "
            f"{source}/NAME/*.ipynb"
        )
    if sum(len(data) for data in found.values()) > MAX_ASSIGNMENT_BYTES:
        raise AssignmentError(f"{prefix} holds more than {MAX_ASSIGNMENT_BYTES:,} bytes")
    return found


def release_request(spec: AssignmentsSpec, name: str, files: dict[str, bytes]) -> dict[str, Any]:
    return {
        "course_id": check_course_id(spec.course_id),
        "assignment": check_assignment_name(name),
        "files": {path: base64.b64encode(data).decode() for path, data in sorted(files.items())},
    }


def assignment_request(course_id: str, name: str | None = None) -> dict[str, Any]:
    request = {"course_id": check_course_id(course_id)}
    if name is not None:
        request["assignment"] = check_assignment_name(name)
    return request


def names_in(paths: list[str] | tuple[str, ...], source: str) -> list[str]:
    """The assignments in ``source``: each folder directly in it that holds a notebook."""
    prefix = f"{source}/"
    names = set()
    for path in paths:
        if path.startswith(prefix) and path.endswith(".ipynb"):
            folder = path[len(prefix) :].split("/", 1)[0]
            if "/" in path[len(prefix) :]:
                try:
                    names.add(check_assignment_name(folder))
                except Invalid:
                    continue
    return sorted(names)


# --- answers --------------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    """One student's submission of one assignment, as the gradebook holds it."""

    assignment: str
    student: str  # the hub user name (TLJH's Linux name without ``jupyter-``)
    submitted_at: str  # UTC, as nbgrader records it
    score: float | None  # None: not graded yet
    max_score: float | None
    late: bool = False

    @property
    def score_text(self) -> str:
        if self.score is None:
            return ""
        return f"{self.score:g}" + (f" / {self.max_score:g}" if self.max_score else "")


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def is_late(submitted_at: str, due: str | None) -> bool:
    """Whether a submission (nbgrader's UTC time) came after the due time (ISO, UTC)."""
    if not due or not submitted_at:
        return False
    try:
        when = datetime.fromisoformat(submitted_at.replace(" UTC", "")).replace(tzinfo=UTC)
        limit = datetime.fromisoformat(due.replace("Z", "+00:00"))
    except ValueError:
        return False
    return when > limit


def parse_gradebook(answer: dict[str, Any], due: dict[str, str] | None = None) -> list[Submission]:
    due = due or {}
    found = []
    for row in answer.get("rows") or []:
        if not isinstance(row, list) or len(row) != 6:
            continue
        name, student, at, score, grades, maximum = row
        if not isinstance(name, str) or not isinstance(student, str):
            continue
        at = at if isinstance(at, str) else ""
        found.append(
            Submission(
                name,
                student.removeprefix(LINUX_PREFIX),
                at,
                _number(score) if grades else None,
                _number(maximum),
                is_late(at, due.get(name)),
            )
        )
    return found


def gradebook_csv(submissions: list[Submission]) -> str:
    """The gradebook as CSV, one row per submission."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["assignment", "student", "submitted_at", "late", "score", "max_score"])
    for s in submissions:
        writer.writerow(
            [
                s.assignment,
                s.student,
                s.submitted_at,
                "yes" if s.late else "no",
                "" if s.score is None else f"{s.score:g}",
                "" if s.max_score is None else f"{s.max_score:g}",
            ]
        )
    return buffer.getvalue()


# --- the executor ---------------------------------------------------------------------


async def run(
    pool: SSHPool,
    target: Target,
    action: str,
    request: dict[str, Any],
    timeout: float = ACTION_TIMEOUT,
) -> dict[str, Any]:
    """One action in one SSH round trip; its answer, or ``AssignmentError`` saying why."""
    status, stdout, _stderr = await pool.run_script(
        target, tljh.script(command(action)), timeout, stdin=json.dumps(request)
    )
    answer = accounts.parse_answer(stdout)
    if answer.get("error"):
        raise AssignmentError(f"nbgrader on {target.address}: {answer['error']}")
    if status != 0 or not answer.get("ok"):
        # stderr may hold nbgrader's words about students: it is not passed on.
        raise AssignmentError(
            f"the assignments program on {target.address} exited {status}; nbgrader's log "
            "is in the course directory on the server"
        )
    return answer


async def read_gradebook(
    pool: SSHPool, target: Target, course_id: str, due: dict[str, str] | None = None
) -> list[Submission]:
    """Every submission with its time and score, read-only, in one round trip."""
    try:
        answer = await run(
            pool, target, "gradebook", assignment_request(course_id), GRADEBOOK_TIMEOUT
        )
    except SSHError as exc:
        raise AssignmentError(str(exc)) from None
    return parse_gradebook(answer, due)
