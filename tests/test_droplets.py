"""Tests of the droplet driver: pure size choice and retry rules, then end to end on the fake."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import digitalocean
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deploy.model import DROPLET_TAG
from deploy.ownership import course_tag
from deploy.providers.digitalocean_api import DigitalOceanAPI, Gone, Refused, Transient, WrongToken
from deploy.providers.droplets import (
    DropletDriver,
    DropletError,
    SizeInfo,
    choose_size,
    owning_domain,
    public_key_fingerprint,
    record_name,
    retry_delay,
)
from tests.fakes.digitalocean import DigitalOceanFake, fingerprint
from tests.plugins.digitalocean_fake import openapi_validator

# Made with ssh-keygen; its MD5 fingerprint is what `ssh-keygen -l -E md5` prints.
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPtp3NuY76Bt19vHq5nw0bXQredWkiVPdEmBZy3Ndz0P bot"
PUBLIC_KEY_MD5 = "96:eb:4c:d3:56:e0:69:c1:30:fb:d6:7a:be:49:ec:73"
POLL = 0.001
DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def size(
    slug: str,
    price: float,
    *,
    regions: tuple[str, ...] = ("syd1", "nyc3"),
    available: bool = True,
    vcpus: int = 2,
) -> SizeInfo:
    return SizeInfo(slug, vcpus, 4096, 80, price, regions, available)


SIZES = [
    size("s-1vcpu-1gb", 6),
    size("s-2vcpu-4gb", 24),
    size("s-2vcpu-4gb-amd", 28),
    size("s-4vcpu-8gb", 48),
    size("s-4vcpu-8gb-amd", 42),
    size("s-4vcpu-8gb-intel", 56),
    size("s-4vcpu-16gb", 96),
    size("s-4vcpu-4gb", 40, regions=("nyc3",)),
    size("s-8vcpu-16gb", 96, available=False),
    size("s-8vcpu-32gb", 192),
]


# ---- choose_size ---------------------------------------------------------------------------


def test_exact_slug_wins_even_over_a_cheaper_prefix_match() -> None:
    choice = choose_size("s-4vcpu-16gb", SIZES, "syd1")
    assert choice.chosen is not None and choice.chosen.slug == "s-4vcpu-16gb"
    assert choice.others == ()


def test_exact_slug_with_a_vendor_suffix_is_allowed() -> None:
    choice = choose_size("s-4vcpu-8gb-amd", SIZES, "syd1")
    assert choice.chosen is not None and choice.chosen.slug == "s-4vcpu-8gb-amd"


def test_prefix_picks_the_cheapest_without_vendor_suffix() -> None:
    # s-4vcpu-8gb-amd is cheaper but needs its full slug; s-4vcpu-4gb is not in syd1.
    choice = choose_size("s-4vcpu", SIZES, "syd1")
    assert choice.chosen is not None and choice.chosen.slug == "s-4vcpu-8gb"
    assert [s.slug for s in choice.others] == ["s-4vcpu-16gb"]
    assert "s-4vcpu-8gb" in choice.message and "cheapest" in choice.message


def test_prefix_respects_the_region() -> None:
    choice = choose_size("s-4vcpu", SIZES, "nyc3")
    assert choice.chosen is not None and choice.chosen.slug == "s-4vcpu-4gb"
    assert [s.slug for s in choice.others] == ["s-4vcpu-8gb", "s-4vcpu-16gb"]


def test_unavailable_sizes_never_match() -> None:
    choice = choose_size("s-8vcpu", SIZES, "syd1")
    assert choice.chosen is not None and choice.chosen.slug == "s-8vcpu-32gb"
    assert choice.others == ()


def test_exact_slug_not_offered_in_region_is_refused() -> None:
    choice = choose_size("s-4vcpu-4gb", SIZES, "syd1")
    assert choice.chosen is None
    assert "not available in syd1" in choice.message
    assert "s-4vcpu-4gb" not in choice.valid


def test_no_match_lists_valid_sizes_cheapest_first() -> None:
    choice = choose_size("g-2vcpu", SIZES, "syd1")
    assert choice.chosen is None
    assert choice.valid[:3] == ("s-1vcpu-1gb", "s-2vcpu-4gb", "s-2vcpu-4gb-amd")
    assert "s-8vcpu-16gb" not in choice.valid  # unavailable
    assert "no size" in choice.message


@pytest.mark.parametrize(
    "wanted",
    ["", "S-4VCPU", "s-4vcpu-", "-s", "s--4", "s 4", "s-4;reboot", "$(id)", "s-4\n", "a" * 65],
)
def test_invalid_size_text_is_refused_before_matching(wanted: str) -> None:
    choice = choose_size(wanted, SIZES, "syd1")
    assert choice.chosen is None
    assert "not a size" in choice.message
    assert choice.valid  # still says what one could ask for


# What people type: every prefix of every slug (so most draws name a size), or any text.
TYPED_SIZES = st.one_of(
    st.sampled_from([s.slug for s in SIZES]).flatmap(
        lambda slug: st.integers(1, len(slug)).map(lambda n: slug[:n])
    ),
    st.text(max_size=30),
)


@given(TYPED_SIZES, st.sampled_from(["syd1", "nyc3"]))
def test_choose_size_never_picks_something_unasked_for(wanted: str, region: str) -> None:
    choice = choose_size(wanted, SIZES, region)
    usable = [s for s in SIZES if s.available and region in s.regions]
    exact = next((s for s in SIZES if s.slug == wanted), None)
    prefixed = [
        s for s in usable if s.slug.startswith(wanted) and not re.search(r"-(amd|intel)$", s.slug)
    ]
    if not re.fullmatch(r"[a-z0-9]+(?:[-_][a-z0-9]+)*", wanted):
        expected = None  # not a size's shape: nothing is matched at all
    elif exact is not None:
        expected = exact if exact in usable else None
    elif prefixed:
        expected = min(prefixed, key=lambda s: (s.price_monthly, s.slug))
    else:
        expected = None
    assert choice.chosen == expected
    if expected is None:
        assert choice.message and choice.valid == tuple(
            s.slug for s in sorted(usable, key=lambda s: (s.price_monthly, s.slug))
        )


# ---- retry_delay -----------------------------------------------------------------------------


def test_429_waits_until_ratelimit_reset() -> None:
    assert retry_delay(429, {"RateLimit-Reset": "1007"}, 0, now=1000.0) == 7.0


def test_429_retry_after_is_seconds_from_now() -> None:
    assert retry_delay(429, {"retry-after": "3"}, 0, now=1000.0) == 3.0


def test_429_wait_is_bounded_and_never_negative() -> None:
    assert retry_delay(429, {"ratelimit-reset": "99999"}, 0, now=0.0, max_wait=60) == 60
    assert retry_delay(429, {"ratelimit-reset": "10"}, 0, now=1000.0) == 0.0


def test_429_with_unreadable_headers_backs_off() -> None:
    assert retry_delay(429, {"retry-after": "soon"}, 2, now=0.0) == 4.0


def test_server_errors_back_off_exponentially_up_to_a_cap() -> None:
    assert [retry_delay(500, {}, n, now=0.0) for n in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert retry_delay(503, {}, 20, now=0.0) == 30.0
    assert retry_delay(None, {}, 1, now=0.0) == 2.0


# ---- small pure helpers --------------------------------------------------------------------


def test_fingerprint_matches_ssh_keygen_and_the_fake() -> None:
    assert public_key_fingerprint(PUBLIC_KEY) == PUBLIC_KEY_MD5
    assert fingerprint(PUBLIC_KEY) == PUBLIC_KEY_MD5


@pytest.mark.parametrize("bad", ["", "ssh-dss AAAA", "not a key", "ssh-ed25519 !!!!"])
def test_fingerprint_refuses_what_is_not_a_public_key(bad: str) -> None:
    with pytest.raises(DropletError, match="public key"):
        public_key_fingerprint(bad)


def test_owning_domain_is_the_most_specific() -> None:
    domains = ["example.edu", "cs.example.edu", "other.org"]
    assert owning_domain("hub.cs.example.edu", domains) == "cs.example.edu"
    assert owning_domain("hub.example.edu", domains) == "example.edu"
    assert owning_domain("example.edu", domains) == "example.edu"
    assert owning_domain("badexample.edu", domains) is None
    assert owning_domain("hub.example.com", domains) is None


def test_record_name() -> None:
    assert record_name("hub.example.edu", "example.edu") == "hub"
    assert record_name("a.b.example.edu", "example.edu") == "a.b"
    assert record_name("example.edu", "example.edu") == "@"


# ---- end to end against the fake -------------------------------------------------------------


class Recorder:
    """Collects progress lines and the waits the driver asked for (without waiting)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.sleeps: list[float] = []

    async def progress(self, line: str) -> None:
        self.lines.append(line)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)

    @property
    def retry_waits(self) -> list[float]:
        return [s for s in self.sleeps if s != POLL]


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


def driver(fake: DigitalOceanFake, rec: Recorder, **kwargs: float) -> DropletDriver:
    options = {"poll_interval": POLL, "timeout": 1.0, "shutdown_timeout": 0.02}
    options.update(kwargs)
    return DropletDriver(fake.token, sleep=rec.sleep, **options)  # type: ignore[arg-type]


OWNER = course_tag(1001)  # the course these tests act for
OTHER = course_tag(2002)  # another course of the same service


async def ensure(
    d: DropletDriver,
    rec: Recorder,
    name: str = "physics101-hub",
    owner: str = OWNER,
    known_id: int | None = None,
):
    return await d.ensure_droplet(
        name,
        owner,
        "syd1",
        "s-2vcpu-4gb",
        "ubuntu-24-04-x64",
        PUBLIC_KEY,
        rec.progress,
        known_id=known_id,
    )


async def test_creates_a_droplet_from_nothing_and_waits_for_its_address(do_fake, rec) -> None:
    info = await ensure(driver(do_fake, rec), rec)

    assert info.status == "active"
    assert info.ipv4 is not None and info.ipv4.startswith("127.")
    assert (info.name, info.size, info.region) == ("physics101-hub", "s-2vcpu-4gb", "syd1")
    assert (info.vcpus, info.memory, info.disk) == (2, 4096, 80)
    [create] = do_fake.calls("POST", "/v2/droplets")
    [key] = do_fake.ssh_keys
    assert create.body["tags"] == [DROPLET_TAG, OWNER]
    assert create.body["monitoring"] is True
    assert create.body["ssh_keys"] == [key["id"]]
    assert key["fingerprint"] == PUBLIC_KEY_MD5
    # It polled while the droplet was still "new" and had no address.
    assert len(do_fake.calls("GET", f"/v2/droplets/{info.id}")) >= 2


async def test_second_ensure_finds_the_droplet_and_uploads_nothing(do_fake, rec) -> None:
    d = driver(do_fake, rec)
    first = await ensure(d, rec)
    second = await ensure(d, rec)

    assert second.id == first.id
    assert len(do_fake.calls("POST", "/v2/droplets")) == 1
    assert len(do_fake.calls("POST", "/v2/account/keys")) == 1
    assert len(do_fake.droplets) == 1


async def test_existing_key_is_reused_not_uploaded(do_fake, rec) -> None:
    do_fake.ssh_keys.append(
        {"id": 77, "fingerprint": PUBLIC_KEY_MD5, "public_key": PUBLIC_KEY, "name": "mine"}
    )
    await ensure(driver(do_fake, rec), rec)

    assert do_fake.calls("POST", "/v2/account/keys") == []
    assert do_fake.calls("POST", "/v2/droplets")[0].body["ssh_keys"] == [77]


async def test_adopts_a_droplet_with_the_name_and_the_tag(do_fake, rec) -> None:
    existing = do_fake.add_droplet("physics101-hub", tags=[DROPLET_TAG, OWNER])
    info = await ensure(driver(do_fake, rec), rec)

    assert info.id == existing.id
    assert do_fake.calls("POST", "/v2/droplets") == []


async def test_an_untagged_droplet_of_the_same_name_is_not_taken_over(do_fake, rec) -> None:
    stranger = do_fake.add_droplet("physics101-hub", tags=["someone-else"])
    info = await ensure(driver(do_fake, rec), rec)

    assert info.id != stranger.id
    assert len(do_fake.calls("POST", "/v2/droplets")) == 1


async def test_an_adopted_droplet_that_is_off_is_powered_on(do_fake, rec) -> None:
    existing = do_fake.add_droplet("physics101-hub", tags=[DROPLET_TAG, OWNER], status="off")
    info = await ensure(driver(do_fake, rec), rec)

    assert info.status == "active"
    assert do_fake.action_types(existing.id) == ["power_on"]


async def test_two_tagged_droplets_of_one_name_are_an_error(do_fake, rec) -> None:
    do_fake.add_droplet("physics101-hub", tags=[DROPLET_TAG, OWNER])
    do_fake.add_droplet("physics101-hub", tags=[DROPLET_TAG, OWNER])
    with pytest.raises(DropletError, match="2 droplets are named physics101-hub"):
        await ensure(driver(do_fake, rec), rec)
    assert do_fake.calls("POST", "/v2/droplets") == []


@pytest.mark.parametrize(
    ("name", "region", "size", "image"),
    [
        ("bad name", "syd1", "s-2vcpu-4gb", "ubuntu-24-04-x64"),
        ("hub;reboot", "syd1", "s-2vcpu-4gb", "ubuntu-24-04-x64"),
        ("hub", "SYD1", "s-2vcpu-4gb", "ubuntu-24-04-x64"),
        ("hub", "syd1", "s-2vcpu-4gb --x", "ubuntu-24-04-x64"),
        ("hub", "syd1", "s-2vcpu-4gb", "../image"),
    ],
)
async def test_bad_values_are_refused_before_any_request(
    do_fake, rec, name: str, region: str, size: str, image: str
) -> None:
    with pytest.raises(DropletError, match="is not allowed"):
        await driver(do_fake, rec).ensure_droplet(
            name, OWNER, region, size, image, PUBLIC_KEY, rec.progress
        )
    assert do_fake.requests == []


async def test_resize_shuts_down_resizes_cpu_and_ram_then_powers_on(do_fake, rec) -> None:
    droplet = do_fake.add_droplet("hub", tags=[DROPLET_TAG], size="s-2vcpu-4gb")
    info = await driver(do_fake, rec).resize(
        droplet.id, "s-4vcpu-8gb", disk=False, progress=rec.progress
    )

    assert do_fake.action_types(droplet.id) == ["shutdown", "resize", "power_on"]
    [resize] = [
        r for r in do_fake.calls("POST", "/v2/droplets/") if (r.body or {}).get("type") == "resize"
    ]
    assert resize.body == {"type": "resize", "size": "s-4vcpu-8gb", "disk": False}
    assert (info.size, info.vcpus, info.memory, info.status) == ("s-4vcpu-8gb", 4, 8192, "active")
    assert info.disk == 80  # the disk was left as it was, so the resize can be undone


async def test_resize_with_disk_asks_for_it_and_grows_the_disk(do_fake, rec) -> None:
    droplet = do_fake.add_droplet("hub", tags=[DROPLET_TAG], size="s-2vcpu-4gb")
    info = await driver(do_fake, rec).resize(
        droplet.id, "s-4vcpu-8gb", disk=True, progress=rec.progress
    )

    assert do_fake.actions[1].params == {"type": "resize", "size": "s-4vcpu-8gb", "disk": True}
    assert info.disk == 160


async def test_shutdown_that_never_finishes_is_followed_by_power_off(do_fake, rec) -> None:
    droplet = do_fake.add_droplet("hub", tags=[DROPLET_TAG])
    do_fake.hang_action("shutdown")
    info = await driver(do_fake, rec).resize(
        droplet.id, "s-4vcpu-8gb", disk=False, progress=rec.progress
    )

    assert do_fake.action_types(droplet.id) == ["shutdown", "power_off", "resize", "power_on"]
    assert info.status == "active"
    assert any("powering off" in line for line in rec.lines)


async def test_errored_resize_leaves_the_droplet_on_and_says_what_failed(do_fake, rec) -> None:
    droplet = do_fake.add_droplet("hub", tags=[DROPLET_TAG], size="s-2vcpu-4gb")
    do_fake.error_action("resize")
    with pytest.raises(DropletError) as caught:
        await driver(do_fake, rec).resize(
            droplet.id, "s-4vcpu-8gb", disk=False, progress=rec.progress
        )

    message = str(caught.value)
    assert message.startswith("DigitalOcean refused the resize to s-4vcpu-8gb")
    assert "resize (CPU and RAM only) action failed" in message
    assert do_fake.action_types(droplet.id) == ["shutdown", "resize", "power_on"]
    assert droplet.status == "active"
    assert droplet.size == "s-2vcpu-4gb"


async def test_resize_the_api_rejects_still_powers_back_on(do_fake, rec) -> None:
    droplet = do_fake.add_droplet("hub", tags=[DROPLET_TAG], size="s-4vcpu-8gb")
    with pytest.raises(DropletError, match="Droplet disks cannot shrink"):
        await driver(do_fake, rec).resize(
            droplet.id, "s-1vcpu-1gb", disk=True, progress=rec.progress
        )
    assert droplet.status == "active"
    assert do_fake.action_types(droplet.id) == ["shutdown", "power_on"]


async def test_power_on_that_fails_is_retried(do_fake, rec) -> None:
    droplet = do_fake.add_droplet("hub", tags=[DROPLET_TAG])
    do_fake.error_action("power_on")
    info = await driver(do_fake, rec).resize(
        droplet.id, "s-4vcpu-8gb", disk=False, progress=rec.progress
    )

    assert do_fake.action_types(droplet.id) == ["shutdown", "resize", "power_on", "power_on"]
    assert info.status == "active"


async def test_power_on_that_always_fails_is_reported_with_the_cause(do_fake, rec) -> None:
    droplet = do_fake.add_droplet("hub", tags=[DROPLET_TAG])
    do_fake.error_action("resize")
    do_fake.error_action("power_on", times=10)
    with pytest.raises(DropletError) as caught:
        await driver(do_fake, rec).resize(
            droplet.id, "s-4vcpu-8gb", disk=False, progress=rec.progress
        )

    message = str(caught.value)
    assert "could not power droplet" in message and "control panel" in message
    assert "resize (CPU and RAM only) action failed" in message
    assert do_fake.action_types(droplet.id).count("power_on") == 3


async def test_rate_limited_calls_wait_for_the_reset_then_succeed(do_fake, rec) -> None:
    do_fake.fail("GET /v2/droplets", 429, ratelimit_reset=int(time.time()) + 30, times=2)
    info = await ensure(driver(do_fake, rec), rec)

    assert info.status == "active"
    statuses = [r.status for r in do_fake.calls("GET", "/v2/droplets") if r.query.get("tag_name")]
    assert statuses == [429, 429, 200]
    assert len(rec.retry_waits) == 2
    assert all(25 <= w <= 30 for w in rec.retry_waits)


async def test_retry_after_is_honoured(do_fake, rec) -> None:
    droplet = do_fake.add_droplet("hub", tags=[DROPLET_TAG])
    do_fake.fail("GET /v2/droplets/{droplet_id}", 429, retry_after=4)
    info = await driver(do_fake, rec).get(droplet.id)

    assert info.id == droplet.id
    assert rec.retry_waits == [4.0]


async def test_server_errors_are_retried_with_backoff(do_fake, rec) -> None:
    droplet = do_fake.add_droplet("hub", tags=[DROPLET_TAG])
    do_fake.fail("POST /v2/droplets/{droplet_id}/actions", 500, times=2)
    await driver(do_fake, rec).reboot(droplet.id, rec.progress)

    assert rec.retry_waits == [1.0, 2.0]
    assert do_fake.action_types(droplet.id) == ["reboot"]


async def test_create_that_fails_with_500_looks_again_before_retrying(do_fake, rec) -> None:
    do_fake.fail("POST /v2/droplets", 503)
    info = await ensure(driver(do_fake, rec), rec)

    assert info.status == "active"
    assert [r.status for r in do_fake.calls("POST", "/v2/droplets")] == [503, 202]
    listings = [r for r in do_fake.calls("GET", "/v2/droplets") if r.query.get("tag_name")]
    assert len(listings) == 2
    assert len(do_fake.droplets) == 1


async def test_errors_that_persist_become_a_droplet_error(do_fake, rec) -> None:
    do_fake.fail("GET /v2/sizes", 500, times=100)
    with pytest.raises(DropletError, match=r"did not list droplet sizes after 5 tries: .*500"):
        await driver(do_fake, rec).list_sizes()
    assert len(do_fake.calls("GET", "/v2/sizes")) == 5


async def test_a_slow_answer_times_out_and_is_retried(do_fake, rec) -> None:
    droplet = do_fake.add_droplet("hub", tags=[DROPLET_TAG])
    do_fake.slow("GET /v2/droplets/{droplet_id}", 5.0)
    info = await driver(do_fake, rec, request_timeout=0.2).get(droplet.id)

    # The event loop kept serving the fake while the first call hung in its thread.
    assert info.id == droplet.id
    assert len(do_fake.calls("GET", f"/v2/droplets/{droplet.id}")) == 2
    assert rec.retry_waits == [1.0]


async def test_refusals_say_what_digitalocean_said(do_fake, rec) -> None:
    with pytest.raises(DropletError, match="could not find droplet 424242: not found"):
        await driver(do_fake, rec).get(424242)


async def test_a_wrong_token_is_reported_and_never_shown(do_fake, rec) -> None:
    token = "dop_v1_" + "f" * 64
    d = DropletDriver(token, poll_interval=POLL, sleep=rec.sleep)
    with pytest.raises(DropletError, match="Unable to authenticate you") as caught:
        await d.list_sizes()
    assert token not in str(caught.value)
    assert [r.status for r in do_fake.requests] == [401]


async def test_snapshot_takes_one_and_waits_for_it(do_fake, rec) -> None:
    droplet = do_fake.add_droplet("hub", tags=[DROPLET_TAG])
    await driver(do_fake, rec).snapshot(droplet.id, "physics101-2024-05-01", rec.progress)

    assert do_fake.action_types(droplet.id) == ["snapshot"]
    assert [s["name"] for s in do_fake.snapshots] == ["physics101-2024-05-01"]
    assert droplet.status == "active"  # taken live; students keep working


async def test_snapshot_name_is_validated(do_fake, rec) -> None:
    with pytest.raises(DropletError, match="snapshot name"):
        await driver(do_fake, rec).snapshot(1, "x; reboot", rec.progress)
    assert do_fake.requests == []


async def test_errored_snapshot_is_an_error(do_fake, rec) -> None:
    droplet = do_fake.add_droplet("hub", tags=[DROPLET_TAG])
    do_fake.error_action("snapshot")
    with pytest.raises(DropletError, match="snapshot action failed"):
        await driver(do_fake, rec).snapshot(droplet.id, "snap", rec.progress)


async def test_reboot_waits_until_running(do_fake, rec) -> None:
    droplet = do_fake.add_droplet("hub", tags=[DROPLET_TAG])
    await driver(do_fake, rec).reboot(droplet.id, rec.progress)

    assert do_fake.action_types(droplet.id) == ["reboot"]
    assert any("running" in line for line in rec.lines)


async def test_list_sizes(do_fake, rec) -> None:
    d = driver(do_fake, rec)
    sizes = {s.slug: s for s in await d.list_sizes()}

    big = sizes["s-4vcpu-8gb"]
    assert (big.vcpus, big.memory, big.disk, big.price_monthly) == (4, 8192, 160, 48.0)
    assert "syd1" in big.regions and big.available
    assert sizes["s-16vcpu-32gb"].available is False
    assert "syd1" not in sizes["s-8vcpu-16gb-amd"].regions
    chosen = choose_size("s-4vcpu", list(sizes.values()), "syd1").chosen
    assert chosen is not None and chosen.slug == "s-4vcpu-8gb"


async def test_dns_is_left_alone_when_the_domain_is_elsewhere(do_fake, rec) -> None:
    do_fake.add_domain("other.org")
    made = await driver(do_fake, rec).ensure_dns_a_record("hub.example.edu", "127.0.0.2", OWNER)
    assert made is None
    assert do_fake.calls("POST", "/v2/domains") == []


async def test_dns_record_is_created_once(do_fake, rec) -> None:
    do_fake.add_domain("example.edu")
    d = driver(do_fake, rec)
    first = await d.ensure_dns_a_record("Hub.Example.edu.", "127.0.0.2", OWNER)
    assert await d.ensure_dns_a_record("hub.example.edu", "127.0.0.2", OWNER) == first

    a_records = [r for r in do_fake.domains["example.edu"] if r["type"] == "A"]
    assert [(r["id"], r["name"], r["data"]) for r in a_records] == [(first, "hub", "127.0.0.2")]
    marks = [r for r in do_fake.domains["example.edu"] if r["type"] == "TXT"]
    assert [(r["name"], r["data"]) for r in marks] == [("_littlest-classroom.hub", OWNER)]
    assert len(do_fake.calls("POST", "/v2/domains/example.edu/records")) == 2


async def test_dns_record_is_updated_in_place_when_the_address_changes(do_fake, rec) -> None:
    do_fake.add_domain("example.edu")
    d = driver(do_fake, rec)
    await d.ensure_dns_a_record("hub.example.edu", "127.0.0.2", OWNER)
    await d.ensure_dns_a_record("hub.example.edu", "127.0.0.3", OWNER)

    a_records = [r for r in do_fake.domains["example.edu"] if r["type"] == "A"]
    assert [(r["name"], r["data"]) for r in a_records] == [("hub", "127.0.0.3")]
    assert len(do_fake.calls("PUT", "/v2/domains/example.edu/records/")) == 1


async def test_dns_uses_the_most_specific_domain_and_the_apex(do_fake, rec) -> None:
    do_fake.add_domain("example.edu")
    do_fake.add_domain("cs.example.edu")
    d = driver(do_fake, rec)
    await d.ensure_dns_a_record("hub.cs.example.edu", "127.0.0.2", OWNER)
    await d.ensure_dns_a_record("example.edu", "127.0.0.4", OWNER)

    assert [r["name"] for r in do_fake.domains["cs.example.edu"] if r["type"] == "A"] == ["hub"]
    assert [r["name"] for r in do_fake.domains["example.edu"] if r["type"] == "A"] == ["@"]


@pytest.mark.parametrize(
    ("hostname", "ipv4"),
    [("hub example.edu", "127.0.0.2"), ("-hub.example.edu", "127.0.0.2"), ("hub.edu", "::1")],
)
async def test_dns_refuses_bad_values(do_fake, rec, hostname: str, ipv4: str) -> None:
    with pytest.raises(DropletError):
        await driver(do_fake, rec).ensure_dns_a_record(hostname, ipv4, OWNER)
    assert do_fake.requests == []


async def test_progress_never_shows_the_token(do_fake, rec) -> None:
    await ensure(driver(do_fake, rec), rec)
    assert rec.lines
    assert not any(do_fake.token in line for line in rec.lines)


# ---- the fake itself ----------------------------------------------------------------------


async def test_the_fake_flags_requests_that_break_the_spec(monkeypatch) -> None:
    # python-digitalocean's own Droplet.create sends "vpc_uuid": null, which the API's
    # description does not allow; that is why the driver builds the request itself.
    fake = DigitalOceanFake(validator=openapi_validator())
    monkeypatch.setenv("DIGITALOCEAN_END_POINT", await fake.start())
    try:
        droplet = digitalocean.Droplet(
            token=fake.token, name="hub", region="syd1", size_slug="s-1vcpu-1gb", image="x"
        )
        with pytest.raises(digitalocean.Error):
            await asyncio.to_thread(droplet.create)
    finally:
        await fake.close()
    assert any("vpc_uuid" in e for e in fake.validation_errors)
    assert fake.droplets == {}


async def test_the_fake_refuses_to_resize_a_running_droplet(do_fake) -> None:
    droplet = do_fake.add_droplet("hub")
    api = digitalocean.Droplet(token=do_fake.token, id=droplet.id)
    with pytest.raises(digitalocean.Error, match="power it off"):
        await asyncio.to_thread(api.resize, "s-4vcpu-8gb", disk=False)


# ---- safety invariant 1: never rebuild, restore or destroy --------------------------------

FORBIDDEN_SOURCE = re.compile(
    r"""\b(?:rebuild|restore|destroy)\s*\(|["'](?:rebuild|restore)["']|destroy_with""",
)


def test_no_deploy_source_can_rebuild_restore_or_destroy() -> None:
    offenders = []
    for path in sorted(DEPLOY.rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if FORBIDDEN_SOURCE.search(line):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert offenders == []


def test_the_source_check_would_catch_an_offence() -> None:
    assert FORBIDDEN_SOURCE.search("droplet.rebuild(image)")
    assert FORBIDDEN_SOURCE.search("await self._action(i, 'x', t, 'restore', 5)")
    assert FORBIDDEN_SOURCE.search('{"type": "rebuild"}')
    assert FORBIDDEN_SOURCE.search("droplet.destroy ()")
    assert not FORBIDDEN_SOURCE.search("# never rebuilds or restores a droplet")


async def test_full_scenario_never_asks_to_rebuild_restore_or_destroy(do_fake, rec) -> None:
    do_fake.add_domain("example.edu")
    d = driver(do_fake, rec)
    info = await ensure(d, rec)
    await ensure(d, rec)
    do_fake.hang_action("shutdown")
    await d.resize(info.id, "s-4vcpu-8gb", disk=False, progress=rec.progress)
    do_fake.error_action("resize")
    with pytest.raises(DropletError):
        await d.resize(info.id, "s-8vcpu-16gb", disk=True, progress=rec.progress)
    await d.snapshot(info.id, "before-term", rec.progress)
    await d.reboot(info.id, rec.progress)
    await d.ensure_dns_a_record("hub.example.edu", info.ipv4 or "", OWNER)
    await d.get(info.id)

    assert_never_destructive(do_fake)
    assert {"create", "shutdown", "power_off", "resize", "power_on", "snapshot", "reboot"} <= set(
        do_fake.action_types()
    )


def assert_never_destructive(fake: DigitalOceanFake) -> None:
    assert not {"rebuild", "restore"} & set(fake.action_types())
    assert [r for r in fake.requests if r.method == "DELETE"] == []


async def test_the_log_check_would_catch_an_offence(do_fake) -> None:
    droplet = do_fake.add_droplet("hub")
    api = digitalocean.Droplet(token=do_fake.token, id=droplet.id)
    await asyncio.to_thread(api.rebuild, 1000)
    with pytest.raises(AssertionError):
        assert_never_destructive(do_fake)
    do_fake.actions.clear()
    await asyncio.to_thread(api.destroy)
    with pytest.raises(AssertionError):
        assert_never_destructive(do_fake)


async def test_no_answer_at_all_is_retried_then_reported(monkeypatch, rec) -> None:
    import socket

    # A loopback port that was free a moment ago: nothing listens there.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("DIGITALOCEAN_END_POINT", f"http://127.0.0.1:{port}/v2/")
    d = DropletDriver("dop_v1_" + "a" * 64, poll_interval=POLL, sleep=rec.sleep, max_attempts=3)
    with pytest.raises(DropletError, match=r"did not list droplet sizes after 3 tries: no answer"):
        await d.list_sizes()
    assert rec.retry_waits == [1.0, 2.0]


async def test_the_fake_keeps_actions_in_progress_for_their_time(monkeypatch) -> None:
    fake = DigitalOceanFake(validator=openapi_validator(), action_polls=1, action_seconds=3600)
    monkeypatch.setenv("DIGITALOCEAN_END_POINT", await fake.start())
    try:
        droplet = fake.add_droplet("hub")
        api = digitalocean.Droplet(token=fake.token, id=droplet.id)
        action = await asyncio.to_thread(api.reboot, return_dict=False)
        for _ in range(3):
            await asyncio.to_thread(action.load_directly)
    finally:
        await fake.close()
    assert action.status == "in-progress"
    assert fake.validation_errors == []


# ---- the one request path: deploy.providers.digitalocean_api ---------------------------

PRIVATE_LIBRARY_NAMES = re.compile(r"_BaseAPI__|_perform_action|__perform_request|__deal_with")


def test_no_deploy_source_uses_python_digitaloceans_private_names() -> None:
    offenders = [
        f"{path.name}:{number}: {line.strip()}"
        for path in sorted(DEPLOY.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE_LIBRARY_NAMES.search(line) and not line.lstrip().startswith("#")
    ]
    assert offenders == []


async def test_the_request_path_maps_each_answer(do_fake) -> None:
    api = DigitalOceanAPI(do_fake.token, request_timeout=2.0)
    droplet = do_fake.add_droplet("hub", tags=[DROPLET_TAG])

    loaded = api.new(digitalocean.Droplet, id=droplet.id)
    await asyncio.to_thread(loaded.load)
    assert loaded.name == "hub" and loaded.size_slug == "s-2vcpu-4gb"

    with pytest.raises(Gone):
        await asyncio.to_thread(api.new(digitalocean.Droplet, id=424242).load)

    do_fake.fail("GET /v2/droplets/{droplet_id}", 429, retry_after=9)
    with pytest.raises(Transient) as limited:
        await asyncio.to_thread(api.new(digitalocean.Droplet, id=droplet.id).load)
    assert limited.value.status == 429 and limited.value.headers["retry-after"] == "9"

    do_fake.fail("GET /v2/sizes", 503)
    with pytest.raises(Transient) as broken:
        await asyncio.to_thread(api.new(digitalocean.Manager).get_all_sizes)
    assert broken.value.status == 503

    with pytest.raises(Refused, match="Droplet is currently on"):
        await asyncio.to_thread(
            api.request,
            f"droplets/{droplet.id}/actions",
            "POST",
            {"type": "resize", "size": "s-4vcpu-8gb", "disk": False},
        )


async def test_a_wrong_token_is_wrongtoken_with_digitaloceans_message(do_fake) -> None:
    token = "dop_v1_" + "e" * 64
    api = DigitalOceanAPI(token)
    with pytest.raises(WrongToken, match="Unable to authenticate you") as caught:
        await asyncio.to_thread(api.new(digitalocean.Manager).get_all_sizes)
    assert token not in str(caught.value)


async def test_no_answer_is_transient_without_a_status(do_fake) -> None:
    droplet = do_fake.add_droplet("hub", tags=[DROPLET_TAG])
    do_fake.slow("GET /v2/droplets/{droplet_id}", 5.0)
    api = DigitalOceanAPI(do_fake.token, request_timeout=0.2)
    with pytest.raises(Transient) as caught:
        await asyncio.to_thread(api.new(digitalocean.Droplet, id=droplet.id).load)
    assert caught.value.status is None


async def test_find_names_the_tagged_droplet_or_none(do_fake, rec) -> None:
    do_fake.add_droplet("physics101-hub")  # untagged: not the service's
    do_fake.add_droplet("physics101-hub", tags=[DROPLET_TAG, OTHER])  # another course's
    assert await driver(do_fake, rec).find("physics101-hub", OWNER) is None
    tagged = do_fake.add_droplet("physics101-hub", tags=[DROPLET_TAG, OWNER], size="s-4vcpu-8gb")
    found = await driver(do_fake, rec).find("physics101-hub", OWNER)
    assert found is not None and (found.id, found.size) == (tagged.id, "s-4vcpu-8gb")


async def test_the_request_path_reads_every_page(do_fake) -> None:
    names = [f"hub-{n}" for n in range(5)]
    for name in names:
        do_fake.add_droplet(name, tags=[DROPLET_TAG])
    api = DigitalOceanAPI(do_fake.token)
    manager = api.new(digitalocean.Manager)
    data = await asyncio.to_thread(
        manager.get_data, "droplets/", params={"tag_name": DROPLET_TAG, "per_page": 2}
    )
    assert [d["name"] for d in data["droplets"]] == names
    pages = [r.query.get("page") for r in do_fake.calls("GET", "/v2/droplets")]
    assert pages == [None, "2", "3"]


# ---- ownership: a course finds only its own droplet and DNS names -----------------------


async def test_another_courses_droplet_of_the_same_name_is_never_taken(do_fake, rec) -> None:
    theirs = do_fake.add_droplet("physics101-hub", tags=[DROPLET_TAG, OTHER])
    info = await ensure(driver(do_fake, rec), rec)

    assert info.id != theirs.id
    assert do_fake.droplets[theirs.id].tags == [DROPLET_TAG, OTHER]
    assert do_fake.calls("POST", "/v2/tags") == []


async def test_a_droplet_made_before_tags_is_adopted_only_as_the_record_names_it(
    do_fake, rec
) -> None:
    old = do_fake.add_droplet("physics101-hub", tags=[DROPLET_TAG])
    d = driver(do_fake, rec)
    # By name alone it is not taken: a new droplet is made beside it.
    by_name = await d.find("physics101-hub", OWNER)
    assert by_name is None
    # The course's record names it: it is tagged as the course's and used.
    info = await ensure(d, rec, name="physics101-hub-lp", known_id=old.id)

    assert info.id == old.id
    assert do_fake.droplets[old.id].tags == [DROPLET_TAG, OWNER]
    assert do_fake.calls("POST", "/v2/droplets") == []
    [tagging] = do_fake.calls("POST", f"/v2/tags/{OWNER}/resources")
    assert tagging.body == {"resources": [{"resource_id": str(old.id), "resource_type": "droplet"}]}


async def test_a_record_naming_another_courses_droplet_adopts_nothing(do_fake, rec) -> None:
    theirs = do_fake.add_droplet("physics101-hub", tags=[DROPLET_TAG, OTHER])
    info = await ensure(driver(do_fake, rec), rec, known_id=theirs.id)

    assert info.id != theirs.id
    assert do_fake.droplets[theirs.id].tags == [DROPLET_TAG, OTHER]


async def test_dns_an_a_record_someone_else_made_is_refused_and_left_alone(do_fake, rec) -> None:
    do_fake.add_domain("example.edu")
    do_fake.domains["example.edu"].append(
        {"id": 9, "type": "A", "name": "hub", "data": "203.0.113.9", "ttl": 1800}
    )
    d = driver(do_fake, rec)
    assert "did not make" in (await d.dns_refusal("hub.example.edu", OWNER) or "")
    with pytest.raises(DropletError, match="did not make"):
        await d.ensure_dns_a_record("hub.example.edu", "127.0.0.2", OWNER)

    a_records = [r for r in do_fake.domains["example.edu"] if r["type"] in ("A", "TXT")]
    assert [r["data"] for r in a_records] == ["203.0.113.9"]
    assert do_fake.calls("POST", "/v2/domains/example.edu/records") == []
    assert do_fake.calls("PUT", "/v2/domains/example.edu/records/") == []


async def test_dns_another_courses_name_is_refused_and_its_own_is_kept(do_fake, rec) -> None:
    do_fake.add_domain("example.edu")
    d = driver(do_fake, rec)
    theirs = await d.ensure_dns_a_record("hub.example.edu", "127.0.0.2", OTHER)
    assert await d.ensure_dns_a_record("hub.example.edu", "127.0.0.2", OTHER) == theirs

    with pytest.raises(DropletError, match="another course"):
        await d.ensure_dns_a_record("hub.example.edu", "127.0.0.3", OWNER)
    a_records = [r for r in do_fake.domains["example.edu"] if r["type"] == "A"]
    assert [r["data"] for r in a_records] == ["127.0.0.2"]


async def test_dns_the_record_the_course_remembers_is_its_own(do_fake, rec) -> None:
    do_fake.add_domain("example.edu")
    do_fake.domains["example.edu"].append(
        {"id": 9, "type": "A", "name": "hub", "data": "127.0.0.2", "ttl": 1800}
    )
    made = await driver(do_fake, rec).ensure_dns_a_record(
        "hub.example.edu", "127.0.0.3", OWNER, known_record_id=9
    )
    assert made == 9
    assert [r["data"] for r in do_fake.domains["example.edu"] if r["type"] == "A"] == ["127.0.0.3"]


async def test_addresses_lists_droplets_and_reserved_ips_with_their_tags(do_fake, rec) -> None:
    ours = do_fake.add_droplet("a", tags=[DROPLET_TAG, OWNER])
    theirs = do_fake.add_droplet("b", tags=[DROPLET_TAG, OTHER])
    found = await driver(do_fake, rec).addresses()
    assert (ours.ipv4, (DROPLET_TAG, OWNER), ours.id) in found
    assert (theirs.ipv4, (DROPLET_TAG, OTHER), theirs.id) in found


async def test_a_droplet_snapshot_is_tagged_as_the_courses(do_fake, rec) -> None:
    droplet = do_fake.add_droplet("hub", tags=[DROPLET_TAG, OWNER])
    other = do_fake.add_droplet("other", tags=[DROPLET_TAG, OTHER])
    d = driver(do_fake, rec)
    await d.snapshot(other.id, "before-term", rec.progress)
    await d.snapshot(droplet.id, "before-term", rec.progress, OWNER)

    tags = {s["resource_id"]: s["tags"] for s in do_fake.snapshots}
    assert tags == {str(droplet.id): [OWNER], str(other.id): []}
