"""Names and tags of a course's cloud resources: one course, one name, whatever the names.

Pure: every droplet, volume and snapshot name the service makes ends in the repository
id's code, so two repository ids never give one name, and every name keeps within
DigitalOcean's limits (OpenAPI: droplet names are hostnames, at most 63 characters per
label here; volume names at most 64, lower-case letters, digits and '-', a letter first).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deploy.course.config import load_course
from deploy.course.validate import DROPLET_NAME
from deploy.ownership import (
    MAX_BASE,
    OwnershipError,
    code_of,
    course_code,
    course_name,
    course_tag,
    readable_part,
    without_code,
)
from deploy.providers.droplets import DROPLET_NAME_PATTERN
from deploy.volumes.volume_driver import (
    VOLUME_NAME_PATTERN,
    home_volume_name,
    restore_volume_name,
    snapshot_name,
    swapped_volume_name,
)

STAMP = "20260301-020000"
WHEN = datetime(2026, 3, 1, 2, 0, 0, tzinfo=UTC)
# GitHub's repository ids are positive 64-bit integers (today about 10^9).
REPO_IDS = st.integers(min_value=1, max_value=2**63 - 1)
READABLE = st.one_of(
    st.from_regex(DROPLET_NAME, fullmatch=True).filter(lambda n: len(n) <= 253),
    st.text(min_size=0, max_size=300),
)
TAG = re.compile(r"[a-zA-Z0-9_:\-]{1,255}")  # DigitalOcean's rule for tag names


def every_name(readable: str, repo_id: int) -> dict[str, str]:
    """Each kind of resource name the service makes for a course."""
    droplet = course_name(readable, repo_id)
    return {
        "droplet": droplet,
        "volume": home_volume_name(droplet),
        "snapshot": snapshot_name(droplet, WHEN),
        "restore volume": restore_volume_name(droplet, STAMP),
        "from volume": swapped_volume_name(droplet, STAMP),
    }


def within_limits(kind: str, name: str) -> bool:
    if kind == "droplet":
        return len(name) <= 63 and DROPLET_NAME_PATTERN.fullmatch(name) is not None
    if kind == "snapshot":
        return len(name) <= 64 and VOLUME_NAME_PATTERN.fullmatch(name) is not None
    return len(name) <= 64 and VOLUME_NAME_PATTERN.fullmatch(name) is not None


@settings(deadline=None)  # a shared CI machine may be slow; the property is what counts
@given(READABLE, READABLE, REPO_IDS, REPO_IDS)
def test_distinct_repository_ids_never_share_a_name_of_any_kind(
    readable_a: str, readable_b: str, id_a: int, id_b: int
) -> None:
    if id_a == id_b:
        id_b = id_a + 1
    names_a, names_b = every_name(readable_a, id_a), every_name(readable_b, id_b)
    for kind in names_a:
        assert names_a[kind] != names_b[kind], kind
    # Nor does one course's name of one kind equal another's of another kind.
    assert not set(names_a.values()) & set(names_b.values())


@settings(deadline=None)
@given(READABLE, REPO_IDS)
def test_every_name_keeps_within_digitaloceans_limits(readable: str, repo_id: int) -> None:
    for kind, name in every_name(readable, repo_id).items():
        assert within_limits(kind, name), (kind, name)
    assert len(course_name(readable, repo_id)) <= MAX_BASE
    assert TAG.fullmatch(course_tag(repo_id))


@settings(deadline=None)
@given(READABLE, REPO_IDS)
def test_the_code_is_read_back_from_the_name(readable: str, repo_id: int) -> None:
    name = course_name(readable, repo_id)
    assert code_of(name) == course_code(repo_id)
    assert int(course_code(repo_id), 36) == repo_id
    assert course_name(without_code(name, repo_id), repo_id) == name


def test_names_are_readable_then_the_code() -> None:
    assert course_name("alice-math-101", 123456789) == "alice-math-101-21i3v9"
    assert course_tag(123456789) == "lc-course-123456789"
    assert readable_part("Physics.101 Hub") == "physics-101-hub"
    assert readable_part("101") == "hub-101"


def test_the_three_alice_courses_that_once_shared_a_name_no_longer_do() -> None:
    # alice/math-101, alice-math/101 and alice/math.101 all used to be alice-math-101.
    courses = [("alice", "math-101", 11), ("alice-math", "101", 12), ("alice", "math.101", 13)]
    names = {load_course({}, owner, repo, repo_id).server.name for owner, repo, repo_id in courses}
    assert len(names) == 3
    assert all(name.startswith("alice-math-101-") for name in names)


def test_the_two_long_physics_sections_get_separate_volumes() -> None:
    owner = "physics-dept"
    a = load_course({}, owner, "introduction-to-computational-physics-section-a", 5001)
    b = load_course({}, owner, "introduction-to-computational-physics-section-b", 5002)
    names_a, names_b = every_name(a.server.name, 5001), every_name(b.server.name, 5002)
    assert all(names_a[kind] != names_b[kind] for kind in names_a)


def test_a_configured_server_name_is_only_the_readable_part() -> None:
    config = b"server:\n  name: physics101-hub\n"
    a = load_course({".github/classroom.yml": config}, "octo-org", "physics101", 1001)
    b = load_course({".github/classroom.yml": config}, "mallory", "copycat", 1002)
    assert a.server.name != b.server.name
    assert a.server.name.startswith("physics101-hub-")
    # Naming course A's droplet name in full still gives B a name of its own.
    c = load_course(
        {".github/classroom.yml": f"server:\n  name: {a.server.name}\n".encode()},
        "mallory",
        "copycat",
        1002,
    )
    assert c.server.name != a.server.name


@pytest.mark.parametrize("bad", [0, -1, True, "12"])
def test_a_repository_id_must_be_a_positive_integer(bad: object) -> None:
    with pytest.raises(OwnershipError):
        course_tag(bad)  # type: ignore[arg-type]
