"""The README badge block: rendered Markdown that GitHub reads right, spliced in byte-exactly."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from bot.github.readme import (
    END_MARKER,
    START_MARKER,
    has_markers,
    hub_links,
    markdown_destination,
    markdown_text,
    markers_reason,
    render_badge_block,
    update_readme,
)
from deploy.course.links import launch_link

HUB = "https://hub.example.edu"
REPO = "https://github.com/physics/physics101"
LAUNCH = launch_link(HUB, REPO, "main", "StartHere.ipynb")
STATUS = "https://bot.example.edu/badges/physics/physics101/status.svg"
SIGNUP, AUTHORIZE = hub_links(HUB, "https://classroom.example.edu/courses/physics/physics101")


class _Links(HTMLParser):
    """Collects (href, text) of every <a> and the src of every <img>."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self.images: list[tuple[str, str]] = []
        self.cells: list[str] = []
        self._href: str | None = None
        self._text = ""
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a":
            self._href, self._text = values["href"] or "", ""
        elif tag == "img":
            self.images.append((values["src"] or "", values.get("alt") or ""))
        elif tag == "td":
            self._in_cell = True
            self.cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, self._text))
            self._href = None
        elif tag == "td":
            self._in_cell = False

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text += data
        if self._in_cell:
            self.cells[-1] += data


def rendered(markdown: str) -> _Links:
    parser = _Links()
    parser.feed(MarkdownIt("commonmark").enable("table").render(markdown))
    return parser


def test_hub_links() -> None:
    console = "https://classroom.example.edu/courses/physics/physics101"
    assert hub_links("https://hub.example.edu/", console) == (
        "https://hub.example.edu/hub/signup",
        console,
    )


def test_block_links_render_to_exact_urls() -> None:
    block = render_badge_block(HUB, LAUNCH, STATUS, SIGNUP, AUTHORIZE, None)
    page = rendered(block)
    assert page.images == [(STATUS, "Launch the course hub")]
    assert page.links == [
        (LAUNCH, ""),  # the status image is the launch badge
        (LAUNCH, "Launch"),
        (SIGNUP, "Sign up"),
        (AUTHORIZE, "Authorize students"),
        (HUB, "Hub"),
    ]
    assert "(admins)" in block
    assert "| Notebook |" not in block


def test_block_starts_with_status_image_linked_to_launch() -> None:
    block = render_badge_block(HUB, LAUNCH, STATUS, SIGNUP, AUTHORIZE, [])
    assert block.splitlines()[0] == f"[![Launch the course hub]({STATUS})]({LAUNCH})"


def test_block_notebook_table() -> None:
    notebooks = [
        ("Week 1/Intro.ipynb", launch_link(HUB, REPO, "main", "Week 1/Intro.ipynb")),
        ("Übung (2)|a*b*.ipynb", launch_link(HUB, REPO, "main", "Übung (2)|a*b*.ipynb")),
    ]
    page = rendered(render_badge_block(HUB, LAUNCH, STATUS, SIGNUP, AUTHORIZE, notebooks))
    assert page.cells == ["Week 1/Intro.ipynb", "Launch", "Übung (2)|a*b*.ipynb", "Launch"]
    assert page.links[-2:] == [(notebooks[0][1], "Launch"), (notebooks[1][1], "Launch")]


def test_parentheses_in_launch_url_stay_literal() -> None:
    url = launch_link(HUB, REPO, "main", "a (1)).ipynb")
    assert markdown_destination(url) == f"<{url}>"
    page = rendered(render_badge_block(HUB, url, STATUS, SIGNUP, AUTHORIZE, None))
    assert page.links[0] == (url, "")


def test_plain_url_destination_is_unchanged() -> None:
    assert markdown_destination(LAUNCH) == LAUNCH


@pytest.mark.parametrize("url", ["", "https://h/a b", "https://h/<x>", "https://h/\n"])
def test_destination_refuses_unlinkable_urls(url: str) -> None:
    with pytest.raises(ValueError, match="Markdown link"):
        markdown_destination(url)


def test_markdown_text_escapes_punctuation_and_newlines() -> None:
    assert markdown_text("a|b") == "a\\|b"
    assert markdown_text("*x* [y](z)") == "\\*x\\* \\[y\\]\\(z\\)"
    assert markdown_text("two\nlines") == "two lines"
    assert markdown_text("<img src=x>") == "\\<img src\\=x\\>"


@given(st.text(alphabet=st.characters(codec="ascii", exclude_categories=("Cc",)), min_size=1))
def test_markdown_text_renders_as_itself(text: str) -> None:
    page = rendered(f"| a |\n|---|\n| {markdown_text(text)} |")
    assert page.cells == [" ".join(text.split())]


# ---- markers


def readme(inner: str = "\nold\n", nl: str = "\n") -> str:
    return f"# Course{nl}{nl}{START_MARKER}{inner}{END_MARKER}{nl}{nl}Text after.{nl}"


def test_markers_found() -> None:
    assert has_markers(readme())
    assert markers_reason(readme()) is None


def test_marker_whitespace_variants_accepted() -> None:
    assert has_markers("<!--classroom-badges:start-->\n<!--  classroom-badges:end  -->")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("# Course\n", "no <!-- classroom-badges:start --> / <!-- classroom-badges:end -->"),
        (f"{START_MARKER}\n", "without <!-- classroom-badges:end -->"),
        (f"{END_MARKER}\n", "without <!-- classroom-badges:start -->"),
        (f"{END_MARKER}\nx\n{START_MARKER}\n", "comes before"),
        (f"{START_MARKER}{START_MARKER}{END_MARKER}", "2 start and 1 end markers"),
        (f"{START_MARKER}{END_MARKER}{START_MARKER}{END_MARKER}", "keep exactly one pair"),
    ],
)
def test_unusable_markers_have_a_reason(text: str, reason: str) -> None:
    assert not has_markers(text)
    assert reason in (markers_reason(text) or "")
    assert update_readme(text, "block") is None


def test_update_replaces_only_between_markers() -> None:
    new = update_readme(readme(), "fresh\nblock")
    assert new == readme("\nfresh\nblock\n")


def test_update_is_idempotent() -> None:
    block = render_badge_block(HUB, LAUNCH, STATUS, SIGNUP, AUTHORIZE, [("a.ipynb", LAUNCH)])
    once = update_readme(readme(), block)
    assert once is not None
    assert update_readme(once, block) is None


def test_update_no_change_returns_none() -> None:
    assert update_readme(readme("\nsame\n"), "same") is None
    assert update_readme(readme("\nsame\n"), "same\n\n") is None


def test_update_keeps_crlf_line_endings() -> None:
    text = readme("\r\nold\r\n", "\r\n")
    new = update_readme(text, "one\ntwo")
    assert new == readme("\r\none\r\ntwo\r\n", "\r\n")
    assert "\n" not in new.replace("\r\n", "")
    assert update_readme(new, "one\r\ntwo") is None


def test_update_markers_on_one_line() -> None:
    text = f"x {START_MARKER}{END_MARKER} y"
    assert update_readme(text, "b") == f"x {START_MARKER}\nb\n{END_MARKER} y"


def test_update_empty_block() -> None:
    assert update_readme(readme(), "") == readme("\n")
    assert update_readme(readme("\n"), "") is None


def test_update_preserves_marker_spelling() -> None:
    text = "<!--classroom-badges:start-->old<!--  classroom-badges:end -->\n"
    new = update_readme(text, "b")
    assert new == "<!--classroom-badges:start-->\nb\n<!--  classroom-badges:end -->\n"


def test_update_refuses_block_with_markers() -> None:
    with pytest.raises(ValueError, match="must not contain"):
        update_readme(readme(), f"{START_MARKER}\nx\n{END_MARKER}")


_outside = st.text(alphabet=st.characters(exclude_characters="<"))


@given(_outside, _outside, st.text(alphabet=st.characters(exclude_characters="<")), _outside)
def test_update_preserves_outside_bytes(before: str, old: str, block: str, after: str) -> None:
    text = f"{before}{START_MARKER}{old}{END_MARKER}{after}"
    new = update_readme(text, block)
    result = text if new is None else new
    head, _, rest = result.partition(START_MARKER)
    _, _, tail = rest.partition(END_MARKER)
    assert head == before
    assert tail == after
    assert update_readme(result, block) is None
