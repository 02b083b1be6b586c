"""Courses' own SSH keys: made on first need, encrypted at rest, one per repository id; and
the two scripts that move a server's ``authorized_keys`` to a course's key, run by bash."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import asyncssh
import pytest

from bot.course_keys import KEY_FILE, CourseKeys
from bot.store import Store
from deploy import operations
from deploy.course.config import load_course
from deploy.keys import (
    ServiceKey,
    course_key_name,
    derive_course_key,
    forget_key_script,
    public_line_of,
    trust_key_script,
)
from deploy.providers.droplets import DropletDriver
from deploy.ssh import SSHPool
from tests.support.engine import MemoryRecords, noop

SECRET = b"another test secret, only for deriving keys="


@pytest.fixture
async def store(tmp_path: Path):
    opened = await Store.open(tmp_path / "data")
    yield opened
    await opened.close()


async def test_a_course_key_is_made_once_and_kept_encrypted(store, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    keys = CourseKeys(store, data_dir)
    first = await keys.for_repository(7)
    again = await CourseKeys(store, data_dir).for_repository(7)
    assert again.public_line == first.public_line
    assert first.name == course_key_name(7) == "lc-course-7"
    assert first.public_line.endswith(" lc-course-7")
    assert (data_dir / KEY_FILE).stat().st_mode & 0o777 == 0o600

    stored = await store.course_key(7)
    assert stored is not None and stored.public_line == first.public_line
    private = first.private.export_private_key("openssh")
    seed = first.private.pyca_key.private_bytes_raw()
    await store.close()
    on_disk = b"".join(p.read_bytes() for p in data_dir.glob("classroom.sqlite3*"))
    assert stored.ciphertext in on_disk
    assert private not in on_disk
    assert seed not in on_disk
    assert b"PRIVATE KEY" not in on_disk


async def test_each_repository_gets_its_own_key(store, tmp_path: Path) -> None:
    keys = CourseKeys(store, tmp_path / "data")
    lines = {(await keys.for_repository(n)).public_line.split()[1] for n in (1, 2, 3)}
    assert len(lines) == 3


async def test_a_lost_database_gives_the_same_key_again(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first_store = await Store.open(data_dir)
    first = await CourseKeys(first_store, data_dir).for_repository(42)
    await first_store.close()
    for path in data_dir.glob("classroom.sqlite3*"):
        path.unlink()
    second_store = await Store.open(data_dir)
    try:
        second = await CourseKeys(second_store, data_dir).for_repository(42)
    finally:
        await second_store.close()
    assert second.public_line == first.public_line


async def test_a_replaced_key_file_is_a_clear_error(store, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    await CourseKeys(store, data_dir).for_repository(5)
    (data_dir / KEY_FILE).unlink()
    with pytest.raises(RuntimeError, match=r"course-keys\.key"):
        await CourseKeys(store, data_dir).for_repository(5)


async def test_the_resolver_finds_the_key_by_the_course_repository_id(store, tmp_path) -> None:
    keys = CourseKeys(store, tmp_path / "data")
    assert await keys("octo-org/unknown") is None
    await store.add_courses(1, [("octo-org/no-id", None)])
    assert await keys("octo-org/no-id") is None
    await store.add_courses(1, [("octo-org/physics", 99)])
    found = await keys("octo-org/physics")
    assert found is not None and found.public_line == (await keys.for_repository(99)).public_line


def test_derived_keys_depend_on_the_secret_and_the_id() -> None:
    key = derive_course_key(SECRET, 1)
    assert derive_course_key(SECRET, 1).public_line == key.public_line
    assert derive_course_key(SECRET, 2).public_line != key.public_line
    assert derive_course_key(SECRET[::-1], 1).public_line != key.public_line
    assert public_line_of(key.private, key.name) == key.public_line


# --- the scripts that move authorized_keys, run by a real bash in a scratch HOME --------


def run(script: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(home), "PATH": os.environ["PATH"]}
    return subprocess.run(
        ["bash", "-s"], input=script, text=True, capture_output=True, env=env, check=False
    )


COURSE = derive_course_key(SECRET, 10).public_line
SERVICE = derive_course_key(SECRET, 11).public_line.replace("lc-course-11", "littlest-classroom")
OTHER = derive_course_key(SECRET, 12).public_line.replace("lc-course-12", "admin@laptop")


def test_trusting_a_key_adds_one_line_however_often_it_runs(tmp_path: Path) -> None:
    ssh = tmp_path / ".ssh"
    ssh.mkdir()
    keys = ssh / "authorized_keys"
    keys.write_text(f"{SERVICE}\n{OTHER}")  # no newline at the end
    for _ in range(2):
        assert run(trust_key_script(COURSE), tmp_path).returncode == 0
    assert keys.read_text().splitlines() == [SERVICE, OTHER, COURSE]


def test_trusting_a_key_makes_the_file_when_there_is_none(tmp_path: Path) -> None:
    assert run(trust_key_script(COURSE), tmp_path).returncode == 0
    keys = tmp_path / ".ssh" / "authorized_keys"
    assert keys.read_text() == COURSE + "\n"
    assert keys.stat().st_mode & 0o777 == 0o600


def test_forgetting_the_service_key_keeps_every_other_line_and_the_mode(tmp_path: Path) -> None:
    ssh = tmp_path / ".ssh"
    ssh.mkdir()
    keys = ssh / "authorized_keys"
    keys.write_text(f"{OTHER}\n{SERVICE}\n{COURSE}\n")
    keys.chmod(0o640)
    assert run(forget_key_script(COURSE, SERVICE), tmp_path).returncode == 0
    assert keys.read_text().splitlines() == [OTHER, COURSE]
    assert keys.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in ssh.iterdir()] == ["authorized_keys"]
    # Again: nothing left to do.
    assert run(forget_key_script(COURSE, SERVICE), tmp_path).returncode == 0
    assert keys.read_text().splitlines() == [OTHER, COURSE]


def test_the_service_key_stays_while_the_course_key_is_missing(tmp_path: Path) -> None:
    ssh = tmp_path / ".ssh"
    ssh.mkdir()
    keys = ssh / "authorized_keys"
    keys.write_text(f"{SERVICE}\n")
    assert run(forget_key_script(COURSE, SERVICE), tmp_path).returncode != 0
    assert keys.read_text() == f"{SERVICE}\n"


@pytest.mark.parametrize(
    "line", ["ssh-ed25519 AAAA$(reboot)", "ssh-ed25519 'AAAAAAAAAAAAAAAAAAAA'", "just-one-word"]
)
def test_a_line_that_is_not_a_key_never_reaches_a_script(line: str) -> None:
    with pytest.raises(ValueError, match="not an OpenSSH public key line"):
        trust_key_script(line)
    with pytest.raises(ValueError, match="not an OpenSSH public key line"):
        forget_key_script(COURSE, line)


# --- a new droplet trusts only its course's key (the fake DigitalOcean) ----------------


async def test_a_new_droplet_trusts_only_its_course_key(do_fake, tmp_path: Path) -> None:
    course_keys = {"math/a": derive_course_key(SECRET, 1), "math/b": derive_course_key(SECRET, 2)}

    async def resolve(course: str):
        return course_keys[course]

    service = asyncssh.generate_private_key("ssh-ed25519")
    engine = operations.Engine(
        records=MemoryRecords(),
        ssh=SSHPool(),
        service_key=ServiceKey(service, public_line_of(service), "", "", tmp_path / "k"),
        droplets=DropletDriver(do_fake.token, poll_interval=0.001),
        key_resolver=resolve,
    )
    for repo_id, course in enumerate(course_keys, start=1):
        owner, repo = course.split("/")
        text = f"server:\n  provider: digitalocean\n  name: {repo}-hub\nhub:\n  admins: [ada]\n"
        config = load_course({".github/classroom.yml": text.encode()}, owner, repo, repo_id)
        await operations.provision(engine, course, config, noop)

    keys = {key["name"]: key for key in do_fake.ssh_keys}
    assert sorted(keys) == ["lc-course-1", "lc-course-2"]
    for (course, key), create in zip(
        course_keys.items(), do_fake.calls("POST", "/v2/droplets"), strict=True
    ):
        uploaded = keys[key.name]
        assert uploaded["public_key"] == key.public_line
        assert create.body["ssh_keys"] == [uploaded["id"]], course
    assert not any(k["public_key"].split()[1] in public_line_of(service) for k in keys.values())
