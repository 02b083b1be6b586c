"""Drive DigitalOcean droplets: find or create, resize, snapshot, reboot, DNS, and sizes.

Every call goes through python-digitalocean (by way of
``deploy.providers.digitalocean_api``, the one place a request is sent and its errors
mapped), which blocks, so each one runs in a worker thread and the event loop never waits
on the network. Rate limits (429), server errors
(5xx) and timeouts are retried by the one policy of ``deploy.retry``, waits bounded. By
design nothing in this module can rebuild, restore or destroy a droplet (safety invariant
1): students' work lives on the droplet's disk.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import digitalocean

from deploy.course.validate import MAX_SIZE_SLUG, SIZE_SLUG, Invalid, check_size_slug
from deploy.keys import COURSE_KEY_PREFIX
from deploy.model import DROPLET_TAG, Progress
from deploy.ownership import owner_tags
from deploy.providers.digitalocean_api import (
    POST,
    PUT,
    DigitalOceanAPI,
    DigitalOceanError,
    Gone,
    Transient,
    WrongToken,
)
from deploy.redact import redact
from deploy.retry import MAX_RATE_LIMIT_WAIT, RetryPolicy, backoff, rate_limit_wait

logger = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[Any]]

SLUG_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
# DigitalOcean's own pattern for droplet names, with its length limit.
DROPLET_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9]?[a-zA-Z0-9.\-]*[a-zA-Z0-9]$")
SNAPSHOT_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
HOSTNAME_PATTERN = re.compile(
    r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$"
)
# An account SSH key's name, taken from the public line's comment (a course's key).
KEY_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PUBLIC_KEY_PATTERN = re.compile(
    r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)) ([A-Za-z0-9+/]+={0,3})(?: .*)?$"
)
CPU_VENDOR_SUFFIXES = ("-amd", "-intel")

# How many tries a call gets before we give up.
MAX_ATTEMPTS = 5
POWER_ON_ATTEMPTS = 3


class DropletError(RuntimeError):
    """Something DigitalOcean refused or never finished, said so a person understands it."""


@dataclass(frozen=True)
class DropletInfo:
    id: int
    name: str
    size: str
    region: str
    status: str
    ipv4: str | None
    vcpus: int
    memory: int  # MB
    disk: int  # GB
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class SizeInfo:
    slug: str
    vcpus: int
    memory: int  # MB
    disk: int  # GB
    price_monthly: float
    regions: tuple[str, ...]
    available: bool


@dataclass(frozen=True)
class SizeChoice:
    """What ``/resize SIZE`` resolves to: the size chosen, or why none was."""

    wanted: str
    chosen: SizeInfo | None
    others: tuple[SizeInfo, ...] = ()  # the other sizes that also matched
    valid: tuple[str, ...] = ()  # every size one may ask for in the region
    message: str = ""


# ---- pure helpers ------------------------------------------------------------------------


def has_vendor_suffix(slug: str) -> bool:
    return slug.endswith(CPU_VENDOR_SUFFIXES)


def choose_size(wanted: str, sizes: list[SizeInfo], region: str) -> SizeChoice:
    """Resolve what a person typed after ``/resize`` to one of DigitalOcean's sizes.

    An exact slug wins. Otherwise a prefix such as ``s-4vcpu`` picks the cheapest size
    available in ``region`` that starts with it, leaving out the CPU-vendor variants
    (``-amd``, ``-intel``), which must be asked for by their full slug.
    """
    usable = sorted(
        (s for s in sizes if s.available and region in s.regions),
        key=lambda s: (s.price_monthly, s.slug),
    )
    valid = tuple(s.slug for s in usable)
    if len(wanted) > MAX_SIZE_SLUG or not SIZE_SLUG.fullmatch(wanted):
        return SizeChoice(
            wanted,
            None,
            valid=valid,
            message=(
                f"{wanted[:64]!r} is not a size: a size is lower-case letters and digits joined "
                "by single '-' or '_', such as s-2vcpu-4gb"
            ),
        )
    exact = next((s for s in sizes if s.slug == wanted), None)
    if exact is not None:
        if exact in usable:
            return SizeChoice(wanted, exact, valid=valid, message=f"{wanted} chosen")
        return SizeChoice(
            wanted,
            None,
            valid=valid,
            message=f"{wanted} is not available in {region}",
        )
    matches = [s for s in usable if s.slug.startswith(wanted) and not has_vendor_suffix(s.slug)]
    if not matches:
        return SizeChoice(
            wanted,
            None,
            valid=valid,
            message=f"no size available in {region} matches {wanted}",
        )
    chosen, others = matches[0], tuple(matches[1:])
    return SizeChoice(
        wanted,
        chosen,
        others=others,
        valid=valid,
        message=(
            f"{chosen.slug} chosen for {wanted}, the cheapest match "
            f"(${chosen.price_monthly:g}/month)"
        ),
    )


def retry_delay(
    status: int | None,
    headers: Mapping[str, str],
    attempt: int,
    now: float,
    *,
    max_wait: float = MAX_RATE_LIMIT_WAIT,
) -> float:
    """How long to wait before try number ``attempt + 1`` after a failed one.

    A 429 says when the limit resets (``ratelimit-reset``, epoch seconds) or how long to
    wait (``retry-after``); anything else backs off exponentially. Never above the bounds.
    """
    if status == 429:
        asked = rate_limit_wait(headers, now, max_wait=max_wait)
        return asked if asked is not None else backoff(attempt + 1, cap=max_wait)
    return backoff(attempt + 1)


def public_key_fingerprint(public_key: str) -> str:
    """DigitalOcean's fingerprint of an OpenSSH public key (MD5 of the blob, colon hex)."""
    match = PUBLIC_KEY_PATTERN.fullmatch(public_key.strip())
    if not match:
        raise DropletError("the service's SSH public key is not an OpenSSH public key line")
    try:
        blob = base64.b64decode(match.group(2), validate=True)
    except binascii.Error as exc:
        raise DropletError("the service's SSH public key is not valid base64") from exc
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def record_name(hostname: str, domain: str) -> str:
    """The record name DigitalOcean uses for ``hostname`` inside ``domain`` ("@" for the apex)."""
    return "@" if hostname == domain else hostname[: -len(domain) - 1]


def owning_domain(hostname: str, domains: list[str]) -> str | None:
    """The most specific of ``domains`` that ``hostname`` is, or lies under."""
    candidates = [d for d in domains if hostname == d or hostname.endswith("." + d)]
    return max(candidates, key=len) if candidates else None


OWNERSHIP_RECORD = "_littlest-classroom"


def ownership_record_name(name: str) -> str:
    """The TXT record that says which course made the A record ``name`` ("@": the apex)."""
    return OWNERSHIP_RECORD if name == "@" else f"{OWNERSHIP_RECORD}.{name}"


def dns_taken(
    hostname: str,
    owner: str,
    a_records: list[Any],
    txt: list[Any],
    known_record_id: int | None = None,
) -> str | None:
    """Why ``hostname``'s records are not this course's to change, or ``None``.

    Its own: no A record yet (and no other course's mark), or an A record this course made:
    the one its record names, or one whose TXT mark says ``owner``.
    """
    marks = {str(r.data).strip('"') for r in txt}
    others = {m for m in marks if m != owner}
    if others:
        return (
            f"hub.hostname {hostname} belongs to another course of this service; choose "
            "another name. Nothing was changed."
        )
    if not a_records or owner in marks:
        return None
    if known_record_id is not None and all(int(r.id) == known_record_id for r in a_records):
        return None
    return (
        f"hub.hostname {hostname} already has a DNS A record that this course did not make; "
        "choose another name, or delete that record in DigitalOcean if it is unused. "
        "Nothing was changed."
    )


def _check(pattern: re.Pattern[str], value: str, what: str, example: str) -> str:
    if not isinstance(value, str) or len(value) > 255 or not pattern.fullmatch(value):
        raise DropletError(f"{what} {str(value)[:80]!r} is not allowed; expected e.g. {example}")
    return value


def check_size(size: str) -> str:
    # The rule commands and the course config use, so a size they accept is never refused here.
    try:
        return check_size_slug(size)
    except Invalid as exc:
        raise DropletError(f"size {str(size)[:80]!r} is not allowed: {exc}") from None


# ---- the I/O layer -----------------------------------------------------------------------


class _ActionTimeout(DropletError):
    """An action still in progress when our patience ran out."""


class _StillMissing(Exception):
    """A create got no answer and what it may have made has not appeared yet."""


def _transient(failure: BaseException) -> bool:
    return isinstance(failure, Transient)


def _converging(failure: BaseException) -> bool:
    return isinstance(failure, Transient | _StillMissing)


def _wait_after(failure: BaseException, failures: int) -> float:
    """The pause before the next try: as a 429 asks, else backing off."""
    if isinstance(failure, Transient):
        return retry_delay(failure.status, failure.headers, failures - 1, time.time())
    return backoff(failures)


class DropletDriver:
    """Everything the service asks of DigitalOcean, as async methods."""

    def __init__(
        self,
        token: str,
        *,
        poll_interval: float = 5.0,
        timeout: float = 600.0,
        sleep: Sleep = asyncio.sleep,
        shutdown_timeout: float = 120.0,
        request_timeout: float = 30.0,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        if not token:
            raise DropletError("no DigitalOcean token is configured (DIGITALOCEAN_ACCESS_TOKEN)")
        self.api = DigitalOceanAPI(token, request_timeout=request_timeout)
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.shutdown_timeout = shutdown_timeout
        self.max_attempts = max_attempts
        self._sleep = sleep
        # Every request: 429, 5xx and no answer are tried again, as DigitalOcean asks.
        self._requests = RetryPolicy(
            retry_on=_transient, attempts=max_attempts, wait=_wait_after, sleep=sleep
        )
        # A create (droplet, DNS record) converges: it looks before asking again, and after
        # a create that got no answer it only looks, so nothing is made twice.
        self._creates = RetryPolicy(
            retry_on=_converging, attempts=max_attempts, wait=_wait_after, sleep=sleep
        )

    # ---- plumbing ----

    async def _call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one blocking library call in a thread, retrying what is worth retrying."""

        async def once() -> T:
            return await asyncio.to_thread(fn, *args, **kwargs)

        async def on_retry(failure: BaseException, _tries: int, delay: float) -> None:
            logger.warning("%s: %s; retrying in %.1fs", what, failure, delay)

        try:
            return await self._requests.call(once, on_retry=on_retry)
        except DigitalOceanError as exc:
            raise _explained(exc, what, self.max_attempts) from None

    def _polls(self, timeout: float) -> int:
        # Counted in polls, not clock time, so a test's instant sleep still ends the wait.
        return max(1, math.ceil(timeout / self.poll_interval)) if self.poll_interval else 1000

    async def _wait_action(
        self, droplet_id: int, action_id: int, what: str, timeout: float
    ) -> None:
        """Poll one action until it completes; DropletError if it errors or outlasts ``timeout``."""
        action = self.api.new(digitalocean.Action, id=action_id, droplet_id=droplet_id)
        for _ in range(self._polls(timeout)):
            await self._call(f"report on the {what}", action.load)
            if action.status == "completed":
                return
            if action.status == "errored":
                raise DropletError(f"the {what} action failed on DigitalOcean's side")
            await self._sleep(self.poll_interval)
        raise _ActionTimeout(f"the {what} action did not finish within {timeout:g} s")

    async def _action(
        self,
        droplet_id: int,
        what: str,
        timeout: float,
        start: Callable[[digitalocean.Droplet], dict[str, Any]],
    ) -> None:
        """Start one droplet action (``start`` calls the Droplet's method) and wait for it."""
        droplet = self.api.new(digitalocean.Droplet, id=droplet_id)
        answer = await self._call(f"start the {what}", start, droplet)
        await self._wait_action(droplet_id, int(answer["action"]["id"]), what, timeout)

    async def _load(self, droplet_id: int) -> digitalocean.Droplet:
        droplet = self.api.new(digitalocean.Droplet, id=int(droplet_id))
        await self._call(f"find droplet {int(droplet_id)}", droplet.load)
        return droplet

    # ---- reading ----

    async def get(self, droplet_id: int) -> DropletInfo:
        return _info(await self._load(droplet_id))

    async def find(self, name: str, owner: str, known_id: int | None = None) -> DropletInfo | None:
        """The course's droplet: one carrying its tag ``owner`` (see ``_find``)."""
        _check(DROPLET_NAME_PATTERN, name, "droplet name", "physics101-hub")
        found = await self._find(name, owner, known_id)
        return _info(found) if found is not None else None

    async def tag(self, tag: str, resource_type: str, ids: list[Any]) -> None:
        """Put ``tag`` on resources (``droplet``, ``volume``, ``volume_snapshot``)."""
        if not ids:
            return
        await self._call("create tag", self.api.request, "tags", POST, {"name": tag})
        await self._call(
            f"tag {len(ids)} {resource_type}(s) {tag}",
            self.api.request,
            f"tags/{tag}/resources",
            POST,
            {"resources": [{"resource_id": str(i), "resource_type": resource_type} for i in ids]},
        )

    async def addresses(self) -> list[tuple[str, tuple[str, ...], int | None]]:
        """Every public IPv4 address in the account: each droplet's (with its tags and id)
        and each reserved IP's (with the tags and id of the droplet holding it, if any)."""
        manager = self.api.new(digitalocean.Manager)
        droplets = [_info(d) for d in await self._call("list droplets", manager.get_all_droplets)]
        by_id = {d.id: d for d in droplets}
        found: list[tuple[str, tuple[str, ...], int | None]] = [
            (d.ipv4, d.tags, d.id) for d in droplets if d.ipv4
        ]
        reserved = await self._call(
            "list reserved IPs", self.api.request, "reserved_ips", "GET", None
        )
        for entry in reserved.get("reserved_ips", []):
            holder = (entry.get("droplet") or {}).get("id")
            tags = by_id[holder].tags if holder in by_id else ()
            found.append((str(entry["ip"]), tags, holder))
        return found

    async def list_sizes(self) -> list[SizeInfo]:
        manager = self.api.new(digitalocean.Manager)
        sizes = await self._call("list droplet sizes", manager.get_all_sizes)
        return [
            SizeInfo(
                slug=s.slug,
                vcpus=int(s.vcpus),
                memory=int(s.memory),
                disk=int(s.disk),
                price_monthly=float(s.price_monthly),
                regions=tuple(s.regions or ()),
                available=bool(getattr(s, "available", True)),
            )
            for s in sizes
        ]

    # ---- creating ----

    async def ensure_droplet(
        self,
        name: str,
        owner: str,
        region: str,
        size: str,
        image: str,
        ssh_public_key: str,
        progress: Progress,
        known_id: int | None = None,
    ) -> DropletInfo:
        """The course's droplet (``_find``), created with its tag ``owner`` if it has none;
        running."""
        _check(DROPLET_NAME_PATTERN, name, "droplet name", "physics101-hub")
        _check(SLUG_PATTERN, region, "region", "syd1")
        check_size(size)
        _check(SLUG_PATTERN, image, "image", "ubuntu-24-04-x64")
        key_fingerprint = public_key_fingerprint(ssh_public_key)
        unanswered = False  # a create went out and no answer came back

        async def converge() -> DropletInfo:
            nonlocal unanswered
            existing = await self._find(name, owner, known_id)
            if existing is not None:
                await _say(progress, f"Found droplet {name} (id {existing.id}, {existing.status})")
                if existing.status == "off":
                    await _say(progress, "It is powered off; powering it on")
                    await self._power_on(existing.id, progress)
                return await self._wait_running(existing.id, progress)
            if unanswered:
                # The create we got no answer to may still be under way at DigitalOcean;
                # asking again could make a second droplet, so only look for the first.
                raise _StillMissing()
            key_id = await self._ensure_key(ssh_public_key, key_fingerprint, progress)
            await _say(progress, f"Creating droplet {name} ({size}, {image}) in {region}")
            # Droplet.create would send "vpc_uuid": null, which the API's description does
            # not allow; the same request through the library's get_data leaves it out.
            request = {
                "name": name,
                "region": region,
                "size": size,
                "image": image,
                "ssh_keys": [key_id],
                "tags": [DROPLET_TAG, owner],
                "monitoring": True,
                "backups": False,
                "ipv6": False,
            }
            try:
                created = await asyncio.to_thread(self.api.request, "droplets/", POST, request)
            except Transient as exc:
                unanswered = unanswered or exc.status is None
                raise
            return await self._wait_running(int(created["droplet"]["id"]), progress)

        try:
            return await self._creates.call(converge)
        except _StillMissing:
            raise DropletError(
                f"DigitalOcean did not answer the request to create {name}, and it "
                "has not appeared yet; the next deploy adopts it if it does, "
                "rather than creating another"
            ) from None
        except Transient as exc:
            raise DropletError(f"DigitalOcean did not create {name}: {exc.message}") from None
        except DigitalOceanError as exc:
            raise _explained(exc, f"create {name}", self.max_attempts) from None

    async def _find(
        self, name: str, owner: str, known_id: int | None = None
    ) -> digitalocean.Droplet | None:
        """The course's droplet, by its tag ``owner`` only, never by name in the account.

        Among the droplets with the tag: the one the course's record names (``known_id``),
        else the one named ``name``, else the only one. A droplet made before courses had
        tags (the service's tag, no course's) is adopted, and tagged, only when it is the
        one the course's record names: the database already ties it to this course.
        """
        manager = self.api.new(digitalocean.Manager)
        tagged = await self._call(
            "list the course's droplets", manager.get_all_droplets, tag_name=owner
        )
        if known_id is not None:
            remembered = [d for d in tagged if int(d.id) == int(known_id)]
            if remembered:
                return remembered[0]
        named = [d for d in tagged if d.name == name]
        if len(named) > 1:
            ids = ", ".join(str(d.id) for d in named)
            raise DropletError(
                f"{len(named)} droplets are named {name} and tagged {owner} "
                f"(ids {ids}); rename or untag all but one"
            )
        if named:
            return named[0]
        if len(tagged) == 1:
            return tagged[0]
        if known_id is not None:
            return await self._adopt(int(known_id), owner)
        return None

    async def _adopt(self, droplet_id: int, owner: str) -> digitalocean.Droplet | None:
        try:
            droplet = await self._load(droplet_id)
        except DropletError as exc:
            if "not found" in str(exc):
                return None
            raise
        tags = tuple(droplet.tags or ())
        if DROPLET_TAG not in tags or owner_tags(tags):
            return None  # not the service's, or another course's: never taken
        await self.tag(owner, "droplet", [droplet_id])
        droplet.tags = [*tags, owner]
        return droplet

    async def _ensure_key(self, public_key: str, key_fingerprint: str, progress: Progress) -> int:
        manager = self.api.new(digitalocean.Manager)
        keys = await self._call("list the account's SSH keys", manager.get_all_sshkeys)
        wanted = public_key.split()[:2]
        for key in keys:
            if key.fingerprint == key_fingerprint or (key.public_key or "").split()[:2] == wanted:
                return int(key.id)
        # Named by the key's comment: a course's key is "lc-course-<repository id>".
        comment = public_key.split()[2:3]
        name = comment[0] if comment and KEY_NAME_PATTERN.fullmatch(comment[0]) else DROPLET_TAG
        whose = (
            f"the course's SSH key {name}"
            if name.startswith(COURSE_KEY_PREFIX)
            else "the service's SSH key"
        )
        await _say(progress, f"Adding {whose} ({key_fingerprint}) to the account")
        key = self.api.new(digitalocean.SSHKey, name=name, public_key=public_key.strip())
        await self._call(f"add {whose}", key.create)
        return int(key.id)

    async def _wait_running(self, droplet_id: int, progress: Progress) -> DropletInfo:
        for _ in range(self._polls(self.timeout)):
            info = _info(await self._load(droplet_id))
            if info.status == "active" and info.ipv4:
                await _say(progress, f"Droplet {info.name} is running at {info.ipv4}")
                return info
            await self._sleep(self.poll_interval)
        raise DropletError(
            f"droplet {droplet_id} was not running with a public IPv4 address "
            f"within {self.timeout:g} s"
        )

    # ---- changing ----

    async def resize(
        self, droplet_id: int, size: str, *, disk: bool, progress: Progress
    ) -> DropletInfo:
        """Resize CPU and RAM (and the disk only when ``disk``); the droplet ends powered on."""
        check_size(size)
        droplet_id = int(droplet_id)
        current = await self.get(droplet_id)
        if current.size == size:
            # A resize that finished before the service was stopped (it may have been
            # killed before powering on): resizing again would only add downtime.
            await _say(progress, f"Droplet is already {size}")
            await self._power_on(droplet_id, progress)
            return await self.get(droplet_id)
        failure: DropletError | None = None
        try:
            await self._power_down(droplet_id, progress)
            what = "resize (CPU, RAM and disk)" if disk else "resize (CPU and RAM only)"
            await _say(progress, f"Resizing to {size}; {'disk too' if disk else 'disk unchanged'}")
            # Droplet.resize() defaults to disk=True and, for False, leaves the field out;
            # the library's get_data sends the API's own boolean, so the request says what
            # it means whichever way ``disk`` goes.
            action = {"type": "resize", "size": size, "disk": bool(disk)}
            await self._action(
                droplet_id,
                what,
                self.timeout,
                lambda d: d.get_data(f"droplets/{d.id}/actions/", type=POST, params=action),
            )
        except DropletError as exc:
            failure = exc
        finally:
            # Whatever happened above, students need their hub back.
            await self._power_on(droplet_id, progress, after=failure)
        if failure is not None:
            raise DropletError(f"DigitalOcean refused the resize to {size}: {failure}") from failure
        info = await self.get(droplet_id)
        await _say(progress, f"Droplet is now {info.size} ({info.vcpus} vCPU, {info.memory} MB)")
        return info

    async def _power_down(self, droplet_id: int, progress: Progress) -> None:
        if (await self._load(droplet_id)).status == "off":
            return
        await _say(progress, "Shutting the droplet down")
        try:
            await self._action(droplet_id, "shutdown", self.shutdown_timeout, _shutdown)
        except DropletError as exc:
            await _say(progress, f"Graceful shutdown did not finish ({exc}); powering off")
        if (await self._load(droplet_id)).status == "off":
            return
        try:
            await self._action(droplet_id, "power-off", self.timeout, _power_off)
        except DropletError as exc:
            raise DropletError(f"could not power the droplet off before resizing: {exc}") from exc

    async def _power_on(
        self, droplet_id: int, progress: Progress, *, after: DropletError | None = None
    ) -> None:
        async def once() -> None:
            if (await self._load(droplet_id)).status == "active":
                return
            await _say(progress, "Powering the droplet on")
            await self._action(droplet_id, "power-on", self.timeout, _power_on)

        async def on_retry(failure: BaseException, _tries: int, _delay: float) -> None:
            await _say(progress, f"Power-on failed ({failure}); trying again")

        policy = RetryPolicy(
            retry_on=lambda failure: isinstance(failure, DropletError),
            attempts=POWER_ON_ATTEMPTS,
            sleep=self._sleep,
        )
        try:
            await policy.call(once, on_retry=on_retry)
        except DropletError as last:
            earlier = f" after: {after}" if after else ""
            raise DropletError(
                f"could not power droplet {droplet_id} back on ({last}){earlier}; "
                "power it on from DigitalOcean's control panel"
            ) from None

    async def snapshot(
        self, droplet_id: int, name: str, progress: Progress, owner: str | None = None
    ) -> None:
        """Take a snapshot of the running droplet (DigitalOcean allows it while on), tagged
        as the course's (``owner``) once it is done."""
        _check(SNAPSHOT_NAME_PATTERN, name, "snapshot name", "physics101-2024-05-01")
        await _say(progress, f"Taking snapshot {name}")
        await self._action(
            int(droplet_id), "snapshot", self.timeout, lambda d: d.take_snapshot(name)
        )
        if owner is not None:
            listed = await self._call(
                "list droplet snapshots",
                self.api.request,
                "snapshots",
                "GET",
                {"resource_type": "droplet"},
            )
            taken = [
                s["id"]
                for s in listed.get("snapshots", [])
                if s.get("name") == name and str(s.get("resource_id")) == str(int(droplet_id))
            ]
            await self.tag(owner, "image", taken)
        await _say(progress, f"Snapshot {name} is done")

    async def reboot(self, droplet_id: int, progress: Progress) -> None:
        await _say(progress, "Rebooting the droplet")
        await self._action(int(droplet_id), "reboot", self.timeout, _reboot)
        await self._wait_running(int(droplet_id), progress)

    # ---- DNS ----

    async def _dns_records(
        self, hostname: str
    ) -> tuple[str, str, list[Any], list[Any], digitalocean.Domain] | None:
        """The domain of the account that holds ``hostname``, the record name in it, its
        A records and its ownership TXT records; ``None`` if no domain of the account does."""
        manager = self.api.new(digitalocean.Manager)
        domains = await self._call("list the account's domains", manager.get_all_domains)
        domain_name = owning_domain(hostname, [d.name for d in domains])
        if domain_name is None:
            return None
        name = record_name(hostname, domain_name)
        domain = self.api.new(digitalocean.Domain, name=domain_name)
        records = await self._call(
            f"list the DNS records of {domain_name}",
            domain.get_records,
            params={"name": hostname},
        )
        owner_name = ownership_record_name(name)
        owners = await self._call(
            f"list the DNS records of {domain_name}",
            domain.get_records,
            params={"type": "TXT", "name": f"{owner_name}.{domain_name}"},
        )
        a_records = [r for r in records if r.type == "A" and r.name == name]
        txt = [r for r in owners if r.type == "TXT" and r.name == owner_name]
        return domain_name, name, a_records, txt, domain

    async def dns_refusal(
        self, hostname: str, owner: str, known_record_id: int | None = None
    ) -> str | None:
        """Why ``hostname`` may not be this course's (only reads), or ``None``."""
        hostname = hostname.lower().rstrip(".")
        _check(HOSTNAME_PATTERN, hostname, "hostname", "hub.example.edu")
        found = await self._dns_records(hostname)
        if found is None:
            return None
        _, _, a_records, txt, _ = found
        return dns_taken(hostname, owner, a_records, txt, known_record_id)

    async def ensure_dns_a_record(
        self, hostname: str, ipv4: str, owner: str, known_record_id: int | None = None
    ) -> int | None:
        """Point ``hostname`` at ``ipv4`` when its domain is on this account; the A record's
        id, or ``None`` if the domain isn't. Only a record this course made is changed: it
        is the one the course's record names (``known_record_id``), or a TXT record
        ``_littlest-classroom.<name>`` beside it says ``owner``; any other is refused."""
        hostname = hostname.lower().rstrip(".")
        _check(HOSTNAME_PATTERN, hostname, "hostname", "hub.example.edu")
        try:
            address = ipaddress.IPv4Address(ipv4)
        except ValueError:
            raise DropletError(f"{ipv4[:40]!r} is not an IPv4 address") from None
        if await self._dns_records(hostname) is None:
            return None
        unanswered = False  # a create went out and no answer came back

        async def converge() -> int:
            nonlocal unanswered
            found = await self._dns_records(hostname)
            assert found is not None
            domain_name, name, matching, txt, domain = found
            refusal = dns_taken(hostname, owner, matching, txt, known_record_id)
            if refusal is not None:
                raise DropletError(refusal)
            if not txt:
                # The mark comes first: an A record is never left without it.
                await asyncio.to_thread(
                    domain.create_new_domain_record,
                    type="TXT",
                    name=ownership_record_name(name),
                    data=owner,
                    ttl=300,
                )
            same = [r for r in matching if r.data == str(address)]
            if same:
                return int(same[0].id)
            if matching:
                # Domain.update_domain_record would also send the read-only id; send only
                # what changes. A PUT may be repeated safely, so it is retried as usual.
                await self._call(
                    f"update the A record of {hostname}",
                    domain.get_data,
                    f"domains/{domain_name}/records/{int(matching[0].id)}",
                    type=PUT,
                    params={"type": "A", "name": name, "data": str(address)},
                )
                return int(matching[0].id)
            if unanswered:
                # The create we got no answer to may still land; asking again could make a
                # second record, so only look for the first.
                raise _StillMissing()
            try:
                created = await asyncio.to_thread(
                    domain.create_new_domain_record, type="A", name=name, data=str(address), ttl=300
                )
            except Transient as exc:
                unanswered = unanswered or exc.status is None
                raise
            return int(created["domain_record"]["id"])

        try:
            return await self._creates.call(converge)
        except _StillMissing:
            raise DropletError(
                f"DigitalOcean did not answer the request to create an A record for "
                f"{hostname}, and it has not appeared yet; the next deploy finds it if it "
                "does, rather than creating another"
            ) from None
        except Transient as exc:
            raise DropletError(
                f"DigitalOcean did not create an A record for {hostname} after "
                f"{self.max_attempts} tries: {exc.message}"
            ) from None
        except DigitalOceanError as exc:
            raise _explained(exc, f"create an A record for {hostname}", self.max_attempts) from None


def _shutdown(droplet: digitalocean.Droplet) -> dict[str, Any]:
    action: dict[str, Any] = droplet.shutdown()
    return action


def _power_off(droplet: digitalocean.Droplet) -> dict[str, Any]:
    action: dict[str, Any] = droplet.power_off()
    return action


def _power_on(droplet: digitalocean.Droplet) -> dict[str, Any]:
    action: dict[str, Any] = droplet.power_on()
    return action


def _reboot(droplet: digitalocean.Droplet) -> dict[str, Any]:
    action: dict[str, Any] = droplet.reboot()
    return action


def _explained(failure: DigitalOceanError, what: str, attempts: int) -> DropletError:
    """A DigitalOcean failure as the sentence an instructor or operator reads."""
    if isinstance(failure, Transient):
        return DropletError(f"DigitalOcean did not {what} after {attempts} tries: {failure}")
    if isinstance(failure, Gone):
        return DropletError(f"DigitalOcean could not {what}: not found")
    if isinstance(failure, WrongToken):
        return DropletError(
            f"DigitalOcean refused the token (DIGITALOCEAN_ACCESS_TOKEN) asked to {what}: {failure}"
        )
    return DropletError(f"DigitalOcean refused to {what}: {failure}")


def _info(droplet: Any) -> DropletInfo:
    region = droplet.region.get("slug", "") if isinstance(droplet.region, dict) else droplet.region
    ipv4 = None
    for net in (droplet.networks or {}).get("v4", []):
        if net.get("type") == "public":
            ipv4 = net.get("ip_address")
    return DropletInfo(
        id=int(droplet.id),
        name=droplet.name,
        size=droplet.size_slug,
        region=str(region),
        status=droplet.status,
        ipv4=ipv4,
        vcpus=int(droplet.vcpus or 0),
        memory=int(droplet.memory or 0),
        disk=int(droplet.disk or 0),
        tags=tuple(droplet.tags or ()),
    )


async def _say(progress: Progress, line: str) -> None:
    await progress(redact(line))
