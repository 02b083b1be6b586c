"""Tests for deploy.course.config: the course config file, its defaults and its errors."""

from __future__ import annotations

import shlex

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from deploy.course.config import CONFIG_FILES, is_course_file, load_course
from deploy.course.validate import SHELL_METACHARACTERS, quote
from deploy.model import (
    CONFIG_PATH,
    ConfigErrors,
    ContentSpec,
    HubSpec,
    MonitorSpec,
    Packages,
    ServerSpec,
)

# DESIGN.md's example, with every key set to a value other than its default where it can be.
FULL = b"""\
server:
  provider: digitalocean
  name: physics101-hub
  region: nyc3
  size: s-4vcpu-8gb
  image: ubuntu-22-04-x64
  user: admin
  port: 2222
  host_key: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl
hub:
  hostname: hub.example.edu
  letsencrypt_email: you@example.edu
  admins: [alice, Bob]
  signup: open
  default_app: classic
  limits: {memory: 1G, cpu: 1.5}
  idle_timeout: 7200
  tljh_version: 2.0.0
content:
  branch: course-2025
  open: StartHere.ipynb
badges: false
monitor: {every: 10m, issue: false}
prune: true
"""


def load(config: bytes | None = None, files: dict[str, bytes] | None = None):
    repo_files = dict(files or {})
    if config is not None:
        repo_files[CONFIG_PATH] = config
    return load_course(repo_files, "PhysicsDept", "Physics_101")


def errors_of(
    config: bytes, files: dict[str, bytes] | None = None
) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigErrors) as raised:
        load(config, files)
    return [(e.file, e.line, e.key) for e in raised.value.errors]


def test_missing_file_means_every_default():
    course = load()
    assert course.owner == "PhysicsDept" and course.repo == "Physics_101"
    assert course.server == ServerSpec(name="physicsdept-physics-101")
    assert course.hub == HubSpec()
    assert course.content == ContentSpec()
    assert course.monitor == MonitorSpec()
    assert course.packages == Packages()
    assert course.badges is True and course.prune is False


@pytest.mark.parametrize("config", [b"", b"# nothing yet\n", b"server:\nhub:\n"])
def test_empty_file_or_sections_mean_defaults(config):
    course = load(config)
    assert course.server == ServerSpec(name="physicsdept-physics-101")
    assert course.hub == HubSpec()


def test_every_documented_key_is_read():
    course = load(FULL)
    assert course.server == ServerSpec(
        provider="digitalocean",
        name="physics101-hub",
        region="nyc3",
        size="s-4vcpu-8gb",
        image="ubuntu-22-04-x64",
        host=None,
        user="admin",
        port=2222,
        host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
    )
    assert course.hub == HubSpec(
        hostname="hub.example.edu",
        letsencrypt_email="you@example.edu",
        admins=("alice", "bob"),
        signup="open",
        default_app="classic",
        memory_limit="1G",
        cpu_limit=1.5,
        idle_timeout=7200,
        tljh_version="2.0.0",
    )
    assert course.content == ContentSpec(branch="course-2025", open="StartHere.ipynb")
    assert course.monitor == MonitorSpec(every_seconds=600, issue=False)
    assert course.badges is False
    assert course.prune is True


def test_ssh_provider_reads_host():
    course = load(b"server: {provider: ssh, host: 203.0.113.7, user: ubuntu}\n")
    assert course.server.provider == "ssh"
    assert course.server.host == "203.0.113.7"
    assert course.server.user == "ubuntu"


def test_numbers_written_without_quotes_are_read_as_written():
    course = load(b"hub:\n  tljh_version: 2.0\n  admins: [12345]\n  limits: {memory: 512}\n")
    assert course.hub.tljh_version == "2.0"
    assert course.hub.admins == ("12345",)
    assert course.hub.memory_limit == "512"


def test_monitor_every_takes_seconds_as_a_number():
    assert load(b"monitor: {every: 3600}\n").monitor.every_seconds == 3600


def test_monitor_signups_is_on_unless_turned_off():
    assert load(b"monitor: {every: 3600}\n").monitor.signups is True
    assert load(b"monitor: {signups: false}\n").monitor.signups is False


def test_packages_come_with_the_config():
    course = load(b"prune: true\n", {"binder/apt.txt": b"graphviz\n", "apt.txt": b"vim\n"})
    assert course.packages.apt == ("graphviz",)
    assert course.packages.sources == {"apt": "binder/apt.txt"}


# Each bad input and the (line, key) its error must name in .github/classroom.yml.
BAD = [
    (b"colour: blue\n", 1, "colour"),
    (b"server:\n  regoin: syd1\n", 2, "server.regoin"),
    (b"server:\n  provider: aws\n", 2, "server.provider"),
    (b"monitor:\n  signups: maybe\n", 2, "monitor.signups"),
    (b"server:\n  name: Physics_Hub\n", 2, "server.name"),
    (b"server:\n  region: SYD1\n", 2, "server.region"),
    (b"server:\n  size: s-2vcpu 4gb\n", 2, "server.size"),
    (b"server:\n  image: ubuntu;reboot\n", 2, "server.image"),
    (b"server:\n  provider: ssh\n", 2, "server.host"),
    (b"server:\n  provider: ssh\n  host: hub..edu\n", 3, "server.host"),
    (b"server:\n  host: hub.example.edu\n", 2, "server.host"),
    (b"server:\n  user: Root\n", 2, "server.user"),
    (b"server:\n  port: '22'\n", 2, "server.port"),
    (b"server:\n  port: 70000\n", 2, "server.port"),
    (b"server:\n  host_key: not a key\n", 2, "server.host_key"),
    (b"server: [a]\n", 1, "server"),
    (b"hub:\n  hostname: localhost\n  letsencrypt_email: a@b.org\n", 2, "hub.hostname"),
    (b"hub:\n  hostname: hub.example.edu\n", 2, "hub.letsencrypt_email"),
    (b"hub:\n  letsencrypt_email: you@example.edu\n", 2, "hub.letsencrypt_email"),
    (b"hub:\n  hostname: h.example.edu\n  letsencrypt_email: nope\n", 3, "hub.letsencrypt_email"),
    (b"hub:\n  admins: alice\n", 2, "hub.admins"),
    (b"hub:\n  admins:\n    - alice\n    - bob smith\n", 4, "hub.admins[1]"),
    (b"hub:\n  admins: [a, 'x/y']\n", 2, "hub.admins[1]"),
    (b"hub:\n  admins: [" + b", ".join(b"u%d" % i for i in range(51)) + b"]\n", 2, "hub.admins"),
    (b"hub:\n  signup: yes\n", 2, "hub.signup"),
    (b"hub:\n  default_app: vscode\n", 2, "hub.default_app"),
    (b"hub:\n  limits: {memory: 1 GB}\n", 2, "hub.limits.memory"),
    (b"hub:\n  limits:\n    cpu: many\n", 3, "hub.limits.cpu"),
    (b"hub:\n  limits:\n    cpu: 0\n", 3, "hub.limits.cpu"),
    (b"hub:\n  limits: {disk: 10G}\n", 2, "hub.limits.disk"),
    (b"hub:\n  idle_timeout: 1h\n", 2, "hub.idle_timeout"),
    (b"hub:\n  idle_timeout: 5\n", 2, "hub.idle_timeout"),
    (b"hub:\n  tljh_version: latest\n", 2, "hub.tljh_version"),
    (b"content:\n  branch: -x\n", 2, "content.branch"),
    (b"content:\n  branch: main\n  open: ../../etc/passwd\n", 3, "content.open"),
    (b"content:\n  open: /home/jovyan\n", 2, "content.open"),
    (b"content:\n  open: [a]\n", 2, "content.open"),
    (b"badges: 1\n", 1, "badges"),
    (b"badges: 'true'\n", 1, "badges"),
    (b"monitor: {every: 30s}\n", 1, "monitor.every"),
    (b"monitor: {every: 2d}\n", 1, "monitor.every"),
    (b"monitor:\n  every: soon\n", 2, "monitor.every"),
    (b"monitor:\n  issue: maybe\n", 2, "monitor.issue"),
    (b"prune: no way\n", 1, "prune"),
    (b"hub:\n  signup: open\n  signup: closed\n", 3, "hub.signup"),
    (b"server: &s {}\nhub: *s\n", 1, ""),
    (b"server: {\n", 2, ""),
    (b"- server\n", 1, ""),
    (b"hub:\n  admins: [\xe9]\n", 2, ""),
]


@pytest.mark.parametrize(("config", "line", "key"), BAD, ids=[repr(b[0])[:40] for b in BAD])
def test_errors_name_file_line_and_key(config, line, key):
    assert errors_of(config) == [(CONFIG_PATH, line, key)]


def test_errors_say_what_is_allowed():
    with pytest.raises(ConfigErrors) as raised:
        load(b"hub:\n  signup: maybe\nserver:\n  flavour: big\n")
    text = str(raised.value)
    assert (
        ".github/classroom.yml:2: hub.signup: 'maybe' is not one of: approval, open, closed" in text
    )
    assert (
        ".github/classroom.yml:4: server.flavour: is not a known key; allowed here: provider, "
        "name, region, size, image, host, user, port, host_key"
    ) in text


def test_every_error_in_config_and_package_files_is_reported_together():
    found = errors_of(
        b"server:\n  region: X\nhub:\n  signup: maybe\n",
        {"apt.txt": b"ok\nnot ok\n"},
    )
    assert found == [
        (CONFIG_PATH, 2, "server.region"),
        (CONFIG_PATH, 4, "hub.signup"),
        ("apt.txt", 2, "apt package"),
    ]


def test_oversized_config_is_refused():
    assert errors_of(b"# " + b"x" * 70_000) == [(CONFIG_PATH, None, "")]


# --- which files the engine reads -------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        ".github/classroom.yml",
        "README.md",
        "environment.yml",
        "binder/environment.yml",
        ".binder/requirements.txt",
        "apt.txt",
        "conda_packages.yml",
        "apt_get_packages.txt",
        "binder/postBuild",
        "StartHere.ipynb",
        "week1/lab.ipynb",
    ],
)
def test_course_files(path):
    assert is_course_file(path)


@pytest.mark.parametrize(
    "path",
    [
        "setup.py",
        "docs/README.md",
        "data/big.csv",
        "week1/apt.txt",
        "binder/sub/x",
        ".github/x.yml",
    ],
)
def test_not_course_files(path):
    assert not is_course_file(path)


def test_config_files_lists_the_exact_paths():
    assert CONFIG_PATH in CONFIG_FILES
    assert {"environment.yml", "binder/apt.txt", ".binder/apt_get_packages.txt"} <= CONFIG_FILES
    assert not any(path.endswith(".ipynb") for path in CONFIG_FILES)


# --- property: arbitrary text in any repository-controlled field ------------------------

# Where each field lives in the file, and how to read the accepted value back.
FIELDS = {
    "server.name": (lambda v: {"server": {"name": v}}, lambda c: [c.server.name]),
    "server.region": (lambda v: {"server": {"region": v}}, lambda c: [c.server.region]),
    "server.size": (lambda v: {"server": {"size": v}}, lambda c: [c.server.size]),
    "server.image": (lambda v: {"server": {"image": v}}, lambda c: [c.server.image]),
    "server.host": (
        lambda v: {"server": {"provider": "ssh", "host": v}},
        lambda c: [c.server.host],
    ),
    "server.user": (lambda v: {"server": {"user": v}}, lambda c: [c.server.user]),
    "hub.hostname": (
        lambda v: {"hub": {"hostname": v, "letsencrypt_email": "a@example.org"}},
        lambda c: [c.hub.hostname],
    ),
    "hub.letsencrypt_email": (
        lambda v: {"hub": {"hostname": "hub.example.org", "letsencrypt_email": v}},
        lambda c: [c.hub.letsencrypt_email],
    ),
    "hub.admins": (lambda v: {"hub": {"admins": [v, "alice"]}}, lambda c: list(c.hub.admins)),
    "hub.limits.memory": (
        lambda v: {"hub": {"limits": {"memory": v}}},
        lambda c: [c.hub.memory_limit],
    ),
    "hub.tljh_version": (lambda v: {"hub": {"tljh_version": v}}, lambda c: [c.hub.tljh_version]),
    "content.branch": (lambda v: {"content": {"branch": v}}, lambda c: [c.content.branch]),
    "content.open": (lambda v: {"content": {"open": v}}, lambda c: [c.content.open]),
}

PACKAGE_FIELDS = {
    "apt.txt": (lambda v: {"apt.txt": v}, lambda c: list(c.packages.apt), set("~")),
    "requirements.txt": (
        lambda v: {"requirements.txt": v},
        lambda c: list(c.packages.pip),
        set("<>=!,~[]*"),
    ),
    "environment.yml conda": (
        lambda v: {"environment.yml": {"dependencies": [v]}},
        lambda c: list(c.packages.conda),
        set("<>=!,*"),
    ),
    "environment.yml pip": (
        lambda v: {"environment.yml": {"dependencies": [{"pip": [v]}]}},
        lambda c: list(c.packages.pip),
        set("<>=!,~[]*"),
    ),
    "environment.yml channels": (
        lambda v: {"environment.yml": {"channels": [v]}},
        lambda c: list(c.packages.conda_channels),
        set(),
    ),
}

field_text = st.one_of(
    st.text(
        alphabet=st.one_of(
            st.sampled_from(sorted(SHELL_METACHARACTERS) + list("-=.:/@+, \n\t\x00")),
            st.characters(codec="utf-8"),
            st.sampled_from("abcdefxyz0123456789"),
        ),
        max_size=40,
    ),
    st.from_regex(r"[a-z0-9][a-z0-9.:=/@+,<>!~*-]{0,30}", fullmatch=True),
    # Near misses of the narrow formats (host names, e-mail, memory), so that many are
    # accepted and the property is tested on accepted values too.
    st.builds(
        lambda head, glue, tail: head + glue + tail,
        st.from_regex(r"[a-z0-9.+-]{1,12}@?[a-z0-9-]{1,10}", fullmatch=True),
        st.sampled_from(["", "", ".", ";", "$", " ", "\n", "'", "-", "..", "/"]),
        st.from_regex(r"[a-z0-9-]{1,10}\.[a-z]{2,5}", fullmatch=True),
    ),
    st.from_regex(r"[0-9]{1,4}[KMGTk ;$]?", fullmatch=True),
)


def accepted_or_refused(files: dict[str, bytes], read) -> list[str] | None:
    try:
        course = load_course(files, "o", "r")
    except ConfigErrors as errors:
        assert errors.errors, "ConfigErrors must hold at least one error"
        for error in errors.errors:
            assert error.file in files
        return None
    return [v for v in read(course) if v is not None]


def assert_one_safe_word(value: str, allowed_metacharacters: set[str]) -> None:
    assert shlex.split(quote(value)) == [value]
    assert not value.startswith("-")
    assert value.isascii() and "\n" not in value and "\x00" not in value
    assert not (set(value) & SHELL_METACHARACTERS) - allowed_metacharacters, value


# For each field, a value it must accept and one it must refuse. Each property runs both
# first and asserts their outcomes, so the accept path (one safe word) and the refuse
# path (errors naming the file) both ran: a field whose validation refused everything
# would otherwise pass "refused or one safe word" on refusals alone.
CONFIG_EXAMPLES: dict[str, tuple[str, str]] = {
    "server.name": ("physics-hub", "physics hub"),
    "server.region": ("nyc3", "nyc3;id"),
    "server.size": ("s-2vcpu-4gb", "s-2vcpu-4gb$(id)"),
    "server.image": ("ubuntu-24-04-x64", "ubuntu|id"),
    "server.host": ("hub.example.edu", "hub.example.edu -oProxyCommand=id"),
    "server.user": ("ubuntu", "ubuntu\nid"),
    "hub.hostname": ("hub.example.org", "hub.example.org;id"),
    "hub.letsencrypt_email": ("teacher@example.org", "teacher@example.org`id`"),
    "hub.admins": ("bob", "bob;id"),
    "hub.limits.memory": ("512M", "512M;id"),
    "hub.tljh_version": ("2.0.1", "2.0.1 && id"),
    "content.branch": ("course-2025", "-x"),
    "content.open": ("StartHere.ipynb", "../../etc/passwd"),
}
PACKAGE_EXAMPLES: dict[str, tuple[str, str]] = {
    "apt.txt": ("graphviz", "graphviz;id"),
    "requirements.txt": ("numpy>=1.26", "numpy`id`"),
    "environment.yml conda": ("numpy=1.26", "numpy && id"),
    "environment.yml pip": ("nbgitpuller==1.2.1", "--index-url https://evil.example/simple"),
    "environment.yml channels": ("conda-forge", "conda-forge --override-channels"),
}


def test_every_fuzzed_field_has_an_accepted_and_a_refused_example():
    assert set(CONFIG_EXAMPLES) == set(FIELDS)
    assert set(PACKAGE_EXAMPLES) == set(PACKAGE_FIELDS)


def assert_both_paths_ran(outcomes: dict[str, list[str] | None], examples: tuple[str, str]):
    accepted, refused = examples
    assert outcomes[accepted] is not None and accepted in outcomes[accepted], outcomes[accepted]
    assert outcomes[refused] is None, outcomes[refused]


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_any_text_in_a_config_field_is_refused_or_one_safe_word(field):
    make, read = FIELDS[field]
    accepted, refused = CONFIG_EXAMPLES[field]
    outcomes: dict[str, list[str] | None] = {}

    @settings(max_examples=150, deadline=None)
    @example(value=accepted)
    @example(value=refused)
    @given(value=field_text)
    def check(value):
        content = yaml.safe_dump(make(value), allow_unicode=True).encode("utf-8", "surrogatepass")
        values = outcomes[value] = accepted_or_refused({CONFIG_PATH: content}, read)
        for kept in values or []:
            assert_one_safe_word(kept, set())

    check()
    assert_both_paths_ran(outcomes, CONFIG_EXAMPLES[field])


@pytest.mark.parametrize("field", sorted(PACKAGE_FIELDS))
def test_any_text_in_a_package_file_is_refused_or_one_safe_word(field):
    make, read, grammar = PACKAGE_FIELDS[field]
    accepted, refused = PACKAGE_EXAMPLES[field]
    outcomes: dict[str, list[str] | None] = {}

    @settings(max_examples=150, deadline=None)
    @example(value=accepted)
    @example(value=refused)
    @given(value=field_text)
    def check(value):
        ((path, shape),) = make(value).items()
        if path.endswith(".txt"):
            content = value.encode("utf-8", "surrogatepass")
        else:
            content = yaml.safe_dump(shape, allow_unicode=True).encode("utf-8", "surrogatepass")
        values = outcomes[value] = accepted_or_refused({path: content}, read)
        for kept in values or []:
            assert_one_safe_word(kept, grammar)

    check()
    assert_both_paths_ran(outcomes, PACKAGE_EXAMPLES[field])
