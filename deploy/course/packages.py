"""What the hub's user environment should hold, read from the files Binder reads.

Files are looked up as repo2docker does: the first of ``binder/`` and ``.binder/`` that
exists is the only folder read, otherwise the repository's root.  There:
``environment.yml`` (conda channels and match specs, with a ``pip:`` sub-list),
``requirements.txt`` (pip) and ``apt.txt`` (apt).  As on Binder, ``requirements.txt`` is
ignored when ``environment.yml`` is present: pip packages for a conda environment go in
its ``pip:`` list.  The template repository's ``conda_packages.yml`` (shaped like
``environment.yml``) and ``apt_get_packages.txt`` (like ``apt.txt``) are read too, so its
users move over unchanged; when both a Binder file and its template twin exist, the
Binder file wins and the other is listed in ``Packages.ignored``.

Every entry passes ``deploy.course.validate`` before it is kept; every problem is a
``ConfigError`` naming file and line, and all of them are raised together.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

import yaml

from deploy.course.validate import (
    MAX_PACKAGES_PER_FILE,
    Invalid,
    YamlReader,
    check_apt_package,
    check_conda_channel,
    check_conda_spec,
    check_pip_requirement,
    decode_text,
    parse_yaml,
)
from deploy.model import ConfigError, ConfigErrors, Packages

ParseResult = TypeVar("ParseResult")

# Looked in, in this order; the first that exists is the only one read.
PACKAGE_FOLDERS = ("binder/", ".binder/")
ENVIRONMENT_FILES = ("environment.yml", "conda_packages.yml")
REQUIREMENTS_FILE = "requirements.txt"
APT_FILES = ("apt.txt", "apt_get_packages.txt")
PACKAGE_FILE_NAMES = (*ENVIRONMENT_FILES, REQUIREMENTS_FILE, *APT_FILES)

MAX_TEXT_FILE_BYTES = 64 * 1024
MAX_CHANNELS = 20

# pip's own comment rule: '#' at the start of a line or after whitespace.
_COMMENT = re.compile(r"(?:^|\s)#.*$")


def package_folder(paths: Iterable[str]) -> str:
    """The folder package files are read from: ``binder/``, ``.binder/`` or ``""`` (root)."""
    present = set()
    for path in paths:
        for folder in PACKAGE_FOLDERS:
            if path.startswith(folder):
                present.add(folder)
    for folder in PACKAGE_FOLDERS:
        if folder in present:
            return folder
    return ""


def read_packages(files: Mapping[str, bytes]) -> Packages:
    """The packages the repository asks for; raises ``ConfigErrors`` listing every problem."""
    folder = package_folder(files)
    errors: list[ConfigError] = []
    ignored: list[str] = []
    sources: dict[str, str] = {}
    apt: list[str] = []
    channels: list[str] = []
    conda: list[str] = []
    pip: list[str] = []

    pip_sources: list[str] = []
    environment = _first_present(files, folder, ENVIRONMENT_FILES, ignored)
    if environment is not None:
        result = _collect(errors, parse_environment, files[environment], environment)
        if result is not None:
            channels, conda, pip = result
            if channels:
                sources["conda_channels"] = environment
            if conda:
                sources["conda"] = environment
            if pip:
                pip_sources.append(environment)
    requirements = folder + REQUIREMENTS_FILE
    if requirements in files:
        if environment == folder + ENVIRONMENT_FILES[0]:
            ignored.append(requirements)
        elif found := _collect(errors, parse_requirements, files[requirements], requirements):
            # Only the template's conda_packages.yml can have brought pip entries already.
            pip += found
            pip_sources.append(requirements)
    apt_file = _first_present(files, folder, APT_FILES, ignored)
    if apt_file is not None and (found := _collect(errors, parse_apt, files[apt_file], apt_file)):
        apt = found
        sources["apt"] = apt_file

    if errors:
        raise ConfigErrors(errors)
    if pip_sources:
        sources["pip"] = ", ".join(pip_sources)
    return Packages(
        apt=_unique(apt),
        conda_channels=_unique(channels),
        conda=_unique(conda),
        pip=_unique(pip),
        sources=sources,
        ignored=tuple(ignored),
    )


def _first_present(
    files: Mapping[str, bytes], folder: str, names: tuple[str, ...], ignored: list[str]
) -> str | None:
    """The first of ``names`` present in ``folder``; later ones present go to ``ignored``."""
    present = [folder + name for name in names if folder + name in files]
    ignored.extend(present[1:])
    return present[0] if present else None


def _collect(
    errors: list[ConfigError],
    parse: Callable[[bytes, str], ParseResult],
    content: bytes,
    file: str,
) -> ParseResult | None:
    """``parse(content, file)``, or ``None`` after adding its errors to ``errors``."""
    try:
        return parse(content, file)
    except ConfigErrors as found:
        errors.extend(found.errors)
        return None


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    """``values`` without repeats, keeping the first of each."""
    return tuple(dict.fromkeys(values))


def _lines(content: bytes, file: str) -> list[tuple[int, str]]:
    """(line number, entry) for each non-blank, non-comment line of a text file."""
    if len(content) > MAX_TEXT_FILE_BYTES:
        raise ConfigErrors(
            [ConfigError(file, None, "", f"is {len(content)} bytes; at most 64 KiB is allowed")]
        )
    text = decode_text(content, file)
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = _COMMENT.sub("", line).strip()
        if entry:
            entries.append((number, entry))
    return entries


def _read_lines(
    content: bytes, file: str, what: str, check: Callable[[str], str], hint: str
) -> list[str]:
    """Each line of a one-entry-per-line file, checked; every bad line is an error."""
    errors: list[ConfigError] = []
    values: list[str] = []
    entries = _lines(content, file)
    if len(entries) > MAX_PACKAGES_PER_FILE:
        line = entries[MAX_PACKAGES_PER_FILE][0]
        raise ConfigErrors(
            [
                ConfigError(
                    file,
                    line,
                    "",
                    f"lists {len(entries)} entries; at most {MAX_PACKAGES_PER_FILE} are allowed",
                )
            ]
        )
    for number, entry in entries:
        if entry.endswith("\\"):
            errors.append(
                ConfigError(file, number, what, "line continuations ('\\') are not supported")
            )
            continue
        if " " in entry and hint:
            errors.append(ConfigError(file, number, what, f"{entry[:60]!r}: {hint}"))
            continue
        try:
            values.append(check(entry))
        except Invalid as error:
            errors.append(ConfigError(file, number, what, str(error)))
    if errors:
        raise ConfigErrors(errors)
    return values


def parse_apt(content: bytes, file: str) -> list[str]:
    """``apt.txt``: one Debian package per line, optionally ``=version``; ``#`` comments."""
    return _read_lines(content, file, "apt package", check_apt_package, "put one package per line")


def parse_requirements(content: bytes, file: str) -> list[str]:
    """``requirements.txt``: one PEP 508 requirement per line; no pip options."""
    return _read_lines(content, file, "pip requirement", check_pip_requirement, "")


def parse_environment(content: bytes, file: str) -> tuple[list[str], list[str], list[str]]:
    """``environment.yml``: (channels, conda match specs, pip requirements)."""
    root = parse_yaml(content, file)
    reader = YamlReader(file)
    top = reader.mapping(root, "", ("name", "channels", "dependencies", "prefix"))
    channels: list[str] = []
    conda: list[str] = []
    pip: list[str] = []
    for key in ("name", "prefix"):
        # Both name the environment conda would create; TLJH has its own, so only the
        # type is checked.
        if key in top:
            reader.text(top[key][1], key)
    if "channels" in top:
        for index, node in enumerate(reader.sequence(top["channels"][1], "channels", MAX_CHANNELS)):
            key = f"channels[{index}]"
            if channel := reader.checked_text(node, key, check_conda_channel):
                channels.append(channel)
    if "dependencies" in top:
        items = reader.sequence(top["dependencies"][1], "dependencies", MAX_PACKAGES_PER_FILE)
        for index, node in enumerate(items):
            key = f"dependencies[{index}]"
            if isinstance(node, yaml.MappingNode):
                pip += _pip_section(reader, node, key)
                continue
            if spec := reader.checked_text(node, key, check_conda_spec):
                conda.append(spec)
    if reader.errors:
        raise ConfigErrors(sorted(reader.errors, key=lambda error: error.line or 0))
    return channels, conda, pip


def _pip_section(reader: YamlReader, node: yaml.MappingNode, key: str) -> list[str]:
    """The ``- pip: [...]`` entry of an environment file's dependencies."""
    section = reader.mapping(node, key, ("pip",))
    if "pip" not in section:
        return []
    found = []
    items = reader.sequence(section["pip"][1], f"{key}.pip", MAX_PACKAGES_PER_FILE)
    for index, item in enumerate(items):
        item_key = f"{key}.pip[{index}]"
        if requirement := reader.checked_text(item, item_key, check_pip_requirement):
            found.append(requirement)
    return found
