"""A webhook relay for a trial on a laptop, as Probot does with smee.io.

GitHub cannot reach ``http://127.0.0.1:3000/webhook``. With ``WEBHOOK_PROXY_URL`` set to a
relay channel (``https://smee.io/<channel>``), GitHub sends its deliveries to the channel,
and this reads the channel's event stream (server-sent events) and posts every event to
the service's own ``POST /webhook``, exactly as Probot's ``smee-client`` does: each
``message`` event's data is a JSON object whose ``body`` is the delivery and whose other
keys are its headers. The intake then checks the signature as for any delivery, so a relay
can add nothing GitHub did not sign.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field

import aiohttp

logger = logging.getLogger(__name__)

RETRY_SECONDS = (1, 2, 5, 10, 30)
# Headers the relay's own transport set; the delivery's are the rest.
DROPPED_HEADERS = {"host", "content-length", "connection", "transfer-encoding", "query", "body"}


@dataclass
class ServerSentEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None


class EventStreamParser:
    """Server-sent events, one line at a time, as the HTML standard parses them."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self.last_id: str | None = None

    def feed(self, raw: str) -> ServerSentEvent | None:
        """The event an empty line completes, else None."""
        line = raw.rstrip("\r\n")
        if not line:
            event, data = self._event or "message", self._data
            self._event, self._data = "", []
            return ServerSentEvent(event, "\n".join(data), self.last_id) if data else None
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self.last_id = value
        return None


def delivery_of(event_data: str) -> tuple[dict[str, str], bytes] | None:
    """The headers and body to post for one relayed event, as smee-client builds them."""
    try:
        data = json.loads(event_data)
    except ValueError:
        return None
    if not isinstance(data, dict) or "body" not in data:
        return None
    body = json.dumps(data["body"], separators=(",", ":"), ensure_ascii=False).encode()
    headers = {
        str(key): str(value)
        for key, value in data.items()
        if str(key).lower() not in DROPPED_HEADERS and isinstance(value, str | int)
    }
    headers["content-type"] = "application/json"
    return headers, body


@dataclass
class WebhookRelay:
    """Reads a relay channel and posts each delivery to ``target`` (the service's webhook)."""

    channel: str
    target: str
    session: aiohttp.ClientSession
    forwarded: list[tuple[str, int]] = field(default_factory=list)  # (delivery id, status)

    @staticmethod
    def local_target(host: str, port: int) -> str:
        """The service's own webhook, reached over loopback when it listens everywhere."""
        if host in ("", "0.0.0.0", "::"):  # noqa: S104 - a comparison, not a bind
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}/webhook"

    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._read_channel()
                failures = 0
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, TimeoutError) as exc:
                logger.warning("webhook relay: channel unreachable (%s)", type(exc).__name__)
                failures += 1
            await asyncio.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])

    async def _read_channel(self) -> None:
        async with self.session.get(
            self.channel,
            headers={"Accept": "text/event-stream"},
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        ) as response:
            response.raise_for_status()
            logger.info("webhook relay: reading the channel")
            parser = EventStreamParser()
            async for raw in response.content:
                event = parser.feed(raw.decode("utf-8", "replace"))
                # smee.io also sends "ready" and "ping" events; deliveries are "message"s.
                if event is not None and event.event == "message":
                    await self.forward(event.data)

    async def forward(self, event_data: str) -> int | None:
        found = delivery_of(event_data)
        if found is None:
            logger.info("webhook relay: an event that is not a delivery was skipped")
            return None
        headers, body = found
        delivery = headers.get("x-github-delivery", "")
        try:
            async with self.session.post(self.target, data=body, headers=headers) as answer:
                status = answer.status
        except aiohttp.ClientError as exc:
            logger.warning("webhook relay: delivery %s not handed on (%s)", delivery, exc)
            return None
        self.forwarded.append((delivery, status))
        logger.info("webhook relay: delivery %s answered %s", delivery or "(no id)", status)
        return status
