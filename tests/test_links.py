"""nbgitpuller launch links match, character for character, what its link generator makes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deploy.course.links import app_path, clone_folder, encode_uri_component, launch_link

HUB = "https://hub.example.edu"
REPO = "https://github.com/physics/physics101"


# Expected strings are worked out by hand from encodeURIComponent's rules.
@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("abcXYZ019", "abcXYZ019"),
        ("-_.!~*'()", "-_.!~*'()"),
        ("a/b", "a%2Fb"),
        ("a b", "a%20b"),
        ("a+b", "a%2Bb"),
        ("?&=#", "%3F%26%3D%23"),
        (":@$,;", "%3A%40%24%2C%3B"),
        ("%", "%25"),
        ('"<>[]{}|\\^`', "%22%3C%3E%5B%5D%7B%7D%7C%5C%5E%60"),
        ("é", "%C3%A9"),
        ("日本", "%E6%97%A5%E6%9C%AC"),
        ("😀", "%F0%9F%98%80"),
        ("\n\t", "%0A%09"),
        ("", ""),
    ],
)
def test_encode_uri_component_known_values(raw: str, encoded: str) -> None:
    assert encode_uri_component(raw) == encoded


def test_encode_uri_component_refuses_lone_surrogate() -> None:
    with pytest.raises(ValueError, match="surrogate"):
        encode_uri_component("a\ud800b")


_UNRESERVED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()")


@given(st.text(alphabet=st.characters(exclude_categories=("Cs",))))
def test_encode_uri_component_leaves_only_unreserved_and_escapes(value: str) -> None:
    from urllib.parse import unquote

    encoded = encode_uri_component(value)
    assert unquote(encoded, errors="strict") == value
    assert all(c in _UNRESERVED or c == "%" for c in encoded)


@pytest.mark.parametrize(
    ("repo_url", "folder"),
    [
        ("https://github.com/physics/physics101", "physics101"),
        ("https://github.com/physics/physics101.git", "physics101.git"),
        ("git@github.com:physics/physics101.git", "physics101.git"),
        ("git@github.com:physics101.git", "physics101.git"),
        ("https://gitlab.example.edu/group/sub/course-2024", "course-2024"),
        ("https://github.com/a/My.Course", "My.Course"),
    ],
)
def test_clone_folder_follows_the_generator(repo_url: str, folder: str) -> None:
    assert clone_folder(repo_url) == folder


def test_clone_folder_refuses_trailing_slash() -> None:
    with pytest.raises(ValueError, match="trailing '/'"):
        clone_folder("https://github.com/physics/physics101/")


def test_app_path_lab_and_classic() -> None:
    assert app_path("c", "x/y.ipynb") == "lab/tree/c/x/y.ipynb"
    assert app_path("c", "x/y.ipynb", "classic") == "tree/c/x/y.ipynb"
    assert app_path("c") == "lab/tree/c"
    assert app_path("c", None, "classic") == "tree/c"
    assert app_path("c", "") == "lab/tree/c"


def test_app_path_drops_leading_slash() -> None:
    assert app_path("c", "/StartHere.ipynb") == "lab/tree/c/StartHere.ipynb"


def test_app_path_unknown_app() -> None:
    with pytest.raises(ValueError, match="allowed: classic, jupyterlab"):
        app_path("c", None, "rstudio")  # type: ignore[arg-type]


def test_launch_link_design_shape_jupyterlab() -> None:
    assert launch_link(HUB, REPO, "main", "StartHere.ipynb") == (
        "https://hub.example.edu/hub/user-redirect/git-pull"
        "?repo=https%3A%2F%2Fgithub.com%2Fphysics%2Fphysics101"
        "&urlpath=lab%2Ftree%2Fphysics101%2FStartHere.ipynb"
        "&branch=main"
    )


def test_launch_link_classic() -> None:
    assert launch_link(HUB, REPO, "main", "StartHere.ipynb", app="classic") == (
        "https://hub.example.edu/hub/user-redirect/git-pull"
        "?repo=https%3A%2F%2Fgithub.com%2Fphysics%2Fphysics101"
        "&urlpath=tree%2Fphysics101%2FStartHere.ipynb"
        "&branch=main"
    )


def test_launch_link_without_open_path_opens_the_folder() -> None:
    assert launch_link(HUB, REPO, "main") == (
        "https://hub.example.edu/hub/user-redirect/git-pull"
        "?repo=https%3A%2F%2Fgithub.com%2Fphysics%2Fphysics101"
        "&urlpath=lab%2Ftree%2Fphysics101"
        "&branch=main"
    )
    assert launch_link(HUB, REPO, "main", app="classic").endswith(
        "&urlpath=tree%2Fphysics101&branch=main"
    )


def test_launch_link_trailing_slash_on_hub() -> None:
    assert launch_link(HUB + "/", REPO, "main") == launch_link(HUB, REPO, "main")
    assert launch_link(HUB + "//", REPO, "main") == launch_link(HUB, REPO, "main")


def test_launch_link_hub_with_path_prefix() -> None:
    link = launch_link("http://203.0.113.7/jupyter/", REPO, "main")
    assert link.startswith("http://203.0.113.7/jupyter/hub/user-redirect/git-pull?repo=")


def test_launch_link_keeps_dot_git_in_folder() -> None:
    assert launch_link(HUB, REPO + ".git", "main", "a.ipynb") == (
        "https://hub.example.edu/hub/user-redirect/git-pull"
        "?repo=https%3A%2F%2Fgithub.com%2Fphysics%2Fphysics101.git"
        "&urlpath=lab%2Ftree%2Fphysics101.git%2Fa.ipynb"
        "&branch=main"
    )


def test_launch_link_spaces_and_unicode_paths() -> None:
    link = launch_link(HUB, REPO, "main", "Week 1/Übung (1).ipynb")
    assert link.endswith(
        "&urlpath=lab%2Ftree%2Fphysics101%2FWeek%201%2F%C3%9Cbung%20(1).ipynb&branch=main"
    )


def test_launch_link_branch_is_encoded() -> None:
    link = launch_link(HUB, REPO, "feature/week 2")
    assert link.endswith("&branch=feature%2Fweek%202")


@pytest.mark.parametrize(
    "hub",
    ["hub.example.edu", "ftp://hub.example.edu", "https://", "https://h/?x=1", "https://h/#x"],
)
def test_launch_link_refuses_bad_hub_url(hub: str) -> None:
    with pytest.raises(ValueError, match="hub URL"):
        launch_link(hub, REPO, "main")


def test_launch_link_refuses_empty_branch() -> None:
    with pytest.raises(ValueError, match="branch"):
        launch_link(HUB, REPO, "")


@given(
    st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="/"), min_size=1),
    st.text(alphabet=st.characters(exclude_categories=("Cs",))),
)
def test_launch_link_round_trips_through_query_parsing(name: str, path: str) -> None:
    from urllib.parse import parse_qs, urlsplit

    # ':' splits the folder name in the generator, so keep it out of the last segment.
    name = name.replace(":", "_")
    repo = f"https://github.com/o/{name}"
    link = launch_link(HUB, repo, "main", path)
    # encodeURIComponent never emits '+', so a form parser reads back the same values.
    query = parse_qs(urlsplit(link).query, keep_blank_values=True, strict_parsing=True)
    assert query["repo"] == [repo]
    assert query["branch"] == ["main"]
    relative = path.lstrip("/")
    expected = f"lab/tree/{name}/{relative}" if relative else f"lab/tree/{name}"
    assert query["urlpath"] == [expected]
