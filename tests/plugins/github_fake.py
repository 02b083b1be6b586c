"""Pytest fixture ``github_fake``: a fake GitHub on loopback that fails the test on a bad request.

It starts with the App, one installation (``INSTALLATION_ID``) and one course repository
(``COURSE_REPO``) holding a README on ``main``, with ``alice`` as admin and ``bob`` as a
reader. A test that sends a bad request on purpose asserts on ``validation_errors`` and
then clears it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.github import FakeGitHub
from tests.support.engine import REPO_ID

INSTALLATION_ID = 1001
COURSE_REPO = "octo-org/physics101"
# The course repository's id, in the fake and in every delivery: the service knows a
# course by it.
COURSE_REPO_ID = REPO_ID
COURSE_README = b"# Physics 101\n\nNotebooks for the course.\n"


@pytest.fixture
async def github_fake() -> AsyncIterator[FakeGitHub]:
    fake = FakeGitHub()
    fake.add_installation(INSTALLATION_ID, "octo-org")
    fake.add_repository(
        COURSE_REPO,
        {"README.md": COURSE_README},
        installation_id=INSTALLATION_ID,
        collaborators={"alice": "admin", "bob": "read"},
        repo_id=COURSE_REPO_ID,
    )
    await fake.start()
    try:
        yield fake
    finally:
        await fake.close()
    assert not fake.validation_errors, "requests GitHub would refuse:\n" + "\n".join(
        fake.validation_errors
    )
