"""The one retry policy (deploy.retry): bounded tries and time, waits as asked, no real sleep."""

from __future__ import annotations

import asyncio

import pytest

from deploy.retry import RetryPolicy, backoff, rate_limit_wait


class Flaky(Exception):
    pass


class Broken(Exception):
    pass


class Waits:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.seconds.append(seconds)


def failing(times: int, failure: type[Exception] = Flaky):
    calls = []

    async def fn() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise failure(f"try {len(calls)}")
        return "done"

    return fn, calls


def test_backoff_doubles_up_to_the_cap() -> None:
    assert [backoff(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert backoff(20) == 30.0
    assert backoff(3, cap=3.0) == 3.0


def test_rate_limit_wait_reads_retry_after_then_the_reset() -> None:
    assert rate_limit_wait({"Retry-After": "4"}, now=0.0) == 4.0
    assert rate_limit_wait({"RateLimit-Reset": "1010"}, now=1000.0) == 10.0
    assert rate_limit_wait({"retry-after": "9999"}, now=0.0, max_wait=60) == 60.0
    assert rate_limit_wait({"ratelimit-reset": "5"}, now=1000.0) == 0.0
    assert rate_limit_wait({"retry-after": "soon"}, now=0.0) is None
    assert rate_limit_wait({}, now=0.0) is None


async def test_retries_what_it_is_told_to_with_backoff() -> None:
    waits = Waits()
    fn, calls = failing(2)
    policy = RetryPolicy(retry_on=lambda e: isinstance(e, Flaky), attempts=5, sleep=waits.sleep)
    assert await policy.call(fn) == "done"
    assert len(calls) == 3
    assert waits.seconds == [1.0, 2.0]


async def test_gives_up_after_the_attempts_with_the_last_failure() -> None:
    waits = Waits()
    fn, calls = failing(10)
    policy = RetryPolicy(retry_on=lambda e: isinstance(e, Flaky), attempts=3, sleep=waits.sleep)
    with pytest.raises(Flaky, match="try 3"):
        await policy.call(fn)
    assert len(calls) == 3 and len(waits.seconds) == 2


async def test_what_is_not_retried_is_raised_at_once() -> None:
    waits = Waits()
    fn, calls = failing(1, Broken)
    policy = RetryPolicy(retry_on=lambda e: isinstance(e, Flaky), sleep=waits.sleep)
    with pytest.raises(Broken):
        await policy.call(fn)
    assert len(calls) == 1 and waits.seconds == []


async def test_the_wait_comes_from_the_failure_and_the_caller_hears_of_it() -> None:
    waits = Waits()
    heard: list[tuple[str, int, float]] = []
    fn, _ = failing(2)

    async def on_retry(failure: BaseException, tries: int, delay: float) -> None:
        heard.append((str(failure), tries, delay))

    policy = RetryPolicy(
        retry_on=lambda e: isinstance(e, Flaky),
        wait=lambda failure, failures: 7.0 * failures,
        sleep=waits.sleep,
    )
    assert await policy.call(fn, on_retry=on_retry) == "done"
    assert waits.seconds == [7.0, 14.0]
    assert heard == [("try 1", 1, 7.0), ("try 2", 2, 14.0)]


async def test_a_time_bound_stops_an_unbounded_number_of_tries() -> None:
    fn, calls = failing(10**9)
    policy = RetryPolicy(
        retry_on=lambda e: isinstance(e, Flaky),
        attempts=None,
        within=0.1,
        wait=lambda _f, _n: 0.01,
        sleep=asyncio.sleep,
    )
    with pytest.raises(Flaky):
        await policy.call(fn)
    assert 1 < len(calls) < 100
