"""Webhook intake through the real app: status codes, signatures, deduplication, recording."""

from __future__ import annotations

import json

import pytest

from bot.app import make_app
from bot.jobs.runner import JobKinds
from bot.services import SERVICES
from tests.plugins.service import WEBHOOK_SECRET, deliver, signed_headers


@pytest.fixture
async def client(aiohttp_client, make_settings):
    return await aiohttp_client(make_app(make_settings(), job_kinds=JobKinds()))


HANDLER_ERRORS = "webhook_handler_errors_total"


async def handler_errors(client) -> float:
    """The counter as Prometheus scrapes it from /metrics."""
    text = await (await client.get("/metrics")).text()
    [line] = [x for x in text.splitlines() if x.startswith(HANDLER_ERRORS + " ")]
    return float(line.split()[1])


async def test_every_published_example_gets_no_server_error(client, webhook_examples):
    seen = set()
    for index, (event, payload) in enumerate(webhook_examples):
        response = await deliver(client, event, payload, delivery=f"example-{index}")
        assert response.status < 500, (event, payload.get("action"), response.status)
        assert response.status in (200, 202)
        # A handler that raises is answered 200 too; that is still a bug of ours.
        assert (await response.json())["message"] != "ignored: handler error", (
            event,
            payload.get("action"),
        )
        seen.add(event)
    assert {"push", "issue_comment", "check_suite", "installation"} <= seen
    assert await handler_errors(client) == 0


async def test_a_handler_that_raises_is_logged_with_the_delivery_and_counted(
    client, example, monkeypatch, caplog
):
    async def broken(event, *args, **kwargs):
        raise RuntimeError("a payload the handler did not expect")

    monkeypatch.setattr("bot.intake.webhook.router.dispatch", broken)
    assert await handler_errors(client) == 0
    response = await deliver(client, "push", example("push"), delivery="delivery-that-broke")
    assert response.status == 200
    assert (await response.json())["message"] == "ignored: handler error"
    assert await handler_errors(client) == 1
    [record] = [r for r in caplog.records if r.name == "bot.intake.webhook" and r.exc_info]
    assert "delivery-that-broke" in record.getMessage()
    assert record.delivery == "delivery-that-broke"
    store = client.app[SERVICES].store
    assert (await store.delivery("delivery-that-broke")).outcome == "ignored: handler error"


async def test_ping_answers_200_and_is_recorded_as_a_ping(client, example):
    response = await deliver(client, "ping", example("ping"), delivery="the-ping")
    assert response.status == 200
    assert (await response.json())["message"] == "ping"
    delivery = await client.app[SERVICES].store.delivery("the-ping")
    assert delivery is not None and delivery.outcome == "ping"
    assert await client.app[SERVICES].store.jobs() == []


async def test_wrong_signature_is_401_and_not_recorded(client, example):
    body = json.dumps(example("push")).encode()
    headers = signed_headers(body, "push", "wrong-sig", secret="not-the-secret")
    response = await client.post("/webhook", data=body, headers=headers)
    assert response.status == 401
    store = client.app[SERVICES].store
    assert await store.delivery("wrong-sig") is None


async def test_missing_signature_is_401(client, example):
    body = json.dumps(example("push")).encode()
    headers = signed_headers(body, "push")
    del headers["X-Hub-Signature-256"]
    assert (await client.post("/webhook", data=body, headers=headers)).status == 401


async def test_sha1_signature_alone_is_not_enough(client, example):
    import hashlib
    import hmac

    body = json.dumps(example("push")).encode()
    headers = signed_headers(body, "push")
    del headers["X-Hub-Signature-256"]
    headers["X-Hub-Signature"] = (
        "sha1=" + hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha1).hexdigest()
    )
    assert (await client.post("/webhook", data=body, headers=headers)).status == 401


@pytest.mark.parametrize("missing", ["X-GitHub-Event", "X-GitHub-Delivery"])
async def test_missing_headers_are_400(client, example, missing):
    body = json.dumps(example("push")).encode()
    headers = signed_headers(body, "push")
    del headers[missing]
    assert (await client.post("/webhook", data=body, headers=headers)).status == 400


async def test_bad_json_is_400(client):
    body = b'{"not json'
    response = await client.post("/webhook", data=body, headers=signed_headers(body, "push"))
    assert response.status == 400


async def test_json_that_is_not_an_object_is_400(client):
    body = b"[1, 2, 3]"
    response = await client.post("/webhook", data=body, headers=signed_headers(body, "push"))
    assert response.status == 400


async def test_wrong_content_type_is_415(client, example):
    body = json.dumps(example("push")).encode()
    headers = signed_headers(body, "push")
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    assert (await client.post("/webhook", data=body, headers=headers)).status == 415


async def test_an_unknown_charset_is_415_and_not_recorded(client, example):
    body = json.dumps(example("push")).encode()
    headers = signed_headers(body, "push", "odd-charset")
    headers["Content-Type"] = "application/json; charset=no-such-charset"
    response = await client.post("/webhook", data=body, headers=headers)
    assert response.status == 415
    assert "charset" in (await response.json())["message"]
    assert await client.app[SERVICES].store.delivery("odd-charset") is None


async def test_a_declared_charset_is_read(client, example):
    payload = example("ping")
    payload["zen"] = "Café ☕"
    body = json.dumps(payload, ensure_ascii=False).encode("utf-16")
    headers = signed_headers(body, "ping", "utf-16-ping")
    headers["Content-Type"] = "application/json; charset=utf-16"
    response = await client.post("/webhook", data=body, headers=headers)
    assert response.status == 200
    assert await client.app[SERVICES].store.delivery("utf-16-ping") is not None


async def test_oversize_body_is_413(client):
    body = b'{"a": "' + b"x" * (25 * 1024 * 1024) + b'"}'
    response = await client.post("/webhook", data=body, headers=signed_headers(body, "push"))
    assert response.status == 413


async def test_unregistered_service_serves_no_deliveries(aiohttp_client, make_settings, example):
    client = await aiohttp_client(make_app(make_settings(registered=False), job_kinds=JobKinds()))
    response = await deliver(client, "push", example("push"))
    assert response.status == 404


async def test_each_delivery_is_recorded_with_its_facts(client, example):
    payload = example("installation", "created")
    response = await deliver(client, "installation", payload, delivery="d-installation")
    assert response.status == 202
    store = client.app[SERVICES].store
    recorded = await store.delivery("d-installation")
    assert recorded is not None
    assert recorded.event == "installation"
    assert recorded.action == "created"
    assert recorded.installation_id == payload["installation"]["id"]
    assert recorded.outcome == "accepted"


async def test_installation_events_keep_courses_in_step(client, example):
    store = client.app[SERVICES].store
    created = example("installation", "created")
    await deliver(client, "installation", created)
    names = {r["full_name"] for r in created["repositories"]}
    assert {c.full_name for c in await store.courses()} == names

    removed = example("installation_repositories", "removed")
    removed["installation"]["id"] = created["installation"]["id"]
    removed["repositories_removed"] = [created["repositories"][0]]
    await deliver(client, "installation_repositories", removed)
    assert created["repositories"][0]["full_name"] not in {
        c.full_name for c in await store.courses()
    }

    suspended = example("installation", "suspend")
    suspended["installation"]["id"] = created["installation"]["id"]
    await deliver(client, "installation", suspended)
    assert await store.installation_suspended(created["installation"]["id"])

    deleted = example("installation", "deleted")
    deleted["installation"]["id"] = created["installation"]["id"]
    await deliver(client, "installation", deleted)
    assert await store.courses() == []


async def test_a_redelivery_is_200_and_changes_nothing(client, example):
    payload = example("installation", "created")
    first = await deliver(client, "installation", payload, delivery="same-id")
    assert first.status == 202
    store = client.app[SERVICES].store
    await store.remove_courses([r["full_name"] for r in payload["repositories"]])
    second = await deliver(client, "installation", payload, delivery="same-id")
    assert second.status == 200
    assert (await second.json())["message"] == "duplicate delivery"
    assert await store.courses() == []  # the handler did not run again


async def test_events_from_this_app_and_bot_comments_are_ignored(client, example):
    services = client.app[SERVICES]
    services.app_slug = "littlest-classroom"
    push = example("push")
    push["sender"] = {"login": "littlest-classroom[bot]", "type": "Bot", "id": 5}
    response = await deliver(client, "push", push, delivery="own-push")
    assert response.status == 200
    assert "caused by this app" in (await response.json())["message"]

    comment = example("issue_comment", "created")
    comment["sender"] = {"login": "some-other[bot]", "type": "Bot", "id": 6}
    response = await deliver(client, "issue_comment", comment, delivery="bot-comment")
    assert "comment by a bot" in (await response.json())["message"]
