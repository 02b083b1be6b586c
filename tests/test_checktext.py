"""Check-run text cut to GitHub's byte limit, on character boundaries, with the cut marked."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.github.checktext import CHECK_RUN_LIMIT, cut_marker, fit_bytes

_MARKER = re.compile(r"… (\d+) bytes cut …")


def size(text: str) -> int:
    return len(text.encode())


def test_fitting_text_is_unchanged() -> None:
    assert fit_bytes("hello", 5) == "hello"
    assert fit_bytes("", 0) == ""
    assert fit_bytes("é" * 10, 20) == "é" * 10


def test_default_limit_is_github_check_run_limit() -> None:
    assert CHECK_RUN_LIMIT == 65535
    text = "x" * 70000
    result = fit_bytes(text)
    marker, _, body = result.partition("\n")
    assert size(result) == 65535
    assert marker == cut_marker(70000 - len(body))
    assert body == "x" * len(body)


def test_tail_keeps_the_end_and_marks_the_cut() -> None:
    text = "".join(f"line {i}\n" for i in range(1000))
    result = fit_bytes(text, 200)
    marker, _, body = result.partition("\n")
    assert _MARKER.fullmatch(marker)
    assert text.endswith(body)
    assert int(_MARKER.fullmatch(marker)[1]) == size(text) - size(body)
    assert size(result) == 200


def test_head_keeps_the_start_and_marks_the_cut() -> None:
    text = "abcdefghij" * 100
    result = fit_bytes(text, 100, keep="head")
    body, _, marker = result.rpartition("\n")
    assert text.startswith(body)
    assert _MARKER.fullmatch(marker)
    assert int(_MARKER.fullmatch(marker)[1]) == size(text) - size(body)
    assert size(result) == 100


def test_known_small_cut() -> None:
    # 50 bytes in, limit 30: "… 41 bytes cut …\n" is 21 bytes, leaving 9 to keep.
    result = fit_bytes("0123456789" * 5, 30)
    assert result == "… 41 bytes cut …\n123456789"


def test_never_splits_a_multibyte_character() -> None:
    text = "€" * 100  # 3 bytes each
    for limit in range(25, 60):
        for keep in ("tail", "head"):
            result = fit_bytes(text, limit, keep=keep)  # type: ignore[arg-type]
            assert size(result) <= limit
            assert "\ufffd" not in result
            body = _MARKER.sub("", result).strip("\n")
            assert set(body) <= {"€"}


def test_limit_smaller_than_marker_returns_unmarked_part() -> None:
    assert fit_bytes("abcdefghij", 3) == "hij"
    assert fit_bytes("abcdefghij", 3, keep="head") == "abc"
    assert fit_bytes("€€€", 4) == "€"
    assert fit_bytes("abc", 0) == ""


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="limit"):
        fit_bytes("x", -1)
    with pytest.raises(ValueError, match="keep"):
        fit_bytes("xx", 1, keep="middle")  # type: ignore[arg-type]


@given(st.text(), st.integers(min_value=0, max_value=400), st.sampled_from(["tail", "head"]))
def test_fit_bytes_properties(text: str, limit: int, keep: str) -> None:
    result = fit_bytes(text, limit, keep=keep)  # type: ignore[arg-type]
    assert size(result) <= limit
    if size(text) <= limit:
        assert result == text
        return
    match = _MARKER.search(result)
    if match is None:
        # Only when the marker alone does not fit.
        assert limit < size(cut_marker(size(text))) + 1
        assert (text.endswith if keep == "tail" else text.startswith)(result)
        return
    body = result[match.end() + 1 :] if keep == "tail" else result[: match.start() - 1]
    assert (text.endswith if keep == "tail" else text.startswith)(body)
    assert int(match[1]) == size(text) - size(body)


@given(st.text(min_size=1), st.integers(min_value=40, max_value=400))
def test_fit_bytes_keeps_as_much_as_possible(text: str, limit: int) -> None:
    result = fit_bytes(text, limit)
    if size(text) > limit:
        # At most one partial character (≤ 3 bytes) beyond the marker goes unused.
        assert size(result) >= limit - 3
