"""The course of the volume tests (home volume, backup, move-home, recover): its names, and
its config with the droplet's SSH port once the ``droplet`` fixture has set it."""

from __future__ import annotations

from datetime import UTC, datetime

from deploy.course.config import load_course
from tests.support.engine import REPO_ID, coded

COURSE = "octo-org/physics101"
NAME = coded("physics101-hub")
VOLUME = f"{NAME}-home"
CONFIG = "server:\n  name: physics101-hub\n  region: syd1\nhub:\n  admins: [alice]\n"
STORAGE = "storage: {size: 20}\n"
# When the backups and restores of the volume tests happen.
T0 = datetime(2026, 3, 1, 2, 0, 0, tzinfo=UTC)


# The droplet's SSH port: the loopback target's, set by the ``droplet`` fixture
# (tests/plugins/volume_droplet.py); server.port applies to droplets too.
PORT: int | None = None


def course(extra: str = STORAGE):
    port = f"  port: {PORT}\n" if PORT else ""
    config = CONFIG.replace("hub:\n", f"{port}hub:\n", 1) + extra
    return load_course({".github/classroom.yml": config.encode()}, "octo-org", "p", REPO_ID)
