"""Headless Chromium driven over the DevTools protocol, for tests that act as a person would.

Only what a test needs: open a page, evaluate JavaScript in it (a click is
``document.getElementById(...).click()``), wait for the page to settle, take a screenshot.
The browser runs with a throwaway profile, no sandbox (tests run as root), and none of its
background traffic, so it talks to nothing but the loopback servers the test opens.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class DevToolsError(RuntimeError):
    """The browser answered a DevTools command with an error, or not at all."""


class Chromium:
    """``async with Chromium(profile) as browser``: one headless browser and its first tab."""

    def __init__(self, profile: Path, executable: Path = CHROMIUM, timeout: float = 30.0):
        self.profile = profile
        self.executable = executable
        self.timeout = timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self.events: list[dict[str, Any]] = []

    async def __aenter__(self) -> Chromium:
        self.profile.mkdir(parents=True, exist_ok=True)
        port_file = self.profile / "DevToolsActivePort"
        port_file.unlink(missing_ok=True)
        with open(self.profile.parent / "chromium.log", "ab") as log:
            self.process = subprocess.Popen(
                [
                    str(self.executable),
                    *FLAGS,
                    f"--user-data-dir={self.profile}",
                    # Port 0: the browser picks a free one and writes it to DevToolsActivePort.
                    "--remote-debugging-port=0",
                    "--remote-debugging-address=127.0.0.1",
                    "about:blank",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        try:
            port = await self._debugging_port(port_file)
            self._session = aiohttp.ClientSession()
            page = await self._first_page(port)
            self._socket = await self._session.ws_connect(
                page["webSocketDebuggerUrl"], max_msg_size=0
            )
            self._reader = asyncio.create_task(self._read())
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _debugging_port(self, port_file: Path) -> int:
        deadline = time.monotonic() + self.timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise DevToolsError(
                    f"chromium exited with {self.process.returncode} before DevTools was up"
                )
            text = port_file.read_text() if port_file.exists() else ""
            if text.strip():
                return int(text.split()[0])
            if time.monotonic() > deadline:
                raise DevToolsError("chromium did not open its DevTools port")
            await asyncio.sleep(0.05)

    async def _first_page(self, port: int) -> dict[str, Any]:
        assert self._session is not None
        deadline = time.monotonic() + self.timeout
        while True:
            async with self._session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json(content_type=None)
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                return pages[0]
            if time.monotonic() > deadline:
                raise DevToolsError("chromium has no page to drive")
            await asyncio.sleep(0.05)

    async def _read(self) -> None:
        assert self._socket is not None
        async for message in self._socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            future = self._pending.pop(data.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(data)
            elif "method" in data:
                self.events.append(data)
        for future in self._pending.values():
            if not future.done():
                future.set_exception(DevToolsError("the DevTools connection closed"))

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; its ``result``, or DevToolsError with the browser's message."""
        assert self._socket is not None
        command_id = next(self._ids)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._pending[command_id] = future
        await self._socket.send_json({"id": command_id, "method": method, "params": params})
        try:
            answer = await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            raise DevToolsError(f"no answer to {method}") from None
        if "error" in answer:
            raise DevToolsError(f"{method}: {answer['error'].get('message')}")
        return answer.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-like values only)."""
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise DevToolsError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str) -> Any:
        """Poll a JavaScript expression until it is truthy in a fully loaded page."""
        deadline = time.monotonic() + self.timeout
        while True:
            # Mid-navigation the page's context may be gone for a moment: try again.
            with contextlib.suppress(DevToolsError):
                value = await self.evaluate(f"document.readyState === 'complete' && ({expression})")
                if value:
                    return value
            if time.monotonic() > deadline:
                url = await self.evaluate("location.href")
                raise DevToolsError(f"timed out waiting until {what} (at {url})")
            await asyncio.sleep(0.05)

    async def open(self, url: str) -> None:
        """Navigate the tab to ``url`` and wait until the page has loaded."""
        result = await self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise DevToolsError(f"could not open {url}: {result['errorText']}")
        await self.wait_for(f"location.href === {json.dumps(url)}", f"{url} has loaded")

    async def screenshot(self) -> bytes:
        """The visible page as PNG bytes."""
        result = await self.send("Page.captureScreenshot", format="png")
        return base64.b64decode(result["data"])

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._reader, 5)
        if self._session is not None:
            await self._session.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
