"""Tests for the ``storage`` and ``backup`` keys of ``.github/classroom.yml``."""

from __future__ import annotations

import pytest

from deploy.course.config import load_course
from deploy.model import CONFIG_PATH, BackupSpec, ConfigErrors, StorageSpec


def load(config: str):
    return load_course({CONFIG_PATH: config.encode()}, "PhysicsDept", "Physics_101")


def errors_of(config: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigErrors) as raised:
        load(config)
    return [(e.line, e.key, e.message) for e in raised.value.errors]


def test_no_storage_means_no_volume_and_default_backups():
    course = load("hub: {signup: open}\n")
    assert course.storage is None
    assert course.backup == BackupSpec(every_seconds=86400, keep=14)


def test_the_issues_example_reads_as_written():
    course = load("storage:\n  size: 20\nbackup:\n  every: 1d\n  keep: 14\n")
    assert course.storage == StorageSpec(size_gib=20)
    assert course.backup == BackupSpec(every_seconds=86400, keep=14)


@pytest.mark.parametrize("off", ["off", "Off", "OFF", "'off'"])
def test_every_off_turns_snapshots_off(off):
    course = load(f"storage: {{size: 50}}\nbackup: {{every: {off}, keep: 3}}\n")
    assert course.backup == BackupSpec(every_seconds=None, keep=3)


@pytest.mark.parametrize(
    ("every", "seconds"), [("1h", 3600), ("12h", 43200), ("7d", 604800), ("30d", 2592000)]
)
def test_every_takes_hours_and_days(every, seconds):
    assert load(f"storage: {{size: 5}}\nbackup: {{every: {every}}}\n").backup.every_seconds == (
        seconds
    )


@pytest.mark.parametrize(
    ("config", "line", "key", "says"),
    [
        ("storage: {size: 0}\n", 1, "storage.size", "1 to 16384 GiB"),
        ("storage: {size: 16385}\n", 1, "storage.size", "1 to 16384 GiB"),
        ("storage: {size: 20G}\n", 1, "storage.size", "whole number"),
        ("storage: {size: 2.5}\n", 1, "storage.size", "whole number"),
        ("storage:\n  size: 20\n  type: ext4\n", 3, "storage.type", "allowed here: size"),
        ("storage: 20\n", 1, "storage", "mapping"),
        ("storage: {}\n", 1, "storage.size", "is required"),
        ("storage: {size: 20}\nbackup: {every: 5m}\n", 2, "backup.every", "3600"),
        ("storage: {size: 20}\nbackup: {every: 31d}\n", 2, "backup.every", "2592000"),
        ("storage: {size: 20}\nbackup: {every: daily}\n", 2, "backup.every", "not a duration"),
        ("storage: {size: 20}\nbackup: {every: true}\n", 2, "backup.every", "boolean"),
        ("storage: {size: 20}\nbackup: {keep: 0}\n", 2, "backup.keep", "1 to 24"),
        ("storage: {size: 20}\nbackup: {keep: 25}\n", 2, "backup.keep", "1 to 24"),
        ("storage: {size: 20}\nbackup: {keep: many}\n", 2, "backup.keep", "whole number"),
        ("storage: {size: 20}\nbackup: {when: 1d}\n", 2, "backup.when", "every, keep"),
        ("backup: {every: 1d}\n", 1, "backup", "set storage.size"),
    ],
)
def test_bad_values_name_line_key_and_what_is_allowed(config, line, key, says):
    found = errors_of(config)
    assert [(found_line, found_key) for found_line, found_key, _ in found] == [(line, key)]
    assert says in found[0][2]


@pytest.mark.parametrize("section", ["storage: {size: 20}", "backup: {every: 1d}"])
def test_provider_ssh_refuses_storage_and_backup_and_names_restic(section):
    config = f"server:\n  provider: ssh\n  host: hub.example.edu\n{section}\n"
    found = errors_of(config)
    assert [(line, key) for line, key, _ in found] == [(4, section.split(":")[0])]
    assert "provider: digitalocean" in found[0][2] and "restic or rsync" in found[0][2]


def test_every_error_of_both_sections_at_once():
    found = errors_of("storage: {size: -1}\nbackup: {every: 1s, keep: 1000}\n")
    assert [key for _, key, _ in found] == ["storage.size", "backup.every", "backup.keep"]
