"""The service's own pages: health, readiness, metrics, the SSH key, badges."""

from __future__ import annotations

import pytest

from bot.app import make_app
from bot.jobs.runner import JobKinds
from tests.plugins.service import deliver


@pytest.fixture
async def client(aiohttp_client, make_settings):
    return await aiohttp_client(make_app(make_settings(), job_kinds=JobKinds(), monitoring=False))


async def test_health_and_readiness(client, aiohttp_client, make_settings):
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    unregistered = await aiohttp_client(
        make_app(make_settings(registered=False), job_kinds=JobKinds(), monitoring=False)
    )
    ready = await unregistered.get("/readyz")
    assert ready.status == 503
    assert "credentials" in " ".join((await ready.json())["problems"])


async def test_metrics_count_deliveries_and_latency(client, example):
    await deliver(client, "ping", example("ping"))
    await deliver(client, "installation", example("installation", "created"))
    text = await (await client.get("/metrics")).text()
    assert 'classroom_webhook_deliveries_total{event="ping",outcome="200"} 1.0' in text
    assert 'classroom_webhook_deliveries_total{event="installation",outcome="202"} 1.0' in text
    assert "classroom_webhook_intake_seconds_count 2.0" in text
    assert "# TYPE classroom_github_requests_total counter" in text
    assert "# TYPE classroom_github_rate_limit_remaining gauge" in text
    assert "# TYPE classroom_jobs gauge" in text


async def test_the_service_key_is_served_and_private_on_disk(client, make_settings):
    response = await client.get("/ssh-key.pub")
    line = (await response.text()).strip()
    assert line.startswith("ssh-ed25519 ") and line.endswith(" littlest-classroom")
    key_file = make_settings().data_dir / "ssh_ed25519"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert "PRIVATE" not in line


async def test_badge_of_an_unknown_course_is_unknown(client):
    response = await client.get("/badges/nobody/nothing/status.svg")
    assert response.status == 200
    assert response.content_type == "image/svg+xml"
    assert ">unknown<" in await response.text()
    assert response.headers["Cache-Control"] == "no-cache"
