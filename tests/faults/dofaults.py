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


def _reset_429(fake: DigitalOceanFake, operation: str) -> None:
    fake.fail(operation, 429, ratelimit_reset=int(time.time()) + 30)


TRANSIENT_FAULTS = (
    Fault("429-ratelimit-reset", _reset_429, lambda w: 25 <= w <= 30),
    Fault(
        "429-retry-after",
        lambda fake, op: fake.fail(op, 429, retry_after=RETRY_AFTER),
        lambda w: w == RETRY_AFTER,
    ),
    Fault("500", lambda fake, op: fake.fail(op, 500), lambda w: w == 1.0),
    Fault("slow", lambda fake, op: fake.slow(op, SLOW_SECONDS), lambda w: w == 1.0),
)


# Resize has the most steps and each needs the SSH target; 429 with retry-after goes
# through the same wait as with ratelimit-reset, so it is tried on fewer of them.
RESIZE_FAULTS = tuple(f for f in TRANSIENT_FAULTS if f.name != "429-retry-after")
RETRY_AFTER_FAULT = next(f for f in TRANSIENT_FAULTS if f.name == "429-retry-after")


def exhaust(fake: DigitalOceanFake, operation: str) -> None:
    """Fail one call of ``operation`` through every retry the driver allows it."""
    fake.fail(operation, 500, times=EXHAUSTING)


def template_pattern(operation: str) -> tuple[str, re.Pattern[str]]:
    method, template = operation.split(" ", 1)
    regex = re.sub(r"\\\{[a-z_]+\\\}", r"[^/]+", re.escape(template))
    return method, re.compile(f"^{regex}$")


def requests_to(fake: DigitalOceanFake, operation: str) -> list[FakeRequest]:
    method, pattern = template_pattern(operation)
    return [r for r in fake.requests if r.method == method and pattern.match(r.path)]


class Armed:
    """Progress sink and instant sleep for the driver; arms a fault when a line goes by."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.sleeps: list[float] = []
        self._pending: list[tuple[str, Callable[[], None]]] = []
        self.fired: list[str] = []

    def when(self, line_start: str, arm: Callable[[], None]) -> None:
        """Call ``arm`` the first time a progress line starts with ``line_start`` ("" = now)."""
        if not line_start:
            arm()
            self.fired.append(line_start)
        else:
            self._pending.append((line_start, arm))

    async def progress(self, line: str) -> None:
        self.lines.append(line)
        for entry in list(self._pending):
            start, arm = entry
            if line.startswith(start):
                arm()
                self.fired.append(start)
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
