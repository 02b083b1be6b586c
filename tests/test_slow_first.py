"""The collection order that starts the known-slow tests first (``tests/plugins/slow_first.py``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.plugins.slow_first import SLOW_TESTS, read_slow_tests, slowest_first

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Item:
    nodeid: str


def test_listed_tests_come_first_longest_first_and_the_rest_keep_their_order() -> None:
    slow = {"tests/a.py::test_slow": 30.0, "tests/b.py::test_p[two]": 50.0}
    items = [
        Item("tests/a.py::test_fast"),
        Item("tests/a.py::test_slow[one]"),  # its function's line
        Item("tests/b.py::test_p[one]"),  # another parametrization: not listed
        Item("tests/b.py::test_p[two]"),
        Item("tests/c.py::test_other"),
    ]
    ordered = [item.nodeid for item in slowest_first(items, slow)]  # type: ignore[arg-type]
    assert ordered == [
        "tests/b.py::test_p[two]",
        "tests/a.py::test_slow[one]",
        "tests/a.py::test_fast",
        "tests/b.py::test_p[one]",
        "tests/c.py::test_other",
    ]


def test_the_list_is_read_with_comments_and_a_bad_line_is_named(tmp_path: Path) -> None:
    listed = tmp_path / "slow.txt"
    listed.write_text(
        "# seconds id\n\n12.5 tests/a.py::test_x  # the hub\n3 tests/b.py::test_y[1]\n"
    )
    assert read_slow_tests(listed) == {"tests/a.py::test_x": 12.5, "tests/b.py::test_y[1]": 3.0}
    listed.write_text("12 tests/a.py::test_x\ntests/b.py::test_y\n")
    with pytest.raises(ValueError, match=r"slow\.txt, line 2: expected '<seconds> <test id>'"):
        read_slow_tests(listed)


def test_every_listed_test_still_exists() -> None:
    """A renamed or moved test would silently lose its early start: each listed function
    must still be defined in its file."""
    missing = []
    for test_id in read_slow_tests(SLOW_TESTS):
        path, *_, name = test_id.split("[", 1)[0].split("::")
        source = ROOT / path
        function = re.compile(rf"^(async )?def {re.escape(name)}\(", re.MULTILINE)
        if not source.is_file() or not function.search(source.read_text()):
            missing.append(test_id)
    assert read_slow_tests(SLOW_TESTS), "the list of slow tests is empty"
    assert missing == [], f"{SLOW_TESTS.name} names tests that no longer exist: {missing}"
