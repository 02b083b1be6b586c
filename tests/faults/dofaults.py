"""Faults to inject into the fake DigitalOcean, by name, at the moment a step begins.

A step is named by the operation it calls ("METHOD /template") and, where one operation
serves several steps (every droplet action is ``POST .../actions``), by the progress line
the driver says just before it: the fault is armed when that line goes by, so it hits
exactly that step's request and no earlier one.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from tests.fakes.digitalocean import DigitalOceanFake, FakeRequest

ACTIONS = "POST /v2/droplets/{droplet_id}/actions"
ACTION_POLL = "GET /v2/droplets/{droplet_id}/actions/{action_id}"
DROPLET = "GET /v2/droplets/{droplet_id}"
# The slow fault outlasts the driver's request timeout, so the request is abandoned.
REQUEST_TIMEOUT = 0.2
SLOW_SECONDS = 0.6
RETRY_AFTER = 7
# One fewer answer than this and the driver's retries get through.
EXHAUSTING = 5


@dataclass(frozen=True)
class Fault:
    """A kind of trouble and the retry wait it must cause (None: no particular wait)."""

    name: str
    inject: Callable[[DigitalOceanFake, str], None]
    wait: Callable[[float], bool] | None = None
    # The status the faulted request is answered with (None: a late answer, not an error).
    status: int | None = None


def _reset_429(fake: DigitalOceanFake, operation: str) -> None:
    fake.fail(operation, 429, ratelimit_reset=int(time.time()) + 30)


TRANSIENT_FAULTS = (
    Fault("429-ratelimit-reset", _reset_429, lambda w: 25 <= w <= 30, 429),
    Fault(
        "429-retry-after",
        lambda fake, op: fake.fail(op, 429, retry_after=RETRY_AFTER),
        lambda w: w == RETRY_AFTER,
        429,
    ),
    Fault("500", lambda fake, op: fake.fail(op, 500), lambda w: w == 1.0, 500),
    Fault("slow", lambda fake, op: fake.slow(op, SLOW_SECONDS), lambda w: w == 1.0),
)


# Resize has the most steps and each needs the SSH target; 429 with retry-after goes
# through the same wait as with ratelimit-reset, so it is tried on fewer of them.
RESIZE_FAULTS = tuple(f for f in TRANSIENT_FAULTS if f.name != "429-retry-after")
RETRY_AFTER_FAULT = next(f for f in TRANSIENT_FAULTS if f.name == "429-retry-after")


def exhaust(fake: DigitalOceanFake, operation: str) -> None:
    """Fail one call of ``operation`` through every retry the driver allows it."""
    fake.fail(operation, 500, times=EXHAUSTING)


EXHAUSTED = Fault("exhausted", exhaust, None, 500)


def template_pattern(operation: str) -> tuple[str, re.Pattern[str]]:
    method, template = operation.split(" ", 1)
    regex = re.sub(r"\\\{[a-z_]+\\\}", r"[^/]+", re.escape(template))
    return method, re.compile(f"^{regex}$")


def action_type(fake: DigitalOceanFake, request: FakeRequest) -> str | None:
    """The droplet action a request starts (POST .../actions) or polls (GET .../{id})."""
    if request.method == "POST" and isinstance(request.body, dict):
        return request.body.get("type")
    action_id = request.path.rsplit("/", 1)[-1]
    found = [a.type for a in fake.actions if str(a.id) == action_id]
    return found[0] if found else None


def assert_fault_met_and_retried(
    armed: Armed,
    fake: DigitalOceanFake,
    operation: str,
    fault: Fault,
    *,
    action: str | None = None,
    retried: bool = True,
) -> None:
    """The fault met the step's own request, and (``retried``) that request was made again.

    ``action`` names the droplet action the step starts or polls, so a fault that hit
    another step's request to the same operation does not count.
    """
    met = armed.met(fake, operation)
    assert met, f"no request to {operation} after the fault was armed: the step never ran"
    first = met[0]
    if fault.status is not None:
        assert first.status == fault.status, (operation, first)
    if action is not None:
        assert action_type(fake, first) == action, (operation, action, first)
    if retried:
        assert len(met) >= 2, f"{operation} was not asked again after {fault.name}"
        again = met[1]
        assert (again.path, again.body) == (first.path, first.body), (first, again)
        assert again.status < 400, again
    else:
        assert len(met) == 1, f"{operation} was asked again: {met}"


def assert_tried_to_the_end(
    armed: Armed, fake: DigitalOceanFake, operation: str, *, action: str | None = None
) -> None:
    """The step's own request met the exhausting fault and was asked every allowed time."""
    met = armed.met(fake, operation)
    assert len(met) >= EXHAUSTING, f"{operation} was asked {len(met)} times"
    first = met[0]
    if action is not None:
        assert action_type(fake, first) == action, (operation, action, first)
    for again in met[:EXHAUSTING]:
        assert (again.path, again.body, again.status) == (first.path, first.body, 500), again


def requests_to(fake: DigitalOceanFake, operation: str) -> list[FakeRequest]:
    method, pattern = template_pattern(operation)
    return [r for r in fake.requests if r.method == method and pattern.match(r.path)]


class Armed:
    """Progress sink and instant sleep for the driver; arms a fault when a line goes by."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.sleeps: list[float] = []
        self._pending: list[tuple[str, Callable[[], None]]] = []
        # operation -> how many requests the fake had seen when its fault was armed
        self.armed_at: dict[str, int] = {}

    def when(self, line_start: str, arm: Callable[[], None]) -> None:
        """Call ``arm`` the first time a progress line starts with ``line_start`` ("" = now)."""
        if not line_start:
            arm()
        else:
            self._pending.append((line_start, arm))

    def inject(self, line_start: str, fault: Fault, fake: DigitalOceanFake, operation: str) -> None:
        """Inject ``fault`` into the next request to ``operation`` once ``line_start`` goes by."""

        def arm() -> None:
            self.armed_at[operation] = len(fake.requests)
            fault.inject(fake, operation)

        self.when(line_start, arm)

    def met(self, fake: DigitalOceanFake, operation: str) -> list[FakeRequest]:
        """The requests to ``operation`` since its fault was armed; the first met the fault.

        The fake answers the next request to an operation with its queued fault, so the
        first request after arming is the one that met it.
        """
        assert operation in self.armed_at, f"the fault for {operation} was never armed"
        method, pattern = template_pattern(operation)
        return [
            r
            for r in fake.requests[self.armed_at[operation] :]
            if r.method == method and pattern.match(r.path)
        ]

    async def progress(self, line: str) -> None:
        self.lines.append(line)
        for entry in list(self._pending):
            start, arm = entry
            if line.startswith(start):
                arm()
                self._pending.remove(entry)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await asyncio.sleep(0)

    def retry_waits(self, poll_interval: float) -> list[float]:
        return [s for s in self.sleeps if s != poll_interval]


async def let_abandoned_requests_land(fault: Fault | None = None) -> None:
    """Give any request the driver gave up on (only a slow answer is given up on) time to
    reach the fake's handler, so a duplicate it would make is there to be counted."""
    if fault is None or fault.name == "slow":
        await asyncio.sleep(SLOW_SECONDS + 0.2)
