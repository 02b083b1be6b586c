"""Shared pytest set-up: every module in tests/plugins/ is a fixture plugin."""

from __future__ import annotations

from pathlib import Path

import pytest

# The operation registry's entries, registered as the service's start-up does.
import bot.jobs.entries  # noqa: F401

# Plugins import each other; rewrite their asserts whichever of them is imported first.
pytest.register_assert_rewrite("tests.plugins", "tests.fakes", "tests.support")

pytest_plugins = sorted(
    f"tests.plugins.{p.stem}"
    for p in (Path(__file__).parent / "plugins").glob("*.py")
    if p.stem != "__init__"
)
