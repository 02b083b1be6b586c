"""The SSH target's stand-in for sshd where OpenSSH is not installed: asyncssh on loopback.

Run as its own process (like sshd, so the test process gains no threads):
``python fallback_sshd.py PORT HOST_KEY AUTHORIZED_KEYS SANDBOX``. Each command runs
through the same ``sandbox.sh`` as under sshd's ``ForceCommand``; a stand-in asked to cut
the connection writes a marker to stderr, and this server then drops the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncssh

SANDBOX_WRAPPER = Path(__file__).resolve().parent / "sandbox.sh"
CUT_MARKER = b"\x00SSHTARGET-CUT\x00"
SSHD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


async def serve(process: asyncssh.SSHServerProcess, sandbox: str) -> None:
    if not process.command:
        process.stderr.write(b"sshtarget: only commands are served, not interactive shells\n")
        process.exit(1)
        return
    child = await asyncio.create_subprocess_exec(
        "/bin/sh",
        str(SANDBOX_WRAPPER),
        sandbox,
        env={"PATH": SSHD_PATH, "SSH_ORIGINAL_COMMAND": process.command},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert child.stdin and child.stdout and child.stderr
    connection = process.channel.get_connection()
    cut = asyncio.Event()

    async def feed() -> None:
        with contextlib.suppress(Exception):
            while data := await process.stdin.read(65536):
                child.stdin.write(data)
                await child.stdin.drain()
        with contextlib.suppress(Exception):
            child.stdin.close()

    async def pump(source: asyncio.StreamReader, sink: asyncssh.SSHWriter) -> None:
        while data := await source.read(65536):
            if CUT_MARKER in data:
                cut.set()
                return
            sink.write(data)

    feeder = asyncio.ensure_future(feed())
    pumps = asyncio.gather(pump(child.stdout, process.stdout), pump(child.stderr, process.stderr))
    waiter = asyncio.ensure_future(cut.wait())
    await asyncio.wait([pumps, waiter], return_when=asyncio.FIRST_COMPLETED)
    if cut.is_set():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        connection.abort()
        pumps.cancel()
    else:
        waiter.cancel()
    status = await child.wait()
    feeder.cancel()
    if not cut.is_set():
        process.exit(status if status >= 0 else 128 - status)


async def main(port: int, host_key: str, authorized_keys: str, sandbox: str) -> None:
    acceptor = await asyncssh.listen(
        "127.0.0.1",
        port,
        server_host_keys=[host_key],
        authorized_client_keys=authorized_keys,
        process_factory=lambda process: serve(process, sandbox),
        encoding=None,
        allow_scp=False,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    acceptor.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]))
