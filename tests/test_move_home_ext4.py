"""``/move-home``'s check on real ext4: a folder that once held many files.

On ext4 a directory never shrinks: after holding 400 files it keeps 20 KiB or so, while
its ``cp -a`` copy is compact. The check must compare what a copy keeps (type, mode,
owner, group, file links and bytes, times, checksums), not a directory's size. These
tests make real ext4 filesystems in image files, loop-mounted (root only).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy import operations
from deploy.volumes import movehome
from tests.support.engine import noop
from tests.support.move_home_course import manifest, observed, plant_homes
from tests.support.volume_course import COURSE, VOLUME, course

# The check as it was: each entry's size, directories included.
SIZE_MANIFEST = (
    "manifest() (\n"
    '  cd "$1"\n'
    "  find . -xdev -printf '%y %m %U %G %n %s %T@ %p %l\\n' | LC_ALL=C sort\n"
    "  find . -xdev -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum\n"
    ")"
)


def loop_ext4(image: Path, where: Path, size_mib: int = 64) -> None:
    """A new ext4 filesystem in ``image``, loop-mounted at ``where``."""
    with open(image, "wb") as blank:
        blank.truncate(size_mib * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", str(image)], check=True)
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-o", "loop", str(image), str(where)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"loop mounts are not possible here: {mounted.stderr.strip()}")


def unmount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def ext4(tmp_path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("loop-mounting an ext4 image needs root")
    where = tmp_path / "ext4"
    loop_ext4(tmp_path / "ext4.img", where)
    yield where
    unmount(where)


def once_held_many_files(folder: Path, count: int = 400) -> None:
    """A student's folder that held ``count`` files, all but one deleted since."""
    folder.mkdir(parents=True)
    for number in range(count):
        (folder / f"output-{number:04}.csv").write_text("x" * 100)
    for number in range(1, count):
        (folder / f"output-{number:04}.csv").unlink()


def check(manifest_function: str, source: Path, copy: Path) -> subprocess.CompletedProcess:
    script = (
        f"{manifest_function}\n"
        'manifest "$1" > "$3/source"; manifest "$2" > "$3/copy"\n'
        'diff "$3/source" "$3/copy"\n'
    )
    work = source.parent / "work"
    work.mkdir(exist_ok=True)
    return subprocess.run(
        ["bash", "-c", script, "check", str(source), str(copy), str(work)],
        capture_output=True,
        text=True,
    )


def test_a_copy_of_a_folder_that_once_held_many_files_passes_the_check(ext4) -> None:
    home = ext4 / "home"
    alice = home / "jupyter-alice"
    once_held_many_files(alice / "results")
    (alice / "notes.txt").write_text("alice's notes")
    (alice / "link").symlink_to("notes.txt")
    os.link(alice / "notes.txt", alice / "same.txt")
    for path in (alice, *alice.rglob("*")):
        os.chown(path, 1001, 1001, follow_symlinks=False)
    copy = ext4 / "copy"
    copy.mkdir()
    subprocess.run(["cp", "-a", f"{home}/.", f"{copy}/"], check=True)
    assert (alice / "results").stat().st_size > (copy / "jupyter-alice" / "results").stat().st_size

    old = check(SIZE_MANIFEST, home, copy)
    new = check(movehome.MANIFEST_FUNCTION, home, copy)

    assert old.returncode == 1 and "results" in old.stdout  # the refusal seen on servers
    assert new.returncode == 0, new.stdout + new.stderr

    # The check still sees what a copy must keep: a mode, a folder's time, a byte.
    notes = copy / "jupyter-alice" / "notes.txt"
    os.chmod(notes, 0o600)
    assert "notes.txt" in check(movehome.MANIFEST_FUNCTION, home, copy).stdout
    os.chmod(notes, (alice / "notes.txt").stat().st_mode)
    os.utime(copy / "jupyter-alice" / "results", (1, 1))
    assert "./jupyter-alice/results" in check(movehome.MANIFEST_FUNCTION, home, copy).stdout
    subprocess.run(["cp", "-a", f"{home}/.", f"{copy}/"], check=True)
    assert check(movehome.MANIFEST_FUNCTION, home, copy).returncode == 0
    times = (notes.stat().st_atime_ns, notes.stat().st_mtime_ns)
    notes.write_text("alice's notez")
    os.utime(notes, ns=times)
    assert "notes.txt" in check(movehome.MANIFEST_FUNCTION, home, copy).stdout


@pytest.mark.sshd
async def test_move_home_moves_a_class_where_a_folder_once_held_many_files(
    droplet,
    ssh_target,
    do_fake,
    tmp_path,
) -> None:
    """/move-home over SSH with the droplet's /home on real ext4 (the sandbox binds that
    mount on /home; the volume's folder stays on the test's own filesystem)."""
    if os.geteuid() != 0:
        pytest.skip("loop-mounting an ext4 image needs root")
    do_fake.on_attach = lambda volume, _droplet: ssh_target.attach_volume(volume.name)
    ssh_target.attach_volume("unused")  # turn the target's block storage on
    home = ssh_target.sandbox / "home"
    loop_ext4(tmp_path / "disk.img", home)
    try:
        deployed = await operations.deploy(droplet, COURSE, course(""), mode="apply", progress=noop)
        assert deployed.conclusion == "success", deployed.summary
        plant_homes(home)
        once_held_many_files(home / "jupyter-alice" / "results")
        assert (home / "jupyter-alice" / "results").stat().st_size > 4096
        original = manifest(home)

        result = await movehome.move_home(droplet, COURSE, course(), progress=noop)

        assert result.conclusion == "success", result.summary
        assert manifest(ssh_target.sandbox / "volumes" / VOLUME / "home") == original
        assert (await observed(droplet)).home_on_volume
    finally:
        unmount(home)
