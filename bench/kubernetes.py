"""DigitalOcean and Kubernetes API calls for a ``provider: kubernetes`` course.

Against the fake DigitalOcean API and the fake Kubernetes API (each checking every
request against its provider's OpenAPI description): a new course (cluster made, chart
installed with sign-up closed, admins' accounts, sign-up opened; the homes volume
served over NFS), then a push that changes nothing, ``/backup``, ``/restore --all`` from
that snapshot, ``/restart``, ``/resize`` and ``/resize --nodes``. Prints the calls of each,
by operation.

    .venv/bin/python bench/kubernetes.py
"""

from __future__ import annotations

import asyncio
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy import operations
from deploy.course.config import load_course
from deploy.keys import ServiceKey
from deploy.providers.droplets import DropletDriver
from deploy.ssh import SSHPool
from deploy.volumes import backup
from tests.fakes.digitalocean import DigitalOceanFake
from tests.fakes.kubernetes import KubernetesFake
from tests.plugins.digitalocean_fake import openapi_validator
from tests.support.engine import MemoryRecords, instant, noop

COURSE = "octo-org/physics101"
CONFIG = b"""\
server:
  provider: kubernetes
  region: fra1
  nodes: {size: s-4vcpu-8gb, min: 1, max: 10}
hub:
  admins: [alice, bob]
storage: {size: 10}
"""


def counted(calls: list[str]) -> str:
    counts = collections.Counter(calls)
    return ", ".join(f"{name} {n}" for name, n in counts.items())


async def main() -> None:
    base = Path(tempfile.mkdtemp(prefix="bench-kube-"))
    do = DigitalOceanFake(validator=openapi_validator())
    os.environ["DIGITALOCEAN_END_POINT"] = await do.start()
    kube = KubernetesFake(base / "cluster")
    await kube.start()
    do.kubeconfig_for = lambda _cluster: kube.kubeconfig()

    async def course_ids(_name: str) -> int:
        return 4242

    engine = operations.Engine(
        records=MemoryRecords(),
        ssh=SSHPool(),
        service_key=ServiceKey(None, "", "", "", base / "key"),  # type: ignore[arg-type]
        droplets=DropletDriver(do.token, poll_interval=0.001, timeout=1.0, sleep=instant),
        course_ids=course_ids,
        cluster_options={"poll_seconds": 0, "sleep": instant},
    )
    config = load_course({".github/classroom.yml": CONFIG}, "octo-org", "physics101")
    snapshot: list[str] = []

    async def backup_now() -> object:
        result = await backup.backup(engine, COURSE, config, progress=noop)
        snapshot.append(result.details["snapshot"])
        return result

    async def restore_all() -> object:
        return await backup.restore_all(
            engine, COURSE, config, snapshot[0], confirm=True, progress=noop
        )

    steps = [
        ("new course", operations.deploy(engine, COURSE, config, mode="apply", progress=noop)),
        ("push, no change", operations.deploy(engine, COURSE, config, mode="apply", progress=noop)),
        ("/backup", backup_now()),
        ("/restore SNAPSHOT --all --confirm", restore_all()),
        ("/restart", operations.restart(engine, COURSE, config, progress=noop)),
        (
            "/resize s-8vcpu-16gb",
            operations.resize(engine, COURSE, config, "s-8vcpu-16gb", progress=noop),
        ),
        (
            "/resize --nodes 2:20",
            operations.resize(engine, COURSE, config, "", nodes=(2, 20), progress=noop),
        ),
    ]
    print("| operation | DigitalOcean calls | Kubernetes calls | Jobs | seconds |")
    print("|---|---|---|---|---|")
    details = []
    for name, call in steps:
        do_before, kube_before, jobs_before = len(do.requests), len(kube.requests), len(kube.jobs())
        started = time.perf_counter()
        result = await call
        seconds = time.perf_counter() - started
        assert result.conclusion in ("success", "neutral"), result.summary
        do_calls = [f"{r.method} {r.path}" for r in do.requests[do_before:]]
        kube_calls = kube.operations()[kube_before:]
        jobs = len(kube.jobs()) - jobs_before
        print(f"| {name} | {len(do_calls)} | {len(kube_calls)} | {jobs} | {seconds:.2f} |")
        details.append((name, do_calls, kube_calls))
    for name, do_calls, kube_calls in details:
        print(
            f"\n{name}:\n  DigitalOcean: {counted(do_calls)}\n  Kubernetes: {counted(kube_calls)}"
        )
    assert not do.validation_errors and not kube.validation_errors
    await engine.close()
    await kube.close()
    await do.close()


if __name__ == "__main__":
    asyncio.run(main())
