"""Which course a cloud resource belongs to: the owner tag and the names, from the
repository's id.

Every droplet, volume and snapshot the service makes or adopts carries the tag
``lc-course-<repository id>`` (beside ``littlest-classroom``), and every name it makes
ends in the repository id written in base 36: ``alice-math-101-2tdyjk``. The id is
GitHub's ``repository.id``, which a rename or a transfer keeps, so no two courses share
a tag or a name whatever their owners, names and lengths, and a name in a course's
config (``server.name``) is only the readable part in front. Pure: no I/O.
"""

from __future__ import annotations

import re

COURSE_TAG_PREFIX = "lc-course-"
# The longest name any course resource starts with. A volume name (at most 64) is the
# base plus at most 24 characters ("-restore-" and a time), so the base keeps at most 40.
MAX_BASE = 40
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_CODE = re.compile(r"[0-9a-z]+")


class OwnershipError(ValueError):
    """A repository id that cannot name a course's resources."""


def _checked(repo_id: int) -> int:
    if isinstance(repo_id, bool) or not isinstance(repo_id, int) or repo_id < 1:
        raise OwnershipError(f"{repo_id!r} is not a GitHub repository id (a positive integer)")
    return repo_id


def course_tag(repo_id: int) -> str:
    """``lc-course-<id>``: the DigitalOcean tag on every resource of this course."""
    return f"{COURSE_TAG_PREFIX}{_checked(repo_id)}"


def is_course_tag(tag: str) -> bool:
    """Whether ``tag`` says which course a resource belongs to (any course's)."""
    return tag.startswith(COURSE_TAG_PREFIX)


def owner_tags(tags: tuple[str, ...] | list[str]) -> set[str]:
    """The course tags among a resource's tags."""
    return {t for t in tags if is_course_tag(t)}


def course_code(repo_id: int) -> str:
    """The repository id in base 36 (lower-case letters and digits): short and one-to-one."""
    number = _checked(repo_id)
    digits = []
    while number:
        number, rest = divmod(number, 36)
        digits.append(_DIGITS[rest])
    return "".join(reversed(digits))


def readable_part(name: str) -> str:
    """``name`` lower-cased, every run of other characters a single '-', starting with a
    letter (``hub-`` is put in front otherwise)."""
    readable = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not readable or not readable[0].isalpha():
        readable = f"hub-{readable}".rstrip("-")
    return readable


def course_name(readable: str, repo_id: int) -> str:
    """``<readable>-<code>``, at most ``MAX_BASE`` characters: the course's droplet name and
    the start of every volume and snapshot name.

    The code is the last '-'-separated part and holds no '-', so it can be read back from
    the name: two repository ids never give one name, however the readable parts are cut.
    """
    code = course_code(repo_id)
    room = MAX_BASE - len(code) - 1
    if room < 1:
        raise OwnershipError(f"repository id {repo_id} is too large to name a course")
    front = readable_part(readable)[:room].rstrip("-") or "hub"
    return f"{front}-{code}"


def code_of(name: str) -> str | None:
    """The code a course name ends in, if it has one (``None`` for a name made before)."""
    _, dash, code = name.rpartition("-")
    return code if dash and _CODE.fullmatch(code) else None


def without_code(name: str, repo_id: int | None) -> str:
    """The readable part of a course name: what names were before they carried the code."""
    if repo_id is not None:
        suffix = "-" + course_code(repo_id)
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name
