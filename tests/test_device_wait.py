"""Every script that needs the course's volume waits for its device the same way, with
the one timeout in ``deploy.volumes.homevolume.ATTACH_WAIT_SECONDS``."""

from __future__ import annotations

import pytest

from deploy.volumes import backup, homevolume, recover

VOLUME = "course-home-1234"


@pytest.fixture
def short_wait(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(homevolume, "ATTACH_WAIT_SECONDS", 7)
    return 7


@pytest.mark.parametrize(
    "script",
    [
        lambda: "\n".join(homevolume.volume_lines(VOLUME)),
        lambda: recover.mount_script(VOLUME),
        lambda: backup.copy_home_script(VOLUME, "ada", "20260101-0000"),
    ],
    ids=["deploy's volume lines", "recover's mount", "backup's restore copy"],
)
def test_each_volume_script_waits_with_the_one_timeout(short_wait: int, script) -> None:
    text = script()
    wait = "\n".join(homevolume.wait_for_device_lines(VOLUME))
    assert wait in text
    assert f"-ge {short_wait} ]" in text
    assert "-ge 120" not in text


def test_the_wait_gives_up_with_the_volume_named() -> None:
    lines = homevolume.wait_for_device_lines(VOLUME)
    assert any(f"volume {VOLUME} is not attached" in line for line in lines)
    assert lines[0] == f"dev={homevolume.device_path(VOLUME)}"
