"""Tests for deploy.course.validate: the strict patterns, quoting, and the safe YAML reader."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from deploy.course import validate
from deploy.course.validate import (
    SHELL_METACHARACTERS,
    Invalid,
    YamlReader,
    check_apt_package,
    check_branch,
    check_conda_channel,
    check_conda_spec,
    check_content_path,
    check_cpu,
    check_droplet_name,
    check_email,
    check_host,
    check_host_key,
    check_hostname,
    check_hub_username,
    check_memory,
    check_pip_requirement,
    check_port,
    check_slug,
    check_tljh_version,
    check_unix_username,
    droplet_name_for,
    parse_duration,
    parse_yaml,
    quote,
)
from deploy.host.tljh import words
from deploy.model import ConfigErrors

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def sh_words(command_words: str) -> list[str]:
    """What a real /bin/sh sees as the arguments of ``printf`` given these words."""
    script = f"for a in {command_words}; do printf '%s\\0' \"$a\"; done"
    out = subprocess.run(["sh", "-c", script], capture_output=True, check=True).stdout
    return out.decode("utf-8", "surrogateescape").split("\0")[:-1]


# --- accepted and refused values, one table per checker ---------------------------------

ACCEPTED = [
    (check_slug, "syd1", "syd1"),
    (check_slug, "s-2vcpu-4gb", "s-2vcpu-4gb"),
    (check_slug, "ubuntu-24-04-x64", "ubuntu-24-04-x64"),
    (check_droplet_name, "physics101-hub", "physics101-hub"),
    (check_droplet_name, "hub.physics", "hub.physics"),
    (check_hostname, "hub.example.edu", "hub.example.edu"),
    (check_hostname, "Hub.Example.EDU", "hub.example.edu"),
    (check_host, "hub.example.edu", "hub.example.edu"),
    (check_host, "203.0.113.5", "203.0.113.5"),
    (check_host, "2001:db8::1", "2001:db8::1"),
    (check_email, "you@example.edu", "you@example.edu"),
    (check_email, "first.last+hub@uni.example.ac.uk", "first.last+hub@uni.example.ac.uk"),
    (check_hub_username, "alice", "alice"),
    (check_hub_username, "Alice-B", "alice-b"),
    (check_hub_username, "12345", "12345"),
    (check_unix_username, "root", "root"),
    (check_unix_username, "ubuntu", "ubuntu"),
    (check_apt_package, "graphviz", "graphviz"),
    (check_apt_package, "libgl1-mesa-glx", "libgl1-mesa-glx"),
    (check_apt_package, "g++", "g++"),
    (check_apt_package, "graphviz=2.42.2-6", "graphviz=2.42.2-6"),
    (check_apt_package, "vim=2:9.0.1-1ubuntu1~22.04", "vim=2:9.0.1-1ubuntu1~22.04"),
    (check_conda_spec, "numpy", "numpy"),
    (check_conda_spec, "numpy=1.26", "numpy=1.26"),
    (check_conda_spec, "numpy>=1.20,<2", "numpy>=1.20,<2"),
    (check_conda_spec, "conda-forge::numpy", "conda-forge::numpy"),
    (check_conda_spec, "numpy 1.26.* py311_0", "numpy 1.26.* py311_0"),
    (check_conda_spec, "numpy=1.26=py311_0", "numpy=1.26=py311_0"),
    (check_conda_spec, "python=3.11", "python=3.11"),
    (check_conda_channel, "conda-forge", "conda-forge"),
    (check_conda_channel, "https://conda.example.org/main", "https://conda.example.org/main"),
    (check_pip_requirement, "numpy", "numpy"),
    (check_pip_requirement, "numpy>=1.20,<2", "numpy>=1.20,<2"),
    (check_pip_requirement, "numpy >= 1.20", "numpy >= 1.20"),
    (check_pip_requirement, "requests[socks]~=2.31", "requests[socks]~=2.31"),
    (
        check_pip_requirement,
        "pkg @ https://example.org/pkg-1.0.whl",
        "pkg @ https://example.org/pkg-1.0.whl",
    ),
    (check_tljh_version, "2.0.0", "2.0.0"),
    (check_tljh_version, "1.0.0b1", "1.0.0b1"),
    (check_memory, "1G", "1G"),
    (check_memory, "512M", "512M"),
    (check_memory, "1073741824", "1073741824"),
    (check_branch, "main", "main"),
    (check_branch, "feature/week-2", "feature/week-2"),
    (check_branch, "v1.0", "v1.0"),
    (check_content_path, "StartHere.ipynb", "StartHere.ipynb"),
    (check_content_path, "week 1/Intro.ipynb", "week 1/Intro.ipynb"),
    (check_content_path, "lectures/", "lectures"),
    (check_host_key, ED25519, ED25519),
    (check_host_key, ED25519 + " root@hub", ED25519 + " root@hub"),
]


@pytest.mark.parametrize(("checker", "value", "expected"), ACCEPTED)
def test_accepted_values(checker, value, expected):
    assert checker(value) == expected


REFUSED = [
    (check_slug, "SYD1"),
    (check_slug, "-syd1"),
    (check_slug, "syd1;reboot"),
    (check_slug, "syd 1"),
    (check_slug, "a" * 65),
    (check_droplet_name, "hub_1"),
    (check_droplet_name, "-hub"),
    (check_droplet_name, "hub-"),
    (check_hostname, "localhost"),
    (check_hostname, "hub.example.edu."),
    (check_hostname, "-hub.example.edu"),
    (check_hostname, "203.0.113.5"),
    (check_hostname, "hub.exa mple.edu"),
    (check_hostname, "hüb.example.edu"),
    (check_hostname, ("a" * 63 + ".") * 4 + "edu"),
    (check_host, "fe80::1%$(reboot)"),
    (check_host, "hub.example.edu;id"),
    (check_email, "you"),
    (check_email, "you@localhost"),
    (check_email, "you..me@example.edu"),
    (check_email, "$(id)@example.edu"),
    (check_email, "-you@example.edu"),
    (check_hub_username, "al ice"),
    (check_hub_username, "al,ice"),
    (check_hub_username, "al/ice"),
    (check_hub_username, "-alice"),
    (check_hub_username, "a" * 40),
    (check_hub_username, "\u212aelvin"),  # KELVIN SIGN lower-cases to ASCII 'k'
    (check_unix_username, "Root"),
    (check_unix_username, "root;id"),
    (check_apt_package, "Graphviz"),
    (check_apt_package, "g"),
    (check_apt_package, "-oAPT::Update"),
    (check_apt_package, "graphviz=$(id)"),
    (check_apt_package, "graphviz="),
    (check_apt_package, "graphviz=latest"),
    (check_apt_package, "a b"),
    (check_conda_spec, "numpy;rm -rf /"),
    (check_conda_spec, "Numpy"),
    (check_conda_spec, "numpy[version='>=1']"),
    (check_conda_spec, "numpy  1.26"),
    (check_conda_spec, "-c defaults"),
    (check_conda_spec, "numpy>=1|<2"),
    (check_conda_channel, "http://conda.example.org"),
    (check_conda_channel, "https://localhost/x"),
    (check_conda_channel, "conda forge"),
    (check_pip_requirement, "-r other.txt"),
    (check_pip_requirement, "-e ."),
    (check_pip_requirement, "--index-url https://evil.example.org"),
    (check_pip_requirement, "numpy --hash=sha256:abcd"),
    (check_pip_requirement, "numpy; python_version < '3.12'"),
    (check_pip_requirement, "pkg @ http://example.org/pkg.whl"),
    (check_pip_requirement, "pkg @ git+https://github.com/a/b"),
    (check_pip_requirement, "pkg @ file:///etc/passwd"),
    (check_pip_requirement, "pkg @ https://user@example.org/pkg.whl"),
    (check_pip_requirement, "https://example.org/pkg.whl"),
    (check_pip_requirement, "./local"),
    (check_pip_requirement, "numpy$(id)"),
    (check_pip_requirement, "numpy>=1,<"),
    (check_tljh_version, "latest"),
    (check_tljh_version, "2.0;id"),
    (check_tljh_version, "v2.0.0"),
    (check_tljh_version, "main"),
    (check_memory, "1Q"),
    (check_memory, "0"),
    (check_memory, "1 G"),
    (check_memory, "1g"),
    (check_memory, "١G"),  # ARABIC-INDIC DIGIT ONE: \d would take it
    (check_branch, "-main"),
    (check_branch, "../main"),
    (check_branch, "a..b"),
    (check_branch, "main/"),
    (check_branch, "main.lock"),
    (check_branch, "a//b"),
    (check_branch, ".hidden"),
    (check_branch, "a/.b"),
    (check_branch, "main@{1}"),
    (check_branch, "ma in"),
    (check_content_path, "/etc/passwd"),
    (check_content_path, "../secret.ipynb"),
    (check_content_path, "a/../../b"),
    (check_content_path, "a//b"),
    (check_content_path, "./a"),
    (check_content_path, "-rf"),
    (check_content_path, "a/ b"),
    (check_content_path, "a$b.ipynb"),
    (check_host_key, "ssh-ed25519"),
    (check_host_key, "ssh-dss AAAAB3NzaC1kc3MAAACBAP"),
    (check_host_key, "ssh-rsa " + ED25519.split()[1]),  # the blob says ssh-ed25519
    (check_host_key, "ssh-ed25519 !!!!notbase64!!!!!!!!!"),
    (check_host_key, ED25519 + " root@hub;id"),
]


@pytest.mark.parametrize(("checker", "value"), REFUSED)
def test_refused_values(checker, value):
    with pytest.raises(Invalid):
        checker(value)


@pytest.mark.parametrize("value", ["a\nb", "a\x00b", "a\rb", "a\tb", "", "x" * 201])
@pytest.mark.parametrize(
    "checker", [check_apt_package, check_conda_spec, check_pip_requirement, check_branch]
)
def test_control_characters_empty_and_overlong_values_are_refused(checker, value):
    with pytest.raises(Invalid):
        checker(value)


def test_refusal_says_what_is_allowed():
    with pytest.raises(Invalid, match=r"lowercase letters, digits.*'syd1'"):
        check_slug("Syd1", "region")
    with pytest.raises(Invalid, match=r"-r, -e.*not supported"):
        check_pip_requirement("-r base.txt")
    with pytest.raises(Invalid, match="markers are not supported"):
        check_pip_requirement("numpy; os_name == 'posix'")


def test_port_and_cpu_take_numbers_in_range():
    assert check_port(2222) == 2222
    assert check_cpu(0.5) == 0.5
    assert check_cpu(2) == 2.0
    for port in (0, 65536, True, "22"):
        with pytest.raises(Invalid):
            check_port(port)
    for cpu in (0, -1, True, 5000, "1"):
        with pytest.raises(Invalid):
            check_cpu(cpu)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("5m", 300), ("30 m", 1800), ("90s", 90), ("1h", 3600), ("1d", 86400), (120, 120)],
)
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["30s", "2d", "5", "5 minutes", "-5m", 59, True, "1.5h"])
def test_durations_out_of_range_or_malformed(value):
    with pytest.raises(Invalid):
        parse_duration(value)


@pytest.mark.parametrize(
    ("owner", "repo", "name"),
    [
        ("Org", "Repo", "org-repo"),
        ("My_Org", "Physics.101--Course", "my-org-physics-101-course"),
        ("a", "-" * 5, "a"),
        ("_", "_", "classroom"),
        ("o" * 40, "r" * 100, ("o" * 40 + "-" + "r" * 100)[:63]),
    ],
)
def test_default_droplet_name_is_always_valid(owner, repo, name):
    assert droplet_name_for(owner, repo) == name
    assert check_droplet_name(name) == name


# GitHub's own owner and repository names, and any text.
_NAME_CHARACTERS = "abcxyzABCXYZ0189"
OWNERS = st.one_of(st.text(_NAME_CHARACTERS + "-", min_size=1, max_size=39), st.text(max_size=50))
REPOS = st.one_of(st.text(_NAME_CHARACTERS + "._-", min_size=1, max_size=100), st.text(max_size=50))


@given(OWNERS, REPOS)
def test_default_droplet_name_from_any_owner_and_repo_is_valid(owner, repo):
    name = droplet_name_for(owner, repo)
    assert check_droplet_name(name) == name
    # It keeps the owner's then the repository's letters and digits, in order, cut to fit.
    lowered = f"{owner}-{repo}".lower()
    wanted = re.sub(r"[^a-z0-9]", "", lowered)
    kept = re.sub(r"[^a-z0-9]", "", name)
    if not wanted:
        assert name == "classroom"
    elif len(lowered) <= 63:
        assert kept == wanted  # nothing needed cutting
    else:
        assert wanted.startswith(kept)


# --- quoting ---------------------------------------------------------------------------


def test_quote_and_the_step_scripts_words():
    assert quote("numpy>=1.2,<2") == "'numpy>=1.2,<2'"
    assert quote("graphviz") == "graphviz"
    assert words(["a b", "c", "it's"]) == "'a b' c 'it'\"'\"'s'"
    assert words([]) == ""


def test_quoted_words_reach_sh_as_the_same_words():
    values = ["numpy>=1.20,<2", "a b", "$(id)", "it's", "*", "~", "#x", "-n"]
    assert sh_words(words(values)) == values


# --- property: anything accepted is one plain, quotable shell word ---------------------

TEXT_CHECKERS = [
    check_slug,
    check_droplet_name,
    check_hostname,
    check_host,
    check_email,
    check_hub_username,
    check_unix_username,
    check_apt_package,
    check_conda_spec,
    check_conda_channel,
    check_pip_requirement,
    check_tljh_version,
    check_memory,
    check_branch,
    check_content_path,
    check_host_key,
]

# Metacharacters a value may hold only because its grammar needs them.
GRAMMAR_NEEDS = {
    check_apt_package: set("~"),
    check_conda_spec: set("<>=!,*"),
    check_pip_requirement: set("<>=!,~[]*"),
}

# Text biased towards the characters that matter: shell syntax, option dashes, unicode.
risky_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(sorted(SHELL_METACHARACTERS) + list("-=.:/@+, \n\x00\t")),
        st.characters(codec="utf-8"),
        st.sampled_from("abcxyz0123456789"),
    ),
    max_size=40,
)
looks_valid_text = st.from_regex(r"[a-z0-9][a-z0-9.:=/@+,<>!~*-]{0,30}", fullmatch=True)


def assert_safe(checker, value: str) -> None:
    try:
        accepted = checker(value)
    except Invalid:
        return
    assert isinstance(accepted, str)
    assert shlex.split(quote(accepted)) == [accepted]
    assert not accepted.startswith("-")
    assert "\n" not in accepted and "\x00" not in accepted
    assert accepted.isascii()
    leftover = (set(accepted) & SHELL_METACHARACTERS) - GRAMMAR_NEEDS.get(checker, set())
    assert not leftover, (checker.__name__, accepted)


@pytest.mark.parametrize("checker", TEXT_CHECKERS, ids=lambda c: c.__name__)
@settings(max_examples=300, deadline=None)
@given(value=st.one_of(risky_text, looks_valid_text))
def test_anything_accepted_is_one_safe_shell_word(checker, value):
    assert_safe(checker, value)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from([v for _, v, _ in ACCEPTED]),
            risky_text.filter(lambda t: "\x00" not in t),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_real_sh_sees_quoted_values_as_exactly_those_words(values):
    # Sparingly, with a real shell: it must count as many words as were quoted.
    count = subprocess.run(
        ["sh", "-c", f'set -- {words(values)}; printf %s "$#"'],
        capture_output=True,
        check=True,
    ).stdout
    assert count == str(len(values)).encode()
    assert sh_words(words(values)) == values


# --- YAML -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        (b"a: &x [1]\nb: *x\n", 1, "anchors and aliases"),
        (b"a: 1\nb: *x\n", 2, "anchors and aliases"),
        (b"a: [\n", 2, "not valid YAML"),
        (b"a: 1\n---\nb: 2\n", 2, "single document"),
        (b"[" * 40 + b"]" * 40, 1, "nests deeper"),
        (b"a: 1\nb: \xff\n", 2, "not UTF-8"),
        (b"a: 1\n\tb: 2\n", 2, "not valid YAML"),
    ],
)
def test_yaml_refusals_name_the_line(content, line, message):
    with pytest.raises(ConfigErrors) as raised:
        parse_yaml(content, "f.yml")
    (error,) = raised.value.errors
    assert (error.file, error.line) == ("f.yml", line)
    assert message in error.message


def test_yaml_over_64_kib_is_refused_before_parsing():
    with pytest.raises(ConfigErrors, match="at most 64 KiB"):
        parse_yaml(b"a: " + b"x" * validate.MAX_YAML_BYTES, "f.yml")


def test_billion_laughs_is_refused():
    bomb = b'a: &a ["lol","lol"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b]\n'
    with pytest.raises(ConfigErrors, match="anchors and aliases"):
        parse_yaml(bomb, "f.yml")


def test_yaml_python_tags_are_not_constructed():
    node = parse_yaml(b"a: !!python/object/apply:os.system [id]\n", "f.yml")
    reader = YamlReader("f.yml")
    keys = reader.mapping(node, "", ["a"])
    assert reader.text(keys["a"][1], "a") is None
    assert "must be text" in reader.errors[0].message


def test_reader_reports_duplicates_unknown_keys_and_types_with_lines():
    node = parse_yaml(b"a: 1\nb: x\na: 2\nzz: 3\nc: [1]\n", "f.yml")
    reader = YamlReader("f.yml")
    keys = reader.mapping(node, "top", ["a", "b", "c"])
    assert reader.integer(keys["b"][1], "top.b") is None
    assert reader.text(keys["c"][1], "top.c") is None
    assert [(e.line, e.key) for e in reader.errors] == [
        (3, "top.a"),
        (4, "top.zz"),
        (2, "top.b"),
        (5, "top.c"),
    ]
    assert "given twice (first on line 1)" in reader.errors[0].message
    assert "allowed here: a, b, c" in reader.errors[1].message


def test_reader_keeps_numbers_as_written_when_text_is_wanted():
    node = parse_yaml(b"v: 2.0\nn: 0012\n", "f.yml")
    reader = YamlReader("f.yml")
    keys = reader.mapping(node, "", ["v", "n"])
    assert reader.text(keys["v"][1], "v") == "2.0"
    assert reader.text(keys["n"][1], "n") == "0012"


def test_yaml_compose_gives_nodes_not_values():
    assert isinstance(parse_yaml(b"a: 1\n", "f.yml"), yaml.MappingNode)
    assert parse_yaml(b"", "f.yml") is None
