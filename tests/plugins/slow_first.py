"""Start the known-slow tests first, so that none of them starts last and sets the wall time.

pytest-xdist hands tests to its workers in collection order (``scripts/test`` runs
``--dist load --maxschedchunk 2``: each worker holds at most a few tests ahead), so a test
of a minute that is collected late keeps one worker busy long after the others are idle.
``tests/data/slow_tests.txt`` lists the slow tests with the seconds each took; this hook
sorts the collection longest first (the classic longest-processing-time rule) and keeps
every other test in its usual order after them. A test missing from the list only runs
later than it might: the list is a hint, never a filter.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SLOW_TESTS = Path(__file__).resolve().parents[1] / "data" / "slow_tests.txt"


def read_slow_tests(path: Path = SLOW_TESTS) -> dict[str, float]:
    """``test id -> seconds`` from the list: one ``seconds<space>id`` a line, ``#`` comments.

    An id is a test function (``tests/x.py::test_y``, every parametrization of it) or one
    parametrization (``tests/x.py::test_y[case]``).
    """
    found: dict[str, float] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        seconds, _, test_id = text.partition(" ")
        try:
            found[test_id.strip()] = float(seconds)
        except ValueError:
            raise ValueError(
                f"{path}, line {number}: expected '<seconds> <test id>', got {line!r}"
            ) from None
    return found


def expected_seconds(test_id: str, slow: dict[str, float]) -> float:
    """The listed seconds of a test (its own line, else its function's), 0 if unlisted."""
    if test_id in slow:
        return slow[test_id]
    return slow.get(test_id.split("[", 1)[0], 0.0)


def slowest_first(items: list[pytest.Item], slow: dict[str, float]) -> list[pytest.Item]:
    """``items`` with the listed ones first, longest first; the rest keep their order."""
    return sorted(items, key=lambda item: -expected_seconds(item.nodeid, slow))


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    items[:] = slowest_first(items, read_slow_tests())
