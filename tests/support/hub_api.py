"""A stand-in for a hub's API on loopback, for the monitor's probes: any answer on demand."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiohttp import web


@contextlib.asynccontextmanager
async def fake_hub(handler) -> AsyncIterator[str]:
    """A hub API on loopback answering with ``handler``; yields the hub's URL."""
    hub = web.Application()
    hub.router.add_get("/hub/api", handler)
    runner = web.AppRunner(hub)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
