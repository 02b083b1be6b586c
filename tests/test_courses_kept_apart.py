"""Safety invariant 11 through the running service: every cloud resource belongs to one
course, keyed by its repository's id, and no course touches another's.

Each test drives two or more courses of one service through /webhook, with the fake GitHub,
the fake DigitalOcean (whose record of requests the assertions read) and loopback SSH
servers standing in for the droplets. Only names the tests read back from the fakes are
used, so each test runs unchanged against code from before courses were kept apart.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

from deploy.providers.droplets import DropletDriver
from tests.plugins.classroom import ssh_course_files
from tests.plugins.github_fake import COURSE_REPO, INSTALLATION_ID
from tests.plugins.service import deliver

pytestmark = pytest.mark.sshd

SECTION_A = "physics-dept/introduction-to-computational-physics-section-a"
SECTION_B = "physics-dept/introduction-to-computational-physics-section-b"


def droplet_config(port: int, extra: str = "", server: str = "") -> bytes:
    return (
        "server:\n  provider: digitalocean\n  region: syd1\n  size: s-2vcpu-4gb\n"
        f"  port: {port}\n{server}hub:\n  admins: [alice]\n{extra}"
    ).encode()


class Courses:
    """Several course repositories of one running service, each acted on as GitHub would."""

    def __init__(self, room, example, do_fake) -> None:
        self.room = room
        self.example = example
        self.do_fake = do_fake
        self.services = room.services
        self.services.engine.droplets = DropletDriver(
            do_fake.token, poll_interval=0.01, shutdown_timeout=1.0
        )
        do_fake.new_droplet_address = room.target.host
        # Which loopback server plays each droplet: the one of the course deploying now,
        # until its droplet is known.
        self.targets: dict[int, Any] = {}
        self.current = room.target
        self.saved: dict[str, tuple[Any, str]] = {}  # snapshot id -> (copy, fs uuid)
        do_fake.on_attach = self._attached
        do_fake.on_detach = lambda volume, droplet: self._target_of(droplet).detach_volume(
            volume.name
        )

    def _target_of(self, droplet) -> Any:
        return self.targets.get(droplet.id, self.current)

    def _attached(self, volume, droplet) -> None:
        target = self._target_of(droplet)
        folder = target.attach_volume(volume.name)
        if volume.snapshot_id and volume.snapshot_id in self.saved:
            copy, uuid = self.saved[volume.snapshot_id]
            shutil.rmtree(folder)
            shutil.copytree(copy, folder, symlinks=True)
            target.give_filesystem(volume.name, uuid)

    def add(self, full_name: str) -> None:
        self.room.github.add_repository(
            full_name, installation_id=INSTALLATION_ID, collaborators={"alice": "admin"}
        )

    def payload(self, event: str, action: str | None, full_name: str) -> dict[str, Any]:
        payload = self.example(event, action) if action else self.example(event)
        repository = dict(payload.get("repository") or {})
        owner, name = full_name.split("/")
        repository.update(
            id=self.room.github.repositories[full_name].id,
            full_name=full_name,
            name=name,
            default_branch="main",
            owner={**(repository.get("owner") or {}), "login": owner},
        )
        payload.update(repository=repository, installation={"id": INSTALLATION_ID, "node_id": "x"})
        return payload

    async def push(self, full_name: str, files: dict[str, bytes], target) -> dict[str, Any]:
        """Commit ``files`` on main and deliver the push; the run of that commit."""
        self.current = target
        sha = self.room.github.put_commit(full_name, files, branch="main")
        payload = self.payload("push", None, full_name)
        payload.update(ref="refs/heads/main", after=sha, deleted=False)
        assert (await deliver(self.room.client, "push", payload)).status == 202
        await self.room.settle()
        record = await self.services.store.get_server(full_name)
        if record is not None and record.droplet_id:
            self.targets.setdefault(record.droplet_id, target)
        return next(
            r.current for r in self.room.github.check_runs.values() if r.current["head_sha"] == sha
        )

    async def comment(self, full_name: str, body: str, target) -> str:
        """``body`` commented by alice on an issue of the course; the service's reply."""
        self.current = target
        issues = [n for (repo, n) in self.room.github.issues if repo == full_name]
        number = issues[0] if issues else self.room.github.add_issue(full_name, "Hub").number
        payload = self.payload("issue_comment", "created", full_name)
        payload["comment"] = {
            **payload["comment"],
            "body": body,
            "id": 777000 + len(self.room.github.comments),
            "user": {**payload["comment"]["user"], "login": "alice", "type": "User"},
            "performed_via_github_app": None,
        }
        payload["sender"] = {**payload["sender"], "login": "alice", "type": "User"}
        issue = self.example("issue_comment", "created")["issue"]
        payload["issue"] = {**issue, "number": number, "pull_request": None}
        assert (await deliver(self.room.client, "issue_comment", payload)).status == 202
        await self.room.settle()
        return self.room.github.issues[(full_name, number)].comments[-1]["body"]

    def files(self, target, config: bytes) -> dict[str, bytes]:
        files = ssh_course_files(target)
        files[".github/classroom.yml"] = config
        return files

    def requests_since(self, start: int) -> list:
        return self.do_fake.requests[start:]


def _values(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set().union(*(_values(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(_values(v) for v in node)) if node else set()
    return {str(node)}


def touching(requests: list, ids: set[str]) -> list[str]:
    """The requests whose path (a segment) or body (a value) names any of ``ids``."""
    return [
        f"{r.method} {r.path} {r.body}"
        for r in requests
        if ids & (set(r.path.split("/")) | _values(r.body) | set(r.query.values()))
    ]


async def test_two_sections_get_separate_resources_and_b_never_touches_as(
    classroom, example, do_fake, make_ssh_target
) -> None:
    target_a, target_b = classroom.target, make_ssh_target()
    for target in (target_a, target_b):
        target.empty_home()
    courses = Courses(classroom, example, do_fake)
    courses.add(SECTION_A)
    courses.add(SECTION_B)
    storage = "storage: {size: 20}\n"

    run_a = await courses.push(
        SECTION_A, courses.files(target_a, droplet_config(target_a.port, storage)), target_a
    )
    assert run_a["conclusion"] == "success", run_a["output"]
    run_b = await courses.push(
        SECTION_B, courses.files(target_b, droplet_config(target_b.port, storage)), target_b
    )
    assert run_b["conclusion"] == "success", run_b["output"]

    record_a = await classroom.services.store.get_server(SECTION_A)
    record_b = await classroom.services.store.get_server(SECTION_B)
    assert record_a.droplet_id != record_b.droplet_id
    droplet_a, droplet_b = (do_fake.droplets[r.droplet_id] for r in (record_a, record_b))
    assert droplet_a.name != droplet_b.name
    [volume_a] = [v for v in do_fake.volumes.values() if record_a.droplet_id in v.droplet_ids]
    [volume_b] = [v for v in do_fake.volumes.values() if record_b.droplet_id in v.droplet_ids]
    assert volume_a.name != volume_b.name and volume_a.id != volume_b.id

    # A backs up (with a student's file on its volume), then B does: separate snapshots.
    homes_a = target_a.sandbox / "volumes" / volume_a.name / "home" / "jupyter-alice"
    homes_a.mkdir(parents=True)
    os.chown(homes_a, 1001, 1001)  # TLJH's user for alice owns her home
    (homes_a / "secret-a.ipynb").write_bytes(b"section A's work")
    assert "taken" in await courses.comment(SECTION_A, "/backup", target_a)
    [snapshot_a] = [s for s in do_fake.snapshots if s["resource_id"] == volume_a.id]
    copy = target_a.base / "snapshot-a"
    shutil.copytree(target_a.sandbox / "volumes" / volume_a.name, copy, symlinks=True)
    courses.saved[snapshot_a["id"]] = (copy, target_a.state("filesystems")[volume_a.name]["uuid"])
    homes_b = target_b.sandbox / "volumes" / volume_b.name / "home" / "jupyter-alice"
    homes_b.mkdir(parents=True)
    os.chown(homes_b, 1001, 1001)
    (homes_b / "b.ipynb").write_bytes(b"section B's work")

    a_ids = {str(droplet_a.id), volume_a.id, snapshot_a["id"], snapshot_a["name"], volume_a.name}
    start = len(do_fake.requests)
    reply = await courses.comment(SECTION_B, "/backup", target_b)
    assert "taken" in reply, reply
    [snapshot_b] = [s for s in do_fake.snapshots if s["resource_id"] == volume_b.id]
    assert snapshot_b["name"] != snapshot_a["name"]
    copy = target_b.base / "snapshot-b"
    shutil.copytree(target_b.sandbox / "volumes" / volume_b.name, copy, symlinks=True)
    courses.saved[snapshot_b["id"]] = (copy, target_b.state("filesystems")[volume_b.name]["uuid"])

    # B cannot restore A's snapshot, a student's home or all of them.
    for command in (
        f"/restore {snapshot_a['name']} --student alice",
        f"/restore {snapshot_a['name']} --all --confirm",
    ):
        reply = await courses.comment(SECTION_B, command, target_b)
        assert "no snapshot of this course" in reply, reply
    assert not (target_b.sandbox / "home" / "jupyter-alice").exists() or not list(
        (target_b.sandbox / "home" / "jupyter-alice").glob("restored-*/secret-a.ipynb")
    )
    # B's own restores use volumes of B's own.
    reply = await courses.comment(
        SECTION_B, f"/restore {snapshot_b['name']} --student alice", target_b
    )
    assert "Restored alice's files" in reply, reply
    reply = await courses.comment(
        SECTION_B, f"/restore {snapshot_b['name']} --all --confirm", target_b
    )
    assert "Restored every home" in reply, reply
    made_by_b = [v for v in do_fake.volumes.values() if v.snapshot_id == snapshot_b["id"]]
    made_by_b += [v for v in do_fake.deleted_volumes if v.snapshot_id == snapshot_b["id"]]
    assert len(made_by_b) == 2
    assert not {v.name for v in made_by_b} & {volume_a.name}
    assert all(v.snapshot_id != snapshot_a["id"] for v in do_fake.volumes.values())

    # B's droplet is lost; /recover brings B back from B's volume, never A's.
    do_fake.lose_droplet(record_b.droplet_id)
    target_b.replace_machine()
    reply = await courses.comment(SECTION_B, "/recover", target_b)
    assert "Recovered on a new droplet" in reply, reply

    assert touching(courses.requests_since(start), a_ids) == []
    assert do_fake.droplets[droplet_a.id].status == "active"
    assert do_fake.volumes[volume_a.id].droplet_ids == [droplet_a.id]
    assert snapshot_a in do_fake.snapshots
    assert not do_fake.deleted_snapshots


async def test_a_server_name_naming_another_courses_droplet_finds_a_droplet_of_its_own(
    classroom, example, do_fake, make_ssh_target
) -> None:
    target_a, target_b = classroom.target, make_ssh_target()
    courses = Courses(classroom, example, do_fake)
    courses.add(SECTION_A)
    courses.add(SECTION_B)
    run_a = await courses.push(
        SECTION_A, courses.files(target_a, droplet_config(target_a.port)), target_a
    )
    assert run_a["conclusion"] == "success", run_a["output"]
    record_a = await classroom.services.store.get_server(SECTION_A)
    droplet_a = do_fake.droplets[record_a.droplet_id]
    tags_a = list(droplet_a.tags)

    start = len(do_fake.requests)
    config_b = droplet_config(target_b.port, server=f"  name: {droplet_a.name}\n")
    run_b = await courses.push(SECTION_B, courses.files(target_b, config_b), target_b)
    assert run_b["conclusion"] == "success", run_b["output"]

    record_b = await classroom.services.store.get_server(SECTION_B)
    assert record_b.droplet_id != droplet_a.id
    assert len(do_fake.droplets) == 2
    assert touching(courses.requests_since(start), {str(droplet_a.id)}) == []
    assert do_fake.droplets[droplet_a.id].tags == tags_a


async def test_default_names_of_look_alike_repositories_differ(classroom, example, do_fake) -> None:
    target = classroom.target
    courses = Courses(classroom, example, do_fake)
    names = ["alice/math-101", "alice-math/101", "alice/math.101"]
    for name in names:
        courses.add(name)
        run = await courses.push(name, courses.files(target, droplet_config(target.port)), target)
        assert run["conclusion"] == "success", run["output"]

    created = [
        r.body["name"] for r in do_fake.requests if (r.method, r.path) == ("POST", "/v2/droplets")
    ]
    assert len(created) == 3 and len(set(created)) == 3, created
    records = [await classroom.services.store.get_server(name) for name in names]
    assert len({r.droplet_id for r in records}) == 3


async def test_a_hub_hostname_that_is_another_courses_or_the_operators_is_refused(
    classroom, example, do_fake, make_ssh_target
) -> None:
    target_a, target_b = classroom.target, make_ssh_target()
    do_fake.add_domain("example.edu")
    do_fake.domains["example.edu"].append(
        {"id": 99, "type": "A", "name": "www", "data": "203.0.113.80", "ttl": 1800}
    )
    courses = Courses(classroom, example, do_fake)
    courses.add(SECTION_A)
    courses.add(SECTION_B)
    https = "  hostname: {name}.example.edu\n  letsencrypt_email: alice@example.edu\n"

    def with_hostname(port: int, name: str) -> bytes:
        return droplet_config(port).replace(b"hub:\n", b"hub:\n" + https.format(name=name).encode())

    run_a = await courses.push(
        SECTION_A, courses.files(target_a, with_hostname(target_a.port, "hub-a")), target_a
    )
    assert run_a["conclusion"] == "success", run_a["output"]
    before = [dict(r) for r in do_fake.domains["example.edu"]]
    [record_a] = [r for r in before if r["type"] == "A" and r["name"] == "hub-a"]

    for name, says in (("hub-a", "another course"), ("www", "did not make")):
        start = len(do_fake.requests)
        run_b = await courses.push(
            SECTION_B, courses.files(target_b, with_hostname(target_b.port, name)), target_b
        )
        assert run_b["conclusion"] == "failure", run_b["output"]
        assert f"{name}.example.edu" in run_b["output"]["summary"]
        assert says in run_b["output"]["summary"], run_b["output"]["summary"]
        changes = [r for r in courses.requests_since(start) if r.method != "GET"]
        assert changes == [], [f"{r.method} {r.path}" for r in changes]
        assert do_fake.domains["example.edu"] == before
    assert record_a["data"] == target_a.host


async def test_an_ssh_server_at_another_courses_address_is_refused_before_connecting(
    classroom, example, do_fake
) -> None:
    target = classroom.target
    # Course A (the classroom's course) runs on its own server, at the loopback address.
    sha = classroom.commit(ssh_course_files(target))
    await classroom.push(example, sha)
    await classroom.settle()
    [run_a] = [r for r in classroom.runs() if r["head_sha"] == sha]
    assert run_a["conclusion"] == "success", run_a["output"]

    courses = Courses(classroom, example, do_fake)
    courses.add(SECTION_B)
    await classroom.services.engine.ssh.close_all()
    opened = classroom.services.engine.ssh.counters()["connections_opened"]
    calls = len(target.calls())
    files = ssh_course_files(target, extra="")  # B names A's host and port
    run_b = await courses.push(SECTION_B, files, target)

    assert run_b["conclusion"] == "failure", run_b["output"]
    assert "another course" in run_b["output"]["summary"], run_b["output"]["summary"]
    assert classroom.services.engine.ssh.counters()["connections_opened"] == opened
    assert len(target.calls()) == calls
    assert await classroom.services.store.get_server(SECTION_B) is None or (
        (await classroom.services.store.get_server(SECTION_B)).host_key is None
    )
    assert COURSE_REPO != SECTION_B


async def test_an_ssh_server_at_a_droplet_of_the_operators_account_is_refused(
    classroom, example, do_fake
) -> None:
    target = classroom.target
    courses = Courses(classroom, example, do_fake)
    courses.add(SECTION_B)
    # A droplet of the operator's account (another course's, or the operator's own)
    # answers at the loopback address.
    other = do_fake.add_droplet("someone-elses-hub", tags=["littlest-classroom"])
    other.ipv4 = target.host
    opened = classroom.services.engine.ssh.counters()["connections_opened"]
    run_b = await courses.push(SECTION_B, ssh_course_files(target), target)

    assert run_b["conclusion"] == "failure", run_b["output"]
    assert "DigitalOcean address" in run_b["output"]["summary"], run_b["output"]["summary"]
    assert classroom.services.engine.ssh.counters()["connections_opened"] == opened
    assert target.calls() == []
