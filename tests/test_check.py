"""``python -m bot check``: the example course passes, every kind of bad file fails with its
file and line, and nothing needs the service's settings or the network."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bot.__main__ import main
from bot.github.readme import END_MARKER, START_MARKER
from bot.local_check import (
    check_course,
    course_name,
    github_course,
    origin_url,
    read_course_files,
    run_check,
)
from deploy.course.config import (
    BACKUP_KEYS,
    CONTENT_KEYS,
    HUB_KEYS,
    LIMIT_KEYS,
    MONITOR_KEYS,
    SERVER_KEYS,
    STORAGE_KEYS,
    TOP_KEYS,
    load_course,
)
from deploy.model import HubSpec, MonitorSpec, ServerSpec

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "course"

GOOD_CONFIG = "server:\n  provider: digitalocean\n  size: s-2vcpu-4gb\n"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def check(path: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run_check(path, stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def git(path: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True)


# --- owner and repository -------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/alice/phys101.git",
        "https://github.com/alice/phys101",
        "https://github.com/alice/phys101/",
        "https://token@github.com/alice/phys101.git",
        "git@github.com:alice/phys101.git",
        "ssh://git@github.com/alice/phys101.git",
        "ssh://git@github.com:22/alice/phys101",
    ],
)
def test_github_remotes_name_owner_and_repo(url):
    assert github_course(url) == ("alice", "phys101")


@pytest.mark.parametrize(
    "url",
    [
        "https://gitlab.com/alice/phys101.git",
        "https://github.com.evil.example/alice/phys101",
        "/srv/git/phys101.git",
        "https://github.com/alice",
        "https://github.com/alice/phys101/tree/main",
        "",
    ],
)
def test_other_remotes_are_not_github_courses(url):
    assert github_course(url) is None


def test_without_a_github_remote_the_folder_names_the_course(tmp_path):
    folder = tmp_path / "stats202"
    folder.mkdir()
    assert course_name(folder, None) == ("course", "stats202")
    assert course_name(folder, "https://gitlab.com/a/b.git") == ("course", "stats202")
    assert course_name(folder, "git@github.com:bob/stats.git") == ("bob", "stats")


def test_origin_of_a_checkout_names_the_course_and_its_droplet(tmp_path):
    repo = write(tmp_path / "checkout", {"apt.txt": "graphviz\n"})
    git(repo, "init", "-q")
    git(repo, "remote", "add", "origin", "https://github.com/Alice/Phys101.git")
    status, out, _ = check(repo)
    assert status == 0
    assert out.startswith("Alice/Phys101: the course configuration is valid.")
    # The default droplet name comes from the same owner/repo as on the service.
    assert "create alice-phys101 " in out


def test_a_folder_inside_another_repository_does_not_take_its_origin(tmp_path):
    repo = tmp_path / "tools"
    inner = write(repo / "examples" / "mine", {"apt.txt": "graphviz\n"})
    git(repo, "init", "-q")
    git(repo, "remote", "add", "origin", "https://github.com/alice/tools.git")
    assert origin_url(repo) == "https://github.com/alice/tools.git"
    assert origin_url(inner) is None
    assert course_name(inner, origin_url(inner)) == ("course", "mine")


# --- which files are read -------------------------------------------------------------


def test_reads_the_files_the_service_reads_and_nothing_else(tmp_path):
    write(
        tmp_path,
        {
            ".github/classroom.yml": GOOD_CONFIG,
            ".github/workflows/ci.yml": "on: push\n",
            "apt.txt": "graphviz\n",
            "README.md": "# hi\n",
            "week1/intro.ipynb": "{}",
            "binder/postBuild": "echo hi\n",
            "notes.txt": "not read\n",
            "data/big.csv": "a,b\n",
            ".git/objects/x.ipynb": "{}",
            ".git/apt.txt": "not a package file\n",
        },
    )
    assert sorted(read_course_files(tmp_path)) == [
        ".github/classroom.yml",
        "README.md",
        "apt.txt",
        "binder/postBuild",
        "week1/intro.ipynb",
    ]


def test_links_are_not_followed(tmp_path):
    outside = write(tmp_path / "outside", {"apt.txt": "rm -rf /\n"})
    course = tmp_path / "course"
    course.mkdir()
    (course / "apt.txt").symlink_to(outside / "apt.txt")
    assert read_course_files(course) == {}
    assert check(course)[0] == 0


# --- the example course ---------------------------------------------------------------


def test_example_course_is_valid_and_its_plan_names_its_packages():
    status, out, err = check(EXAMPLE)
    assert (status, err) == (0, "")
    for package in ("numpy", "pandas", "matplotlib", "pint", "graphviz"):
        assert package in out
    # The plan for a fresh server: a droplet, TLJH, then the packages from their files.
    for row in ("| provision |", "| tljh-install |", "| apt |", "| conda |", "| pip |"):
        assert row in out
    assert "apt.txt adds graphviz" in out
    assert "environment.yml adds numpy, pandas, matplotlib" in out


def test_example_config_shows_every_key_with_designs_defaults():
    text = (EXAMPLE / ".github" / "classroom.yml").read_text()
    for key in (
        *TOP_KEYS,
        *SERVER_KEYS,
        *HUB_KEYS,
        *LIMIT_KEYS,
        *CONTENT_KEYS,
        *MONITOR_KEYS,
        *STORAGE_KEYS,
        *BACKUP_KEYS,
    ):
        assert f"{key}:" in text, f"{key} is not shown in the example"
    files = read_course_files(EXAMPLE)
    config = load_course(files, "physics", "phys101")
    assert config.server == ServerSpec(name="physics-phys101")
    assert config.hub == HubSpec()
    assert config.monitor == MonitorSpec()
    assert config.server.provider == "digitalocean"
    assert config.packages.conda_channels == ("conda-forge",)
    assert config.badges is True and config.prune is False


def test_example_readme_has_the_badge_markers_in_order():
    text = (EXAMPLE / "README.md").read_text()
    assert 0 <= text.index(START_MARKER) < text.index(END_MARKER)


def test_example_notebook_is_nbformat_4_with_markdown_and_code():
    notebook = json.loads((EXAMPLE / "StartHere.ipynb").read_text())
    assert notebook["nbformat"] == 4
    assert [cell["cell_type"] for cell in notebook["cells"]] == ["markdown", "code"]
    code = notebook["cells"][1]
    assert code["outputs"] == [] and code["execution_count"] is None
    config = yaml.safe_load((EXAMPLE / ".github" / "classroom.yml").read_text())
    assert config["content"]["open"] == "StartHere.ipynb"


def test_check_as_a_command_with_no_settings_at_all():
    # Only PATH: no GitHub or DigitalOcean variables, no BOT_ENV_FILE.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "check", "examples/course"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "the course configuration is valid" in done.stdout
    assert "environment.yml adds numpy, pandas, matplotlib" in done.stdout


def test_check_ignores_settings_the_service_would_refuse(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GITHUB_APP_ID", "not-a-number")
    monkeypatch.setenv("BOT_ENV_FILE", str(write(tmp_path, {".env": "PORT=nope\n"}) / ".env"))
    monkeypatch.chdir(tmp_path)
    assert main(["check", str(EXAMPLE)]) == 0
    assert "the course configuration is valid" in capsys.readouterr().out


def test_path_defaults_to_the_working_folder(tmp_path, monkeypatch, capsys):
    write(tmp_path / "here", {"apt.txt": "graphviz\n"})
    monkeypatch.chdir(tmp_path / "here")
    assert main(["check"]) == 0
    assert "course/here: the course configuration is valid." in capsys.readouterr().out


def test_an_empty_folder_is_a_course_with_every_default(tmp_path):
    status, out, _ = check(tmp_path)
    assert status == 0
    assert "s-2vcpu-4gb in syd1" in out and "TLJH 2.0.0" in out


def test_a_missing_folder_is_an_error(tmp_path):
    status, out, err = check(tmp_path / "nope")
    assert (status, out) == (1, "")
    assert "not a folder" in err


# --- bad files: exit 1, every error, each with file and line --------------------------


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {".github/classroom.yml": "server:\n  provider: aws\n"},
            ".github/classroom.yml:2: server.provider: 'aws' is not one of: digitalocean, ssh",
        ),
        (
            {".github/classroom.yml": "hub:\n  signup: open\n  colour: red\n"},
            ".github/classroom.yml:3: hub.colour: is not a known key",
        ),
        (
            {".github/classroom.yml": "hub: [\n"},
            ".github/classroom.yml:2: is not valid YAML",
        ),
        (
            {".github/classroom.yml": "server:\n  size: 's-2; reboot'\n"},
            ".github/classroom.yml:2: server.size:",
        ),
        (
            {".github/classroom.yml": "server:\n  provider: ssh\n"},
            ".github/classroom.yml:2: server.host: is required with provider: ssh",
        ),
        (
            {"apt.txt": "graphviz\nrm -rf /\n"},
            "apt.txt:2: apt package: 'rm -rf /'",
        ),
        (
            {"requirements.txt": "numpy\n\npandas; sys_platform == 'linux'\n"},
            "requirements.txt:3: pip requirement:",
        ),
        (
            {"environment.yml": "channels: [conda-forge]\ndependencies:\n  - 'numpy; x'\n"},
            "environment.yml:3: dependencies[0]:",
        ),
        (
            {"environment.yml": "dependencies:\n  - numpy\n  - pip:\n    - '$(reboot)'\n"},
            "environment.yml:4: dependencies[1].pip[0]:",
        ),
        (
            {"conda_packages.yml": "dependencies:\n  - numpy\n  - 'Bad Name!'\n"},
            "conda_packages.yml:3: dependencies[1]:",
        ),
        (
            {"apt_get_packages.txt": "graphviz\n`reboot`\n"},
            "apt_get_packages.txt:2: apt package:",
        ),
        (
            # binder/ wins over the root, so its file is the one checked.
            {"apt.txt": "graphviz\n", "binder/apt.txt": "\n\nnot;ok\n"},
            "binder/apt.txt:3: apt package:",
        ),
    ],
)
def test_each_kind_of_bad_file_fails_naming_file_and_line(tmp_path, files, expected):
    status, out, err = check(write(tmp_path, files))
    assert status == 1
    assert out == ""
    first = err.splitlines()[0]
    assert first.startswith(expected), err
    assert err.rstrip().endswith("nothing would run.")


def test_every_error_in_every_file_is_printed_at_once(tmp_path):
    write(
        tmp_path,
        {
            ".github/classroom.yml": "server:\n  provider: aws\nhub:\n  signup: maybe\n",
            "apt.txt": "graphviz\nrm -rf /\n",
            "environment.yml": "dependencies:\n  - 'numpy; x'\n",
        },
    )
    status, _, err = check(tmp_path)
    assert status == 1
    lines = err.splitlines()
    assert [line.split(":")[0:2] for line in lines[:-1]] == [
        [".github/classroom.yml", "2"],
        [".github/classroom.yml", "4"],
        ["environment.yml", "2"],
        ["apt.txt", "2"],
    ]
    assert lines[-1].endswith("4 errors; nothing would run.")


def test_a_file_the_service_ignores_is_not_an_error(tmp_path):
    # As on Binder, requirements.txt beside environment.yml has no effect, so its content
    # cannot fail the check; the output says it is not read.
    write(
        tmp_path,
        {"environment.yml": "dependencies:\n  - numpy\n", "requirements.txt": "$(reboot)\n"},
    )
    status, out, _ = check(tmp_path)
    assert status == 0
    assert "Not read: requirements.txt" in out


def test_check_course_returns_the_markdown_plan_the_check_run_shows(tmp_path):
    files = read_course_files(write(tmp_path, {"apt.txt": "graphviz\n"}))
    config, markdown = check_course(files, "alice", "phys101")
    assert config.packages.apt == ("graphviz",)
    assert markdown.startswith("| # | step | why |\n|---|---|---|\n")


def test_a_kubernetes_course_is_checked_with_its_cluster_and_jobs(tmp_path):
    github = tmp_path / "course" / ".github"
    github.mkdir(parents=True)
    (github / "classroom.yml").write_text(
        "server:\n  provider: kubernetes\n  region: fra1\n"
        "  nodes: {size: s-8vcpu-16gb, min: 2, max: 20}\nhub:\n  admins: [alice]\n"
    )
    out = io.StringIO()
    assert run_check(tmp_path / "course", stdout=out, stderr=io.StringIO()) == 0
    text = out.getvalue()
    assert "Kubernetes cluster course-course in fra1, nodes s-8vcpu-16gb, 2 to 20" in text
    assert "Zero to JupyterHub 4.4.0" in text and "TLJH" not in text
    assert (
        text.index("install the hub with sign-up closed")
        < text.index("create the admins' hub accounts: alice")
        < text.index("open sign-up as the course says")
    )
