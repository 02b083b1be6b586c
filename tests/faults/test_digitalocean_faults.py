"""DigitalOcean faults at every step of create, resize, snapshot and DNS: 429s (with
``ratelimit-reset`` or ``retry-after``), 5xx, answers slower than the request timeout, and
actions that error or never finish. After each the droplet is on, the outcome says what
happened, and nothing was made twice."""

from __future__ import annotations

import json
import time

import pytest

from deploy import operations
from deploy.course.config import load_course
from deploy.keys import ServiceKey
from deploy.model import ServerRecord
from deploy.providers.droplets import DropletDriver, DropletError
from deploy.ssh import SSHPool
from tests.faults.dofaults import (
    ACTION_POLL,
    ACTIONS,
    DROPLET,
    EXHAUSTED,
    REQUEST_TIMEOUT,
    RESIZE_FAULTS,
    RETRY_AFTER_FAULT,
    TRANSIENT_FAULTS,
    Armed,
    Fault,
    assert_fault_met_and_retried,
    assert_tried_to_the_end,
    exhaust,
    let_abandoned_requests_land,
    requests_to,
)
from tests.support.engine import OWNER, REPO_ID, TAGS, MemoryRecords, coded

PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPtp3NuY76Bt19vHq5nw0bXQredWkiVPdEmBZy3Ndz0P bot"
POLL = 0.01
COURSE = "octo-org/physics101"
NAME = coded("physics101-hub")
FAULT_IDS = [f.name for f in TRANSIENT_FAULTS]


def driver(fake, armed: Armed) -> DropletDriver:
    return DropletDriver(
        fake.token,
        poll_interval=POLL,
        timeout=0.5,
        shutdown_timeout=0.1,
        request_timeout=REQUEST_TIMEOUT,
        sleep=armed.sleep,
    )


def assert_waited(armed: Armed, fault: Fault) -> None:
    waits = armed.retry_waits(POLL)
    assert waits, "the fault was retried after a wait"
    assert fault.wait is not None and fault.wait(waits[0]), waits


# ---- create: ensure_droplet --------------------------------------------------------------

CREATE_STEPS = {
    "list-droplets": "GET /v2/droplets",
    "list-keys": "GET /v2/account/keys",
    "create-key": "POST /v2/account/keys",
    "create-droplet": "POST /v2/droplets",
    "poll-droplet": DROPLET,
}


async def ensure(d: DropletDriver, armed: Armed):
    return await d.ensure_droplet(
        NAME, OWNER, "syd1", "s-2vcpu-4gb", "ubuntu-24-04-x64", PUBLIC_KEY, armed.progress
    )


def assert_one_droplet_and_key(fake) -> None:
    named = [d for d in fake.droplets.values() if d.name == NAME]
    assert len(named) == 1, f"{len(named)} droplets named {NAME}"
    assert len(fake.ssh_keys) == 1


@pytest.mark.parametrize("fault", TRANSIENT_FAULTS, ids=FAULT_IDS)
@pytest.mark.parametrize("step", list(CREATE_STEPS))
async def test_create_survives_a_transient_fault_at_each_step(do_fake, step, fault) -> None:
    armed = Armed()
    operation = CREATE_STEPS[step]
    armed.inject("", fault, do_fake, operation)

    d = driver(do_fake, armed)
    try:
        info = await ensure(d, armed)
    except DropletError as exc:
        # A create that got no answer may yet happen: it is never asked twice in one go,
        # and the next run adopts the droplet it made.
        assert (step, fault.name) == ("create-droplet", "slow"), exc
        assert "did not answer the request to create physics101-hub" in str(exc)
        await let_abandoned_requests_land()
        info = await ensure(d, armed)
    await let_abandoned_requests_land(fault)

    assert info.status == "active" and info.ipv4
    assert do_fake.droplets[info.id].status == "active"
    # A create without an answer is not asked again; every other step is.
    retried = (step, fault.name) != ("create-droplet", "slow")
    assert_fault_met_and_retried(armed, do_fake, operation, fault, retried=retried)
    assert_waited(armed, fault)
    assert_one_droplet_and_key(do_fake)


@pytest.mark.parametrize("step", list(CREATE_STEPS))
async def test_create_that_keeps_failing_says_which_step_then_converges(do_fake, step) -> None:
    armed = Armed()
    exhaust(do_fake, CREATE_STEPS[step])
    d = driver(do_fake, armed)
    what = {
        "list-droplets": "did not list the course's droplets after 5 tries",
        "list-keys": "did not list the account's SSH keys after 5 tries",
        "create-key": "did not add the service's SSH key after 5 tries",
        "create-droplet": f"did not create {NAME}",
        "poll-droplet": "did not find droplet",
    }[step]
    # Every step's tries run out (for the create: five 500s, each after a fresh look), and
    # the error says which step, with DigitalOcean's status where it answered with one.
    with pytest.raises(DropletError) as failed:
        await ensure(d, armed)
    assert what in str(failed.value)
    if step != "create-droplet":
        assert "500" in str(failed.value)
    again = await ensure(d, armed)

    assert do_fake.droplets[again.id].status == "active"
    assert_one_droplet_and_key(do_fake)


async def test_a_droplet_created_while_powered_off_is_adopted_and_powered_on(do_fake) -> None:
    # As after a resize killed half-way: the course's droplet exists but is off.
    existing = do_fake.add_droplet(NAME, tags=TAGS, status="off")
    armed = Armed()
    do_fake.fail(ACTIONS, 500)
    info = await ensure(driver(do_fake, armed), armed)

    assert info.id == existing.id and info.status == "active"
    assert do_fake.action_types(existing.id) == ["power_on"]
    assert requests_to(do_fake, "POST /v2/droplets") == []


# ---- resize, through deploy.operations -----------------------------------------------------

# The droplet's SSH is the loopback server's port: server.port applies to droplets too.
DO_CONFIG = (
    "server:\n  provider: digitalocean\n  name: physics101-hub\n  region: syd1\n"
    "  size: s-2vcpu-4gb\n  port: {port}\nhub:\n  admins: [alice]\n"
)


@pytest.fixture
async def droplet_engine(tmp_path, ssh_target, do_fake):
    """An engine whose course has a droplet that answers SSH on the loopback target."""
    droplet = do_fake.add_droplet(NAME, tags=TAGS, size="s-2vcpu-4gb")
    # The hub is up on the "droplet", so the check after a resize can succeed.
    (ssh_target.sandbox / "state" / "services.json").write_text(
        json.dumps({"jupyterhub": "active", "traefik": "active"})
    )
    records = MemoryRecords()
    records.records[COURSE] = ServerRecord(
        provider="digitalocean",
        address=ssh_target.host,
        port=ssh_target.port,
        droplet_id=droplet.id,
        host_key=ssh_target.host_key,
        size=droplet.size,
        region=droplet.region,
    )
    key = ServiceKey(ssh_target.client_key, "", "", "", tmp_path / "key")
    armed = Armed()
    engine = operations.Engine(
        records=records,
        ssh=SSHPool(),
        service_key=key,
        droplets=driver(do_fake, armed),
        ssh_poll_seconds=0.05,
    )
    config = load_course(
        {".github/classroom.yml": DO_CONFIG.format(port=ssh_target.port).encode()},
        "octo-org",
        "physics101",
        REPO_ID,
    )
    yield engine, armed, droplet, config
    await engine.close()


async def resize(engine, armed, config, size: str = "s-4vcpu-8gb"):
    return await operations.resize(engine, COURSE, config, size, progress=armed.progress)


# The droplet action each resize step starts or polls (None: not an action).
STEP_ACTION: dict[str, str | None] = {
    "list-sizes": None,
    "read-droplet": None,
    "shutdown": "shutdown",
    "shutdown-poll": "shutdown",
    "power-off": "power_off",
    "power-off-poll": "power_off",
    "resize": "resize",
    "resize-poll": "resize",
    "power-on": "power_on",
    "power-on-poll": "power_on",
}

# step -> (progress line that precedes it, operation it calls)
RESIZE_STEPS: dict[str, tuple[str, str]] = {
    "list-sizes": ("", "GET /v2/sizes"),
    "read-droplet": ("", DROPLET),
    "shutdown": ("Shutting the droplet down", ACTIONS),
    "shutdown-poll": ("Shutting the droplet down", ACTION_POLL),
    "resize": ("Resizing to", ACTIONS),
    "resize-poll": ("Resizing to", ACTION_POLL),
    "power-on": ("Powering the droplet on", ACTIONS),
    "power-on-poll": ("Powering the droplet on", ACTION_POLL),
}
# Power-off happens only when the graceful shutdown did not finish.
POWER_OFF_STEPS: dict[str, tuple[str, str]] = {
    "power-off": ("Graceful shutdown did not finish", ACTIONS),
    "power-off-poll": ("Graceful shutdown did not finish", ACTION_POLL),
}


def completed_resizes(fake, droplet_id: int) -> list:
    return [
        a
        for a in fake.actions
        if a.droplet_id == droplet_id and a.type == "resize" and a.status == "completed"
    ]


def assert_resized_once_and_on(fake, droplet, result, size: str = "s-4vcpu-8gb") -> None:
    assert result.conclusion == "success", (result.title, result.summary)
    assert result.title == f"Resized to {size}"
    assert fake.droplets[droplet.id].status == "active"
    assert fake.droplets[droplet.id].size == size
    assert len(completed_resizes(fake, droplet.id)) == 1
    resizes = [a for a in fake.actions if a.type == "resize"]
    assert all(a.params["disk"] is False for a in resizes), "the disk is never resized unasked"


@pytest.mark.sshd
@pytest.mark.parametrize(
    ("step", "fault"),
    [
        *[(step, fault) for step in [*RESIZE_STEPS, *POWER_OFF_STEPS] for fault in RESIZE_FAULTS],
        *[(step, RETRY_AFTER_FAULT) for step in ("shutdown", "resize", "power-on-poll")],
    ],
    ids=lambda value: value if isinstance(value, str) else value.name,
)
async def test_resize_survives_a_transient_fault_at_each_step(
    droplet_engine, do_fake, step, fault
) -> None:
    engine, armed, droplet, config = droplet_engine
    line, operation = {**RESIZE_STEPS, **POWER_OFF_STEPS}[step]
    if step in POWER_OFF_STEPS:
        do_fake.hang_action("shutdown")
    armed.inject(line, fault, do_fake, operation)

    result = await resize(engine, armed, config)
    await let_abandoned_requests_land(fault)

    # The fault met this step's own request (not another step's call of the same
    # operation), and that request was made again.
    assert_fault_met_and_retried(armed, do_fake, operation, fault, action=STEP_ACTION[step])
    assert_waited(armed, fault)
    assert_resized_once_and_on(do_fake, droplet, result)
    record = engine.records.records[COURSE]
    assert record.size == "s-4vcpu-8gb" and record.droplet_id == droplet.id


# What a step failing through all its retries leads to: the resize may still succeed
# (a shutdown that does not happen is followed by a power-off; power-on is tried again),
# or it fails saying what DigitalOcean did not do. The droplet is on either way.
EXHAUSTED_OUTCOME: dict[str, tuple[str, str]] = {
    "list-sizes": ("failure", "did not list droplet sizes after 5 tries"),
    "read-droplet": ("failure", "did not find droplet"),
    "shutdown": ("success", ""),
    "shutdown-poll": ("success", ""),
    "power-off": ("failure", "could not power the droplet off before resizing"),
    "power-off-poll": ("failure", "could not power the droplet off before resizing"),
    "resize": ("failure", "did not start the resize (CPU and RAM only) after 5 tries"),
    "resize-poll": ("failure", "did not report on the resize (CPU and RAM only)"),
    "power-on": ("success", ""),
    "power-on-poll": ("success", ""),
}


@pytest.mark.sshd
@pytest.mark.parametrize("step", list(EXHAUSTED_OUTCOME))
async def test_resize_step_failing_every_retry_leaves_the_droplet_on(
    droplet_engine, do_fake, step
) -> None:
    engine, armed, droplet, config = droplet_engine
    line, operation = {**RESIZE_STEPS, **POWER_OFF_STEPS}[step]
    if step in POWER_OFF_STEPS:
        do_fake.hang_action("shutdown")
    armed.inject(line, EXHAUSTED, do_fake, operation)

    result = await resize(engine, armed, config)

    assert_tried_to_the_end(armed, do_fake, operation, action=STEP_ACTION[step])
    conclusion, message = EXHAUSTED_OUTCOME[step]
    assert do_fake.droplets[droplet.id].status == "active"
    assert (result.conclusion, message in result.summary) == (conclusion, True), result.summary
    if conclusion == "success":
        assert_resized_once_and_on(do_fake, droplet, result)
    else:
        assert result.title == "Resize failed"
        assert completed_resizes(do_fake, droplet.id) == []
        assert engine.records.records[COURSE].size == "s-2vcpu-4gb"
        assert do_fake.token not in result.summary


@pytest.mark.sshd
@pytest.mark.parametrize("action", ["shutdown", "power_off", "resize", "power_on"])
@pytest.mark.parametrize("trouble", ["errored", "hang"])
async def test_resize_with_an_action_that_errors_or_hangs(
    droplet_engine, do_fake, action, trouble
) -> None:
    engine, armed, droplet, config = droplet_engine
    if action == "power_off":
        do_fake.hang_action("shutdown")
    (do_fake.error_action if trouble == "errored" else do_fake.hang_action)(action)

    result = await resize(engine, armed, config)

    assert do_fake.droplets[droplet.id].status == "active"
    if action == "resize":
        assert result.conclusion == "failure" and result.title == "Resize failed"
        what = "action failed" if trouble == "errored" else "did not finish within"
        assert "the resize (CPU and RAM only)" in result.summary and what in result.summary
        assert do_fake.droplets[droplet.id].size == "s-2vcpu-4gb"
    elif action == "power_off":
        assert result.conclusion == "failure"
        assert "could not power the droplet off before resizing" in result.summary
    else:
        # A shutdown that fails is followed by a power-off; a power-on is tried again.
        assert_resized_once_and_on(do_fake, droplet, result)


@pytest.mark.sshd
async def test_resize_after_one_that_failed_converges(droplet_engine, do_fake) -> None:
    engine, armed, droplet, config = droplet_engine
    do_fake.error_action("resize")
    failed = await resize(engine, armed, config)
    assert failed.conclusion == "failure"

    again = await resize(engine, armed, config)
    assert_resized_once_and_on(do_fake, droplet, again)


# ---- snapshot -----------------------------------------------------------------------------

SNAPSHOT_STEPS = {"snapshot": ACTIONS, "snapshot-poll": ACTION_POLL}


@pytest.mark.sshd
@pytest.mark.parametrize("fault", TRANSIENT_FAULTS, ids=FAULT_IDS)
@pytest.mark.parametrize("step", list(SNAPSHOT_STEPS))
async def test_snapshot_survives_a_transient_fault(droplet_engine, do_fake, step, fault) -> None:
    engine, armed, droplet, config = droplet_engine
    armed.inject("Taking snapshot", fault, do_fake, SNAPSHOT_STEPS[step])

    result = await operations.snapshot(engine, COURSE, config, "week-1", progress=armed.progress)
    await let_abandoned_requests_land(fault)

    assert result.conclusion == "success", result.summary
    assert_fault_met_and_retried(armed, do_fake, SNAPSHOT_STEPS[step], fault, action="snapshot")
    assert_waited(armed, fault)
    assert [s["name"] for s in do_fake.snapshots] == ["week-1"]
    assert do_fake.droplets[droplet.id].status == "active"


@pytest.mark.sshd
@pytest.mark.parametrize("trouble", ["errored", "hang", "exhausted-start", "exhausted-poll"])
async def test_snapshot_that_fails_says_so_and_leaves_the_droplet_on(
    droplet_engine, do_fake, trouble
) -> None:
    engine, armed, droplet, config = droplet_engine
    if trouble == "errored":
        do_fake.error_action("snapshot")
    elif trouble == "hang":
        do_fake.hang_action("snapshot")
    else:
        operation = ACTIONS if trouble == "exhausted-start" else ACTION_POLL
        armed.inject("Taking snapshot", EXHAUSTED, do_fake, operation)

    result = await operations.snapshot(engine, COURSE, config, "week-1", progress=armed.progress)

    assert result.conclusion == "failure" and result.title == "Could not snapshot"
    expected = {
        "errored": "the snapshot action failed",
        "hang": "the snapshot action did not finish within",
        "exhausted-start": "did not start the snapshot after 5 tries",
        "exhausted-poll": "did not report on the snapshot after 5 tries",
    }[trouble]
    assert expected in result.summary
    if trouble.startswith("exhausted"):
        assert_tried_to_the_end(armed, do_fake, operation, action="snapshot")
    assert do_fake.droplets[droplet.id].status == "active"
    assert do_fake.snapshots == []


# ---- DNS ----------------------------------------------------------------------------------

DNS_STEPS = {
    "list-domains": "GET /v2/domains",
    "list-records": "GET /v2/domains/{domain_name}/records",
    "create-record": "POST /v2/domains/{domain_name}/records",
}


@pytest.mark.parametrize("fault", TRANSIENT_FAULTS, ids=FAULT_IDS)
@pytest.mark.parametrize("step", list(DNS_STEPS))
async def test_dns_record_is_made_once_despite_a_fault(do_fake, step, fault) -> None:
    do_fake.add_domain("example.edu")
    armed = Armed()
    fault.inject(do_fake, DNS_STEPS[step])
    d = driver(do_fake, armed)

    try:
        assert await d.ensure_dns_a_record("hub.example.edu", "127.0.0.7", OWNER) is not None
    except DropletError as exc:
        # A create that got no answer is never asked twice in one go.
        assert (step, fault.name) == ("create-record", "slow"), exc
        assert "did not answer the request to create an A record" in str(exc)
    await let_abandoned_requests_land(fault)
    # Asked again (as after a crash), it finds the record and makes no other.
    assert await d.ensure_dns_a_record("hub.example.edu", "127.0.0.7", OWNER) is not None

    assert_waited(armed, fault)
    a_records = [r for r in do_fake.domains["example.edu"] if r["type"] == "A"]
    assert [(r["name"], r["data"]) for r in a_records] == [("hub", "127.0.0.7")]


async def test_retry_waits_are_bounded_even_when_digitalocean_asks_for_more(do_fake) -> None:
    armed = Armed()
    do_fake.fail("GET /v2/sizes", 429, ratelimit_reset=int(time.time()) + 3600)
    sizes = await driver(do_fake, armed).list_sizes()

    assert sizes
    assert armed.retry_waits(POLL) == [120.0]
