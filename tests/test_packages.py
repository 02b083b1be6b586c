"""Tests for deploy.course.packages: repo2docker's lookup order, the file formats, and
their errors."""

from __future__ import annotations

import pytest

from deploy.course.packages import package_folder, parse_apt, parse_environment, read_packages
from deploy.model import ConfigErrors, Packages

ENVIRONMENT = b"""\
name: course
channels:
  - conda-forge
  - defaults
dependencies:
  - python=3.11
  - numpy>=1.26,<2
  - pip
  - pip:
    - nbgitpuller==1.2.1
    - requests[socks]
"""


def errors_of(files: dict[str, bytes]) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigErrors) as raised:
        read_packages(files)
    return [(e.file, e.line, e.key) for e in raised.value.errors]


def test_no_package_files_means_nothing_to_install():
    assert read_packages({"README.md": b"# hi"}) == Packages()


def test_environment_yml_gives_channels_conda_and_pip():
    packages = read_packages({"environment.yml": ENVIRONMENT})
    assert packages.conda_channels == ("conda-forge", "defaults")
    assert packages.conda == ("python=3.11", "numpy>=1.26,<2", "pip")
    assert packages.pip == ("nbgitpuller==1.2.1", "requests[socks]")
    assert packages.sources == {
        "conda_channels": "environment.yml",
        "conda": "environment.yml",
        "pip": "environment.yml",
    }


def test_requirements_and_apt_files():
    packages = read_packages(
        {
            "requirements.txt": b"# course\nnumpy>=1.2  # inline comment\n\npandas\n",
            "apt.txt": b"# tools\ngraphviz\nlibgl1=1.7.0-1\n",
        }
    )
    assert packages.pip == ("numpy>=1.2", "pandas")
    assert packages.apt == ("graphviz", "libgl1=1.7.0-1")
    assert packages.sources == {"pip": "requirements.txt", "apt": "apt.txt"}


@pytest.mark.parametrize(
    ("paths", "folder"),
    [
        (["apt.txt"], ""),
        (["binder/apt.txt", "apt.txt"], "binder/"),
        (["binder/postBuild", "apt.txt"], "binder/"),
        ([".binder/apt.txt", "apt.txt"], ".binder/"),
        (["binder/apt.txt", ".binder/apt.txt"], "binder/"),
        (["docs/binder/apt.txt"], ""),
    ],
)
def test_package_folder_follows_repo2docker(paths, folder):
    assert package_folder(paths) == folder


def test_only_the_binder_folder_is_read_when_it_exists():
    packages = read_packages(
        {
            "binder/apt.txt": b"git\n",
            ".binder/apt.txt": b"curl\n",
            "apt.txt": b"vim\n",
            "requirements.txt": b"numpy\n",
        }
    )
    assert packages.apt == ("git",)
    assert packages.pip == ()
    assert packages.sources == {"apt": "binder/apt.txt"}


def test_dot_binder_is_read_when_there_is_no_binder_folder():
    packages = read_packages({".binder/requirements.txt": b"numpy\n", "apt.txt": b"vim\n"})
    assert packages.pip == ("numpy",)
    assert packages.apt == ()
    assert packages.sources == {"pip": ".binder/requirements.txt"}


def test_a_binder_folder_without_package_files_still_hides_the_root_ones():
    assert read_packages({"binder/runtime.txt": b"python-3.11", "apt.txt": b"vim\n"}) == Packages()


def test_requirements_txt_is_ignored_beside_environment_yml_as_on_binder():
    packages = read_packages({"environment.yml": ENVIRONMENT, "requirements.txt": b"scipy\n"})
    assert "scipy" not in packages.pip
    assert packages.ignored == ("requirements.txt",)


def test_a_bad_requirements_txt_beside_environment_yml_is_not_an_error():
    # It is not read at all, as on Binder: the packages are environment.yml's alone.
    packages = read_packages({"environment.yml": ENVIRONMENT, "requirements.txt": b"-e .\n"})
    alone = read_packages({"environment.yml": ENVIRONMENT})
    assert (packages.conda, packages.pip, packages.apt) == (alone.conda, alone.pip, alone.apt)
    assert packages.ignored == ("requirements.txt",)


def test_template_files_are_read():
    packages = read_packages(
        {
            "conda_packages.yml": (
                b"channels: [conda-forge]\ndependencies: [numpy, {pip: [tqdm]}]\n"
            ),
            "apt_get_packages.txt": b"graphviz\n",
            "requirements.txt": b"pandas\n",
        }
    )
    assert packages.conda == ("numpy",)
    assert packages.apt == ("graphviz",)
    # The template's file is not Binder's: requirements.txt still counts beside it.
    assert packages.pip == ("tqdm", "pandas")
    assert packages.sources == {
        "conda_channels": "conda_packages.yml",
        "conda": "conda_packages.yml",
        "pip": "conda_packages.yml, requirements.txt",
        "apt": "apt_get_packages.txt",
    }
    assert packages.ignored == ()


def test_binder_files_win_over_their_template_twins():
    packages = read_packages(
        {
            "apt.txt": b"git\n",
            "apt_get_packages.txt": b"curl\n",
            "environment.yml": b"dependencies: [numpy]\n",
            "conda_packages.yml": b"dependencies: [scipy]\n",
        }
    )
    assert packages.apt == ("git",)
    assert packages.conda == ("numpy",)
    assert set(packages.ignored) == {"apt_get_packages.txt", "conda_packages.yml"}


def test_duplicates_are_removed_keeping_the_first():
    packages = read_packages({"apt.txt": b"git\ncurl\ngit\n", "requirements.txt": b"b\na\nb\n"})
    assert packages.apt == ("git", "curl")
    assert packages.pip == ("b", "a")


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"apt.txt": b"git\nbad package\n"}, [("apt.txt", 2, "apt package")]),
        ({"apt.txt": b"git\n\n$(reboot)\n"}, [("apt.txt", 3, "apt package")]),
        ({"apt.txt": b"git=\\\n"}, [("apt.txt", 1, "apt package")]),
        ({"apt_get_packages.txt": b"Git\n"}, [("apt_get_packages.txt", 1, "apt package")]),
        (
            {"requirements.txt": b"numpy\n-r base.txt\n"},
            [("requirements.txt", 2, "pip requirement")],
        ),
        ({"requirements.txt": b"-e .\n"}, [("requirements.txt", 1, "pip requirement")]),
        (
            {"requirements.txt": b"--index-url https://x.example.org\n"},
            [("requirements.txt", 1, "pip requirement")],
        ),
        (
            {"requirements.txt": b"a\nb @ http://example.org/b.whl\n"},
            [("requirements.txt", 2, "pip requirement")],
        ),
        (
            {"requirements.txt": b"numpy \\\n  >=1\n"},
            [
                ("requirements.txt", 1, "pip requirement"),
                ("requirements.txt", 2, "pip requirement"),
            ],
        ),
        (
            {"binder/requirements.txt": b"ok\nnot ok!\n"},
            [("binder/requirements.txt", 2, "pip requirement")],
        ),
        (
            {"environment.yml": b"channels: [conda forge]\n"},
            [("environment.yml", 1, "channels[0]")],
        ),
        (
            {"environment.yml": b"dependencies:\n  - numpy\n  - numpy;reboot\n"},
            [("environment.yml", 3, "dependencies[1]")],
        ),
        (
            {"environment.yml": b"dependencies:\n  - pip:\n    - ok\n    - -e .\n"},
            [("environment.yml", 4, "dependencies[0].pip[1]")],
        ),
        (
            {"environment.yml": b"dependencies:\n  - npm: [x]\n"},
            [("environment.yml", 2, "dependencies[0].npm")],
        ),
        ({"environment.yml": b"variables: {A: 1}\n"}, [("environment.yml", 1, "variables")]),
        ({"environment.yml": b"dependencies: numpy\n"}, [("environment.yml", 1, "dependencies")]),
        (
            {"environment.yml": b"dependencies:\n  - [numpy]\n"},
            [("environment.yml", 2, "dependencies[0]")],
        ),
        ({"environment.yml": b"- numpy\n"}, [("environment.yml", 1, "")]),
        ({"environment.yml": b"dependencies: &d [a]\n"}, [("environment.yml", 1, "")]),
        (
            {"conda_packages.yml": b"dependencies:\n  - ok\n  - true\n"},
            [("conda_packages.yml", 3, "dependencies[1]")],
        ),
        ({"apt.txt": b"ok\n\xff\n"}, [("apt.txt", 2, "")]),
    ],
)
def test_errors_name_file_line_and_entry(files, expected):
    assert errors_of(files) == expected


def test_every_bad_file_and_line_is_reported_at_once():
    found = errors_of(
        {
            "environment.yml": b"dependencies: [ok, 'bad spec!']\n",
            "apt.txt": b"Bad\nok\nAlso Bad\n",
        }
    )
    assert found == [
        ("environment.yml", 1, "dependencies[1]"),
        ("apt.txt", 1, "apt package"),
        ("apt.txt", 3, "apt package"),
    ]


def test_counts_and_sizes_are_bounded():
    many = b"".join(b"pkg%d\n" % i for i in range(201))
    assert errors_of({"apt.txt": many}) == [("apt.txt", 201, "")]
    assert read_packages({"apt.txt": many[: many.index(b"pkg200")]}).apt[-1] == "pkg199"
    huge = b"# " + b"x" * (64 * 1024)
    assert errors_of({"requirements.txt": huge}) == [("requirements.txt", None, "")]
    deps = b"dependencies:\n" + b"".join(b"  - p%d\n" % i for i in range(201))
    assert errors_of({"environment.yml": deps}) == [("environment.yml", 2, "dependencies")]


def test_error_messages_say_what_is_allowed():
    with pytest.raises(ConfigErrors) as raised:
        parse_apt(b"two packages\n", "apt.txt")
    assert str(raised.value) == "apt.txt:1: apt package: 'two packages': put one package per line"
    with pytest.raises(ConfigErrors, match=r"allowed here: name, channels, dependencies, prefix"):
        parse_environment(b"channel: [x]\n", "environment.yml")


def test_empty_environment_file_is_empty():
    assert parse_environment(b"", "environment.yml") == ([], [], [])
