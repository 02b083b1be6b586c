"""Scheduled snapshots: each course at its own time in the period, once, across restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.backup_schedule import BackupSchedule
from bot.store import Course, Store
from deploy.volumes.backup import next_backup_at

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
DAY = 86400
DOWN_FROM, DOWN_UNTIL = T0 + timedelta(hours=10), T0 + timedelta(hours=14)


def courses(n: int, every: int | None = DAY) -> list[tuple[Course, dict]]:
    return [
        (Course(f"org/course{i}", 1, i, True), {"backup_every": every, "branch": "main"})
        for i in range(n)
    ]


async def test_each_course_is_asked_once_a_period_spread_over_it_and_across_restarts(
    tmp_path,
) -> None:
    store = await Store.open(tmp_path / "data")
    asked: list[tuple[str, datetime]] = []
    now = T0

    async def ask(course: Course, _facts: dict) -> None:
        asked.append((course.full_name, now))

    try:
        schedule = BackupSchedule(store, ask)
        listing = (
            courses(50)
            + courses(1, every=None)[:0]
            + [(Course("org/no-storage", 1, 99, True), {"backup_every": None})]
        )
        # Two days in 15-minute rounds; the service is down from 10:00 to 14:00 on the first.
        while now < T0 + timedelta(days=2):
            if DOWN_FROM <= now < DOWN_UNTIL:
                schedule = BackupSchedule(store, ask)  # what a restart starts with
            else:
                await schedule.run(listing, now)
            now += timedelta(minutes=15)
    finally:
        await store.close()

    per_course: dict[str, list[datetime]] = {}
    for name, when in asked:
        per_course.setdefault(name, []).append(when)
    assert "org/no-storage" not in per_course
    assert sorted(per_course) == sorted(f"org/course{i}" for i in range(50))
    for name, times in per_course.items():
        first = next_backup_at(name, DAY, None, T0)
        assert first is not None
        # Asked at its own time (to the round), then one day later; never twice a day.
        quarter = timedelta(minutes=15)
        first_round = T0 + -((T0 - first) // quarter) * quarter  # the round that sees it
        if DOWN_FROM <= first_round < DOWN_UNTIL:  # due while the service was down
            assert times[0] == DOWN_UNTIL, (name, first, times)
        else:
            assert timedelta(0) <= times[0] - first < timedelta(minutes=15)
        expected = 2 if first + timedelta(days=1) < now else 1
        assert len(times) == expected, (name, times)
        if expected == 2:
            assert abs(times[1] - (first + timedelta(days=1))) < timedelta(minutes=15)
    assert len({times[0].hour for times in per_course.values()}) > 12, "spread over the day"
