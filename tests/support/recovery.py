"""What a recovered course must show: the students' files and accounts planted before the
droplet is lost, and the checks that everything came back and nothing was destroyed."""

from __future__ import annotations

import contextlib
import os
import secrets
import sqlite3
from pathlib import Path

from tests.support.volume_course import VOLUME


def student_files(ssh_target) -> dict[Path, bytes]:
    """A canary notebook in alice's home and bob's, and the hub's database, on the volume."""
    on_volume = ssh_target.sandbox / "volumes" / VOLUME
    files: dict[Path, bytes] = {}
    for name, uid in (("jupyter-alice", 1001), ("jupyter-bob", 1002)):
        home = on_volume / "home" / name
        home.mkdir(parents=True, exist_ok=True)
        notebook = home / "work.ipynb"
        notebook.write_bytes(secrets.token_bytes(1024))
        for path in (home, notebook):
            os.chown(path, uid, uid)
        files[notebook] = notebook.read_bytes()
    database = on_volume / "tljh-state" / "jupyterhub.sqlite"
    # The hub's accounts as the first deploy left them (alice's row made by the service),
    # then alice set her password on the console and bob signed up and was approved.
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        db.execute(
            "UPDATE users_info SET password=? WHERE username='alice'",
            (b"$2b$12$" + b"a" * 53,),
        )
        db.execute(
            "INSERT INTO users_info (username, password, is_authorized) VALUES (?, ?, 1)",
            ("bob", b"$2b$12$" + b"b" * 53),
        )
    files[database] = database.read_bytes()
    return files


def assert_recovered(record, ssh_target, do_fake, old_id: int, files: dict[Path, bytes]) -> None:
    assert record.droplet_id != old_id and record.droplet_id in do_fake.droplets
    [volume] = do_fake.volumes.values()
    assert volume.name == VOLUME and volume.droplet_ids == [record.droplet_id]
    [reserved] = do_fake.reserved_ips.values()
    assert reserved.droplet_id == record.droplet_id and record.reserved_ip == reserved.ip
    assert ssh_target.accounts() == {
        "jupyter-alice": (1001, 1001),
        "jupyter-bob": (1002, 1002),
    }
    for path, content in files.items():
        assert path.read_bytes() == content, path
    accounts = ssh_target.accounts()
    for path in files:
        if path.name == "work.ipynb":  # each file still belongs to its student's account
            assert path.stat().st_uid == accounts[path.parent.name][0]
    calls = [c["program"] for c in ssh_target.calls()]
    assert calls.count("mkfs.ext4") == 1  # the first deploy's, never again
    assert ssh_target.state("services") == {"jupyterhub": "active", "traefik": "active"}
    never = [
        r
        for r in do_fake.requests
        if r.method == "DELETE" or (r.body or {}).get("type") in ("rebuild", "restore")
    ]
    assert never == []
