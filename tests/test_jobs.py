"""The durable job runner on a test job kind: ordering, parallelism, coalescing, retry, cancel,
recovery after a crash."""

from __future__ import annotations

import asyncio

import pytest

from bot import store as st
from bot.jobs.results import JobResult
from bot.jobs.runner import JobContext, JobKinds, JobRunner, NoServices, TransientError


@pytest.fixture
async def store(tmp_path):
    s = await st.Store.open(tmp_path / "data")
    yield s
    await s.close()


def runner_with(store, registry, **kw):
    return JobRunner(store, registry, base_backoff=0.01, max_backoff=0.05, **kw)


async def test_one_job_per_course_at_a_time_and_courses_in_parallel(store):
    registry = JobKinds()
    active: dict[str, int] = {}
    peak: dict[str, int] = {}
    overlap = asyncio.Event()
    running_courses: set[str] = set()

    @registry.kind("test")
    async def work(ctx: JobContext):
        course = ctx.job.course
        active[course] = active.get(course, 0) + 1
        peak[course] = max(peak.get(course, 0), active[course])
        running_courses.add(course)
        if len(running_courses) > 1:
            overlap.set()
        await asyncio.sleep(0.05)
        active[course] -= 1
        running_courses.discard(course)
        return JobResult("success", "ok")

    for course in ("a/one", "a/one", "a/one", "b/two", "b/two"):
        await store.enqueue(st.NewJob(course, "test"))
    runner = runner_with(store, registry, concurrency=4)
    await runner.start()
    await runner.idle()
    await runner.stop()
    assert peak == {"a/one": 1, "b/two": 1}
    assert overlap.is_set()
    assert [j.state for j in await store.jobs()] == [st.DONE] * 5


async def test_newer_job_supersedes_a_queued_one(store):
    registry = JobKinds()
    seen = []

    @registry.kind("deploy")
    async def deploy(ctx: JobContext):
        seen.append(ctx.job.payload["sha"])

    first, _ = await store.enqueue(st.NewJob("a/one", "deploy", {"sha": "1"}, coalesce_key="main"))
    _, replaced = await store.enqueue(
        st.NewJob("a/one", "deploy", {"sha": "2"}, coalesce_key="main")
    )
    assert [j.id for j in replaced] == [first]
    _, replaced = await store.enqueue(
        st.NewJob("a/one", "deploy", {"sha": "3"}, coalesce_key="feature")
    )
    assert replaced == []
    runner = runner_with(store, registry)
    superseded = []

    async def note(job):
        superseded.append(job.id)

    runner.on_superseded.append(note)
    await runner.superseded([await store.job(first)])
    await runner.start()
    await runner.idle()
    await runner.stop()
    assert seen == ["2", "3"]
    assert superseded == [first]
    assert (await store.job(first)).state == st.SUPERSEDED


async def test_transient_failures_retry_with_backoff_up_to_a_bound(store):
    registry = JobKinds()
    attempts = []

    @registry.kind("flaky", max_attempts=3)
    async def flaky(ctx: JobContext):
        attempts.append(ctx.job.attempts)
        raise TransientError("GitHub answered 502")

    job_id, _ = await store.enqueue(st.NewJob("a/one", "flaky"))
    finished = []

    async def on_finished(job, state, result, error):
        finished.append((job.id, state, error))

    runner = runner_with(store, registry)
    runner.on_finished.append(on_finished)
    await runner.start()
    await runner.idle()
    await runner.stop()
    assert attempts == [1, 2, 3]
    assert finished == [(job_id, st.FAILED, "TransientError: GitHub answered 502")]


async def test_a_transient_failure_then_success(store):
    registry = JobKinds()
    calls = []

    @registry.kind("once-flaky")
    async def once(ctx: JobContext):
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("reset")
        return JobResult("success", "Done", "All of it.", hub_url="https://hub.example.edu")

    job_id, _ = await store.enqueue(st.NewJob("a/one", "once-flaky"))
    runner = runner_with(store, registry)
    await runner.start()
    await runner.idle()
    await runner.stop()
    job = await store.job(job_id)
    assert job.state == st.DONE and job.attempts == 2
    # Stored as JSON, read back as the same typed result.
    assert JobResult.from_json(job.result) == JobResult(
        "success", "Done", "All of it.", hub_url="https://hub.example.edu"
    )


async def test_a_permanent_failure_is_not_retried(store):
    registry = JobKinds()
    calls = []

    @registry.kind("broken")
    async def broken(ctx: JobContext):
        calls.append(1)
        raise ValueError("bad config")

    job_id, _ = await store.enqueue(st.NewJob("a/one", "broken"))
    runner = runner_with(store, registry)
    await runner.start()
    await runner.idle()
    await runner.stop()
    assert calls == [1]
    assert (await store.job(job_id)).state == st.FAILED


async def test_cancel_queued_and_running(store):
    registry = JobKinds()
    started = asyncio.Event()

    @registry.kind("long")
    async def long(ctx: JobContext):
        started.set()
        for _ in range(200):
            await asyncio.sleep(0.01)
            ctx.checkpoint()

    running_id, _ = await store.enqueue(st.NewJob("a/one", "long"))
    queued_id, _ = await store.enqueue(st.NewJob("a/one", "long"))
    runner = runner_with(store, registry)
    await runner.start()
    await asyncio.wait_for(started.wait(), 5)
    assert await runner.cancel(queued_id)
    assert await runner.cancel(running_id)
    await runner.idle()
    await runner.stop()
    assert (await store.job(running_id)).state == st.CANCELLED
    assert (await store.job(queued_id)).state == st.CANCELLED


async def test_unknown_kind_fails_clearly(store):
    job_id, _ = await store.enqueue(st.NewJob("a/one", "no-such-kind"))
    runner = runner_with(store, JobKinds())
    await runner.start()
    await runner.idle()
    await runner.stop()
    job = await store.job(job_id)
    assert job.state == st.FAILED and "unknown job kind" in job.error


async def test_jobs_left_running_by_a_crash_are_requeued_and_run(tmp_path):
    data = tmp_path / "data"
    crashed = await st.Store.open(data)
    job_id, _ = await crashed.enqueue(st.NewJob("a/one", "resume"))
    claimed = await crashed.claim_runnable(set(), 1)
    assert [j.id for j in claimed] == [job_id]
    await crashed.close()  # the process died with the job marked running

    registry = JobKinds()
    ran = []

    @registry.kind("resume")
    async def resume(ctx: JobContext):
        ran.append(ctx.job.attempts)

    store = await st.Store.open(data)
    runner = runner_with(store, registry)
    assert await runner.start() == [job_id]
    await runner.idle()
    await runner.stop()
    assert ran == [2]
    assert (await store.job(job_id)).state == st.DONE
    await store.close()


async def test_stop_pauses_running_jobs_for_the_next_start(store):
    registry = JobKinds()
    started = asyncio.Event()

    @registry.kind("slow")
    async def slow(ctx: JobContext):
        started.set()
        while True:
            await asyncio.sleep(0.01)
            ctx.checkpoint()

    job_id, _ = await store.enqueue(st.NewJob("a/one", "slow"))
    runner = runner_with(store, registry)
    await runner.start()
    await asyncio.wait_for(started.wait(), 5)
    await runner.stop(grace=2)
    assert (await store.job(job_id)).state == st.QUEUED


async def test_store_migrations_are_versioned_and_reopen_cleanly(tmp_path):
    store = await st.Store.open(tmp_path / "d")
    await store.set_meta("k", "v")
    await store.close()
    again = await st.Store.open(tmp_path / "d")
    assert await again.get_meta("k") == "v"
    version = await again._call(lambda: again._db.execute("PRAGMA user_version").fetchone()[0])
    assert version == len(st.MIGRATIONS)
    mode = await again._call(lambda: again._db.execute("PRAGMA journal_mode").fetchone()[0])
    assert mode == "wal"
    await again.close()


async def test_concurrent_deliveries_share_commits_and_fail_alone(store):
    def broken(db):
        raise RuntimeError("a change that fails")

    async def record(index: int):
        changes = [broken] if index == 7 else []
        delivery = st.Delivery(f"d{index}", "push", None, "o/r", 1, "accepted")
        return await store.record_delivery(delivery, [st.NewJob("o/r", "test")], changes)

    outcomes = await asyncio.gather(*(record(i) for i in range(20)), return_exceptions=True)
    assert isinstance(outcomes[7], RuntimeError)
    assert all(
        not isinstance(o, Exception) and not o.duplicate for i, o in enumerate(outcomes) if i != 7
    )
    assert await store.delivery("d7") is None  # its savepoint was rolled back alone
    assert all([await store.delivery(f"d{i}") is not None for i in range(20) if i != 7])
    assert len(await store.jobs()) == 19
    again = await store.record_delivery(st.Delivery("d3", "push", None, "o/r", 1, "x"), [])
    assert again.duplicate


async def test_a_new_job_with_a_known_dedupe_key_is_dropped(store):
    first = await store.enqueue(st.NewJob("o/r", "deploy", dedupe_key="apply:abc"))
    second = await store.enqueue(st.NewJob("o/r", "deploy", dedupe_key="apply:abc"))
    other = await store.enqueue(st.NewJob("o/r", "deploy", dedupe_key="apply:def"))
    assert first is not None and second is None and other is not None


async def test_a_job_gets_the_runners_services_and_a_clear_error_without_any(store):
    kinds: JobKinds[object] = JobKinds()
    seen: list[object] = []
    errors: list[str] = []

    @kinds.kind("test", max_attempts=1)
    async def work(ctx: JobContext[object]):
        try:
            seen.append(ctx.services)
        except NoServices as exc:
            errors.append(str(exc))
        return JobResult("success", "ok")

    services = object()
    for runner_services in (services, None):
        await store.enqueue(st.NewJob("a/one", "test"))
        runner = runner_with(store, kinds, services=runner_services)
        await runner.start()
        await runner.idle()
        await runner.stop()
    assert seen == [services]
    [error] = errors
    assert "without the app's services" in error


async def test_the_hub_up_hooks_hear_a_job_and_one_failing_stops_nothing(store):
    runner = runner_with(store, JobKinds())
    heard: list[tuple[str, str]] = []

    async def failing(course: str, detail: str) -> None:
        raise RuntimeError("the monitor is gone")

    async def listening(course: str, detail: str) -> None:
        heard.append((course, detail))

    runner.on_hub_up += [failing, listening]
    await runner.hub_up("a/one", "the deploy's check of the hub passed")
    assert heard == [("a/one", "the deploy's check of the hub passed")]
