"""Unit tests of assignments: the ``assignments`` key, the nbgrader plan step, the server
program's requests and the gradebook's parsing (no I/O)."""

from __future__ import annotations

import dataclasses
import json
import shlex

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deploy.course.config import load_course
from deploy.course.validate import Invalid, check_assignment_name, parse_due
from deploy.host import assignments
from deploy.host.assignments import AssignmentError, Submission
from deploy.model import CONFIG_PATH, AssignmentsSpec, ConfigErrors, Observed, StorageSpec
from deploy.planning.planner import plan
from deploy.volumes.homevolume import BINDS
from tests.plugins.planner import make_course, server_matching

NOW = "2025-03-01T12:00:00Z"


def load(config: str, repo: str = "Physics_101"):
    return load_course({CONFIG_PATH: config.encode()}, "PhysicsDept", repo)


def errors_of(config: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigErrors) as raised:
        load(config)
    return [(e.line, e.key, e.message) for e in raised.value.errors]


# --- config --------------------------------------------------------------------------------


def test_no_assignments_key_means_no_nbgrader():
    assert load("hub: {signup: open}\n").assignments is None


def test_the_design_example_reads_as_written():
    course = load(
        "assignments:\n"
        "  tool: nbgrader\n"
        "  source: assignments/\n"
        "  course_id: physics101\n"
        "  submissions: physics-dept/physics101-submissions\n"
        "  due: {hw1: 2027-02-01T17:00Z, hw2: '2027-02-08T17:00+10:00'}\n"
    )
    assert course.assignments == AssignmentsSpec(
        course_id="physics101",
        source="assignments",
        submissions="physics-dept/physics101-submissions",
        due=(("hw1", "2027-02-01T17:00:00Z"), ("hw2", "2027-02-08T07:00:00Z")),
    )


def test_the_course_id_defaults_to_the_repository_name_made_valid():
    assert load("assignments: {}\n", repo="Physics_101").assignments.course_id == "Physics_101"
    assert load("assignments: {}\n", repo="phys.101").assignments.course_id == "phys-101"


@pytest.mark.parametrize(
    ("config", "line", "key", "words"),
    [
        ("assignments: {tool: otter}\n", 1, "assignments.tool", "not one of: nbgrader"),
        ("assignments:\n  course_id: 'a;b'\n", 2, "assignments.course_id", "not a course id"),
        ("assignments:\n  source: ../up\n", 2, "assignments.source", "no '..'"),
        ("assignments:\n  submissions: nope\n", 2, "assignments.submissions", "OWNER/REPO"),
        ("assignments:\n  due:\n    'x+y': 2027-02-01T17:00Z\n", 3, "assignments.due.x+y",
         "not an assignment name"),
        ("assignments:\n  due: {hw1: tomorrow}\n", 2, "assignments.due.hw1", "not a due time"),
        ("assignments:\n  due: {hw1: 2027-02-30T17:00Z}\n", 2, "assignments.due.hw1",
         "not a date and time that exists"),
        ("assignments:\n  grader: yes\n", 2, "assignments.grader", "not a known key"),
    ],
)  # fmt: skip
def test_a_bad_value_names_its_line_key_and_what_is_allowed(config, line, key, words):
    found = errors_of(config)
    assert [(e_line, e_key) for e_line, e_key, _ in found] == [(line, key)]
    assert words in found[0][2]


@given(st.text(max_size=70))
def test_an_accepted_assignment_name_is_one_safe_shell_word(name):
    accepted = check_assignment_name("hw1")
    assert accepted == "hw1"
    with pytest.raises(Invalid):
        check_assignment_name("hw 1")
    try:
        check_assignment_name(name)
    except Invalid:
        return
    assert shlex.quote(name) == name and "+" not in name and not name.startswith("-")


def test_due_times_are_read_as_utc():
    assert parse_due("2027-02-01T17:00Z") == "2027-02-01T17:00:00Z"
    assert parse_due("2027-02-01 17:00:30-05:00") == "2027-02-01T22:00:30Z"


# --- the plan step -------------------------------------------------------------------------


def with_assignments(provider: str = "ssh", **changes) -> object:
    spec = AssignmentsSpec(course_id="physics101", **changes)
    return dataclasses.replace(make_course(provider=provider), assignments=spec)


def test_a_course_with_assignments_gets_nbgrader_pinned_then_nothing_more():
    desired = with_assignments()
    seen = server_matching(desired)
    step = next(s for s in plan(desired, seen, applied_at=NOW).steps if s.name == "nbgrader")
    assert f"nbgrader=={assignments.NBGRADER_VERSION}" in step.script
    assert "chmod 1777 /srv/nbgrader/exchange" in step.script
    assert "chmod 2770 /srv/nbgrader/physics101" in step.script
    # Once the server has it, planning again finds nothing to do.
    done = dataclasses.replace(
        seen,
        pip={**seen.pip, "nbgrader": assignments.NBGRADER_VERSION},
        nbgrader_config=assignments.nbgrader_config(desired.assignments),
    )
    assert "nbgrader" not in [s.name for s in plan(desired, done, applied_at=NOW).steps]
    # Another nbgrader version on the server: the pinned one is installed.
    older = dataclasses.replace(done, pip={**done.pip, "nbgrader": "0.9.5"})
    assert "nbgrader" in [s.name for s in plan(desired, older, applied_at=NOW).steps]
    # A new course id rewrites the configuration.
    moved = with_assignments(source="assignments")
    moved = dataclasses.replace(
        moved, assignments=dataclasses.replace(moved.assignments, course_id="physics102")
    )
    assert "nbgrader" in [s.name for s in plan(moved, done, applied_at=NOW).steps]


def test_no_assignments_no_nbgrader_step():
    desired = make_course()
    assert "nbgrader" not in [s.name for s in plan(desired, Observed(), applied_at=NOW).steps]


def test_with_storage_the_exchange_is_bound_from_the_volume():
    assert ("nbgrader", "/srv/nbgrader") in BINDS  # /restore --all brings it back too
    desired = dataclasses.replace(
        with_assignments(provider="digitalocean"), storage=StorageSpec(size_gib=20)
    )
    step = next(s for s in plan(desired, Observed(), applied_at=NOW).steps if s.name == "nbgrader")
    bind = step.script.index("/mnt/classroom-home/nbgrader")
    assert bind < step.script.index("mkdir -p /srv/nbgrader/exchange")


# --- requests and answers ------------------------------------------------------------------


def test_only_the_assignments_own_folder_is_sent():
    files = {
        "assignments/hw1/hw1.ipynb": b"{}",
        "assignments/hw1/data.csv": b"a,b\n",
        "assignments/hw10/hw10.ipynb": b"{}",
        "README.md": b"x",
    }
    assert assignments.assignment_files(files, "assignments", "hw1") == {
        "hw1.ipynb": b"{}",
        "data.csv": b"a,b\n",
    }
    with pytest.raises(AssignmentError, match="holds no notebook"):
        assignments.assignment_files(files, "assignments", "hw2")


def test_the_command_holds_no_value_from_anyone():
    spec = AssignmentsSpec(course_id="physics101")
    request = assignments.release_request(spec, "hw1", {"hw1.ipynb": b"{}"})
    command = assignments.command("release")
    assert "physics101" not in command and "hw1" not in command
    assert json.loads(json.dumps(request))["assignment"] == "hw1"
    with pytest.raises(Invalid):
        assignments.assignment_request("physics101", "hw1; rm -rf /")


def test_the_assignment_names_are_the_folders_holding_notebooks():
    listed = (
        "assignments/hw1/hw1.ipynb",
        "assignments/hw2/part/a.ipynb",
        "assignments/loose.ipynb",
        "assignments/bad name/x.ipynb",
        "StartHere.ipynb",
    )
    assert assignments.names_in(listed, "assignments") == ["hw1", "hw2"]


def test_the_gradebook_answer_becomes_submissions_late_against_due():
    answer = {
        "rows": [
            ["hw1", "jupyter-ada", "2027-02-01 16:59:00.000000", 1.0, 1, 1.0],
            ["hw1", "jupyter-bo", "2027-02-01 17:00:01.000000", 0.0, 1, 1.0],
            ["hw1", "jupyter-cy", "2027-02-01 10:00:00.000000", None, 0, 1.0],
            ["bad row"],
        ]
    }
    found = assignments.parse_gradebook(answer, {"hw1": "2027-02-01T17:00:00Z"})
    assert found == [
        Submission("hw1", "ada", "2027-02-01 16:59:00.000000", 1.0, 1.0, False),
        Submission("hw1", "bo", "2027-02-01 17:00:01.000000", 0.0, 1.0, True),
        Submission("hw1", "cy", "2027-02-01 10:00:00.000000", None, 1.0, False),
    ]
    assert [s.score_text for s in found] == ["1 / 1", "0 / 1", ""]
    csv = assignments.gradebook_csv(found).splitlines()
    assert csv[0] == "assignment,student,submitted_at,late,score,max_score"
    assert csv[2] == "hw1,bo,2027-02-01 17:00:01.000000,yes,0,1"


def test_assignments_are_refused_on_kubernetes_naming_the_key():
    found = errors_of(
        "server: {provider: kubernetes, nodes: {size: s-2vcpu-4gb, min: 1, max: 3}}\n"
        "assignments: {course_id: physics101}\n"
    )
    assert [(line, key) for line, key, _ in found] == [(2, "assignments")]
    assert "TLJH hubs only" in found[0][2]
