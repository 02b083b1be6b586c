"""The webhook relay (``WEBHOOK_PROXY_URL``) for a trial on a laptop: a local stand-in for a
smee.io channel streams deliveries as server-sent events, and the service hands each to its
own ``POST /webhook``, where the signature is checked as for any delivery."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiohttp import web

from bot.app import RELAY, make_app
from bot.intake.relay import EventStreamParser, WebhookRelay, delivery_of
from bot.services import SERVICES
from tests.plugins.service import WEBHOOK_SECRET, signed_headers
from tests.support.service_process import free_port

HANG_UP = "hang up"


def smee_message(event: str, payload: dict[str, Any], secret: str = WEBHOOK_SECRET) -> str:
    """One delivery as smee.io streams it: the headers as keys, the delivery as ``body``."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    headers = {k.lower(): v for k, v in signed_headers(body, event, secret=secret).items()}
    data = {**headers, "host": "smee.io", "body": payload, "query": {}, "timestamp": 1}
    return json.dumps(data)


class RelayChannel:
    """A stand-in for a smee.io channel: ``ready``, a ``ping``, then the queued messages."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[str] = asyncio.Queue()
        self.connections = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def stream(self, request: web.Request) -> web.StreamResponse:
        self.connections += 1
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'event: ready\ndata: {"ready": true}\n\n')
        await response.write(b"event: ping\ndata: {}\n\n: a comment line\n\n")
        while True:
            message = await self.messages.get()
            if message == HANG_UP:
                return response  # the relay drops the connection, as relays do now and then
            await response.write(f"id: {uuid.uuid4()}\ndata: {message}\n\n".encode())

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/channel", self.stream)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/channel"


def test_the_event_stream_parser_reads_smee_events():
    lines = [
        "event: ready\n",
        "data: {}\n",
        "\n",
        ": keep-alive\n",
        "id: 7\n",
        'data: {"a":\n',
        "data: 1}\n",
        "\n",
    ]
    parser = EventStreamParser()  # fed line by line, as the relay reads the stream
    events = [event for line in lines if (event := parser.feed(line)) is not None]
    assert [(e.event, e.data, e.id) for e in events] == [
        ("ready", "{}", None),
        ("message", '{"a":\n1}', "7"),
    ]


def test_a_relayed_event_becomes_the_delivery_github_sent():
    payload = {"zen": "Keep it logically awesome.", "hook_id": 1, "text": "é"}
    headers, body = delivery_of(smee_message("ping", payload))
    assert body == json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    assert headers["x-github-event"] == "ping"
    assert headers["x-hub-signature-256"].startswith("sha256=")
    assert "host" not in headers and "body" not in headers and "query" not in headers
    assert delivery_of("not json") is None and delivery_of('{"no": "body"}') is None


async def test_relayed_deliveries_reach_intake_and_a_bad_signature_is_refused(
    aiohttp_client, make_settings, example
):
    channel = RelayChannel()
    await channel.start()
    port = free_port()
    settings = make_settings(WEBHOOK_PROXY_URL=channel.url, PORT=str(port))
    client = await aiohttp_client(
        make_app(settings, monitoring=False), server_kwargs={"port": port}
    )
    services = client.app[SERVICES]
    relay: WebhookRelay = client.app[RELAY]

    installed = example("installation", "created")
    installed["repositories"] = [{**installed["repositories"][0], "full_name": "octo-org/relayed"}]
    forged = example("installation", "created")
    forged["repositories"] = [{**forged["repositories"][0], "full_name": "octo-org/forged"}]
    await channel.messages.put(smee_message("installation", installed))
    await channel.messages.put(smee_message("installation", forged, secret="not-the-secret"))
    await channel.messages.put(HANG_UP)
    await channel.messages.put(smee_message("ping", example("ping")))

    async def forwarded(count: int) -> None:
        while len(relay.forwarded) < count:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(forwarded(3), 20)
    assert [status for _, status in relay.forwarded] == [202, 401, 200]
    assert await services.store.course("octo-org/relayed") is not None
    assert await services.store.course("octo-org/forged") is None
    assert channel.connections == 2  # it read the channel again after it was dropped
    await client.close()
    assert channel.runner is not None
    await channel.runner.cleanup()
