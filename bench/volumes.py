"""DigitalOcean API calls and SSH round trips for a course's home volume.

Against the fake DigitalOcean API (checked against DigitalOcean's OpenAPI description)
and the loopback SSH target, with a droplet already there: a new course with
``storage`` (volume created, attached, formatted, mounted, TLJH installed), a second
deploy, ``/backup``, a student restore, ``/recover`` after the droplet is lost; and the
time one snapshot takes on the fake.

    .venv/bin/python bench/volumes.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _service

from deploy import operations
from deploy.course.config import load_course
from deploy.keys import ServiceKey
from deploy.model import ServerRecord
from deploy.providers.droplets import DropletDriver
from deploy.ssh import SSHPool
from deploy.volumes import backup
from deploy.volumes import recover as droplet_recovery
from tests.fakes.digitalocean import DigitalOceanFake
from tests.plugins.digitalocean_fake import openapi_validator
from tests.support.engine import REPO_ID, TAGS, MemoryRecords, coded, instant, noop

COURSE = "octo-org/physics101"
NAME = coded("physics101-hub")  # the droplet's name: server.name and the repository id's code
VOLUME = f"{NAME}-home"
# The droplet's SSH is the loopback target's port (server.port applies to droplets too).
CONFIG = "server:\n  name: {name}\n  port: {port}\nhub:\n  admins: [alice]\nstorage: {{size: 20}}\n"


async def one_run(base: Path) -> dict[str, tuple[int, int, int, float]]:
    [target] = _service.start_ssh_targets(base, ("target",))
    fake = DigitalOceanFake(validator=openapi_validator())
    url = await fake.start()
    os.environ["DIGITALOCEAN_END_POINT"] = url
    figures: dict[str, tuple[int, int, int, float]] = {}
    saved: dict[str, Path] = {}
    try:
        target.empty_home()
        droplet = fake.add_droplet(NAME, tags=TAGS)

        def attached(volume, _droplet) -> None:
            folder = target.attach_volume(volume.name)
            if volume.snapshot_id:
                shutil.rmtree(folder)
                shutil.copytree(saved[volume.snapshot_id], folder, symlinks=True)
                target.give_filesystem(volume.name)

        fake.on_attach = attached
        fake.on_detach = lambda volume, _droplet: target.detach_volume(volume.name)
        records = MemoryRecords()
        records.records[COURSE] = ServerRecord(
            provider="digitalocean",
            address=target.host,
            port=target.port,
            droplet_id=droplet.id,
            host_key=target.host_key,
            region=droplet.region,
        )
        ssh = SSHPool()
        engine = operations.Engine(
            records=records,
            ssh=ssh,
            service_key=ServiceKey(
                target.client_key,
                target.client_key.export_public_key("openssh").decode().strip(),
                "",
                "",
                base / "key",
            ),
            droplets=DropletDriver(fake.token, poll_interval=0.001, timeout=5.0, sleep=instant),
        )
        text = CONFIG.format(name="physics101-hub", port=target.port)
        config = load_course({".github/classroom.yml": text.encode()}, "octo-org", "p", REPO_ID)

        async def measure(label: str, work) -> object:
            requests, commands = len(fake.requests), ssh.commands_run
            connections = ssh.connections_opened
            started = time.perf_counter()
            result = await work()
            assert result.conclusion in ("success", "neutral"), result.summary
            figures[label] = (
                len(fake.requests) - requests,
                ssh.commands_run - commands,
                ssh.connections_opened - connections,
                time.perf_counter() - started,
            )
            return result

        await measure(
            "new course (volume, format, mount, TLJH)",
            lambda: operations.deploy(engine, COURSE, config, mode="apply", progress=noop),
        )
        await measure(
            "second deploy (nothing to do)",
            lambda: operations.deploy(engine, COURSE, config, mode="apply", progress=noop),
        )
        home = target.sandbox / "volumes" / VOLUME / "home" / "jupyter-alice"
        home.mkdir(parents=True)
        (home / "hw1.ipynb").write_bytes(b"x" * 4096)
        await measure(
            "/backup (snapshot + retention)",
            lambda: backup.backup(engine, COURSE, config, progress=noop, now=datetime.now(UTC)),
        )
        [snapshot] = fake.snapshots
        saved[snapshot["id"]] = base / "snapshot"
        shutil.copytree(target.sandbox / "volumes" / VOLUME, saved[snapshot["id"]])
        (home / "hw1.ipynb").unlink()
        await measure(
            "/restore SNAPSHOT --student alice",
            lambda: backup.restore_student(
                engine, COURSE, config, snapshot["name"], "alice", progress=noop
            ),
        )
        os.chown(home, 1001, 1001)  # alice's account, made when she first logged in
        fake.new_droplet_address = target.host
        fake.lose_droplet(droplet.id)
        target.replace_machine()
        await measure(
            "/recover (new droplet, volume, users, reserved IP, TLJH, packages)",
            lambda: droplet_recovery.recover(engine, COURSE, config, progress=noop),
        )
        await engine.close()
    finally:
        await fake.close()
        target.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as base:
            runs.append(asyncio.run(one_run(Path(base))))
    print("| operation | DigitalOcean API calls | SSH commands | SSH connections | seconds |")
    print("|---|---|---|---|---|")
    for label in runs[0]:
        calls, commands, connections, _ = runs[0][label]
        seconds = statistics.median(run[label][3] for run in runs)
        print(f"| {label} | {calls} | {commands} | {connections} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
