"""The service's own SVG badges: well-formed, escaped, coloured by state, sized by text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.web.badges import COLOURS, badge, etag_for, status_badge, text_width

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    # The SVG is this module's own output under test, not untrusted input.
    return ET.fromstring(svg)  # noqa: S314


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def fills(root: ET.Element) -> list[str]:
    return [r.get("fill", "") for r in root.iter(f"{SVG}rect")]


def test_badge_is_svg_with_label_and_message() -> None:
    root = parse(badge("launch", "JupyterLab", "orange"))
    assert root.tag == f"{SVG}svg"
    assert root.get("height") == "20"
    assert texts(root) == ["launch", "launch", "JupyterLab", "JupyterLab"]
    assert root.find(f"{SVG}title").text == "launch: JupyterLab"
    assert root.get("aria-label") == "launch: JupyterLab"


def test_badge_named_colour_fills_message_half() -> None:
    root = parse(badge("a", "b", "orange"))
    assert fills(root)[1:3] == ["#555", COLOURS["orange"]]


def test_badge_hex_colour_is_accepted() -> None:
    root = parse(badge("a", "b", "#ABCDEF"))
    assert "#abcdef" in fills(root)
    assert "#123" in fills(parse(badge("a", "b", "#123")))


@pytest.mark.parametrize(
    "colour", ["purple-ish", '#fff" onload="x', "#ggg", "#12345", "", "url(#s)"]
)
def test_badge_refuses_unknown_colour(colour: str) -> None:
    with pytest.raises(ValueError, match="badge colour"):
        badge("a", "b", colour)


def test_badge_escapes_markup() -> None:
    svg = badge('<script>"x"</script>', "a & b 'c'", "red")
    assert "<script>" not in svg
    root = parse(svg)
    assert texts(root)[0] == '<script>"x"</script>'
    assert texts(root)[2] == "a & b 'c'"
    assert root.get("aria-label") == "<script>\"x\"</script>: a & b 'c'"


def test_badge_replaces_characters_xml_forbids() -> None:
    root = parse(badge("a\x00b", "c\x1bd", "red"))
    assert texts(root)[0] == "a\ufffdb"
    assert texts(root)[2] == "c\ufffdd"


def test_badge_width_grows_with_text() -> None:
    short = parse(badge("hub", "up", "red"))
    long = parse(badge("hub", "deploying", "red"))
    assert int(long.get("width")) > int(short.get("width"))
    assert int(short.get("width")) == text_width("hub") + text_width("up") + 20


def test_badge_halves_add_up_and_text_is_centred() -> None:
    root = parse(badge("label", "message", "blue"))
    rects = list(root.iter(f"{SVG}rect"))
    label_width = int(rects[1].get("width"))
    message_width = int(rects[2].get("width"))
    assert int(rects[2].get("x")) == label_width
    assert label_width + message_width == int(root.get("width"))
    xs = [float(t.get("x")) for t in root.iter(f"{SVG}text")]
    assert xs[0] == label_width / 2
    assert xs[2] == label_width + message_width / 2


def test_text_width_estimates() -> None:
    assert text_width("") == 0
    assert text_width("i") < text_width("a") < text_width("A") < text_width("W")
    assert text_width("日本") > text_width("ab")


@pytest.mark.parametrize(
    ("state", "colour"),
    [
        ("up", "brightgreen"),
        ("down", "red"),
        ("deploying", "blue"),
        ("unknown", "lightgrey"),
    ],
)
def test_status_badge_colour_by_state(state: str, colour: str) -> None:
    root = parse(status_badge(state))  # type: ignore[arg-type]
    assert texts(root) == ["hub", "hub", state, state]
    assert COLOURS[colour] in fills(root)


def test_status_badge_unexpected_state_reads_unknown() -> None:
    assert status_badge("exploded") == status_badge("unknown")  # type: ignore[arg-type]


def test_status_badges_differ_by_state() -> None:
    assert len({status_badge(s) for s in ("up", "down", "deploying", "unknown")}) == 4


def test_etag_is_quoted_stable_and_changes_with_content() -> None:
    up = status_badge("up")
    tag = etag_for(up)
    assert tag.startswith('"') and tag.endswith('"')
    assert len(tag) == 34
    assert etag_for(up) == tag
    assert etag_for(status_badge("down")) != tag


@given(st.text(), st.text())
def test_badge_always_well_formed(label: str, message: str) -> None:
    root = parse(badge(label, message, "green"))
    assert len(texts(root)) == 4
