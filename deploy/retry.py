"""The one retry policy for calls that may fail for a moment: DigitalOcean, SSH, GitHub.

A caller names what is worth another try and, when the failure says how long to wait
(a 429's ``Retry-After``), how long; this module bounds the number of tries, the total
time and every wait, and sleeps through the caller's ``sleep`` so tests can count the
waits without spending them. The loop itself is tenacity's: no caller writes its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity

logger = logging.getLogger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[Any]]
# Told before each wait: the failure, the number of tries so far (1-based), the wait.
OnRetry = Callable[[BaseException, int, float], Awaitable[None]]

BACKOFF_BASE = 1.0
BACKOFF_MAX = 30.0
MAX_RATE_LIMIT_WAIT = 120.0


def backoff(failures: int, *, base: float = BACKOFF_BASE, cap: float = BACKOFF_MAX) -> float:
    """Seconds before the next try after ``failures`` failed ones: 1, 2, 4, … up to ``cap``."""
    return min(base * 2.0 ** max(failures - 1, 0), cap)


def rate_limit_wait(
    headers: Mapping[str, str], now: float, *, max_wait: float = MAX_RATE_LIMIT_WAIT
) -> float | None:
    """How long a rate-limited answer asks us to wait, bounded; None when it does not say.

    ``Retry-After`` is seconds from now; ``RateLimit-Reset`` is the epoch second at which
    the limit resets (DigitalOcean's header).
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, absolute in (("retry-after", False), ("ratelimit-reset", True)):
        value = lowered.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) - (now if absolute else 0.0)
        except ValueError:
            continue
        return min(max(seconds, 0.0), max_wait)
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """How often, how long and on what to try a call again.

    ``attempts`` bounds the tries (the first one included); ``within`` bounds the time
    from the first try, in seconds. ``wait(failure, failures)`` is the pause after the
    ``failures``-th failed try; by default exponential backoff.
    """

    retry_on: Callable[[BaseException], bool]
    attempts: int | None = 5
    within: float | None = None
    wait: Callable[[BaseException, int], float] = lambda _failure, failures: backoff(failures)
    sleep: Sleep = asyncio.sleep

    async def call(self, fn: Callable[[], Awaitable[T]], *, on_retry: OnRetry | None = None) -> T:
        """``await fn()`` until it succeeds, fails with what is not retried, or the bounds end.

        At the end the last failure is raised as it was, for the caller to explain.
        """
        stops: list[tenacity.stop.stop_base] = []
        if self.attempts is not None:
            stops.append(tenacity.stop_after_attempt(self.attempts))
        if self.within is not None:
            stops.append(tenacity.stop_after_delay(self.within))

        def wait(state: tenacity.RetryCallState) -> float:
            assert state.outcome is not None
            failure = state.outcome.exception()
            assert failure is not None
            return self.wait(failure, state.attempt_number)

        async def before_sleep(state: tenacity.RetryCallState) -> None:
            assert state.outcome is not None and state.next_action is not None
            failure = state.outcome.exception()
            assert failure is not None
            delay = state.next_action.sleep
            if on_retry is not None:
                await on_retry(failure, state.attempt_number, delay)
            else:
                logger.warning(
                    "try %d failed (%s); trying again in %.1f s",
                    state.attempt_number,
                    type(failure).__name__,
                    delay,
                )

        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(self.retry_on),
            stop=tenacity.stop_any(*stops) if stops else tenacity.stop_never,
            wait=wait,
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return await retrying(fn)
