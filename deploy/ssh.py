"""The SSH executor: run plan steps and observe scripts on a course's server.

One pooled asyncssh connection per server, kept briefly between jobs, with the server's
host key pinned: the key in the course config wins, else the key seen at first contact is
handed back for the caller to record, and a different key stops everything before a
single command runs.

Scripts travel on stdin to ``bash -s`` (never in argv, where a server's process list or
logs would show them), wrapped in ``{ … }`` so bash reads the whole script before it
runs any of it and a command that reads stdin cannot swallow the rest. Data a script
needs and no command line may show (a password's hash) follows the script on the same
stdin: bash reads a pipe one byte at a time, so the script's commands read exactly the
data, and the script ends in ``exit`` so data left unread can never run as commands.
The server's own ``timeout`` bounds each step, so a hung step is killed there rather
than left behind.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncssh

from deploy.model import Progress, Step, StepResult
from deploy.redact import redact
from deploy.retry import RetryPolicy

TAIL_LINES = 50
# What a script may print on stdout, and on stderr, before it is stopped: a server (or
# whatever answers at the address a course names) cannot make the service hold more.
OUTPUT_LIMIT = 16 * 1024 * 1024
# A step's output is streamed line by line; one line longer than this is cut.
LINE_LIMIT = 64 * 1024
READ_CHUNK = 64 * 1024
# Exit statuses of GNU timeout: the command timed out (TERM), or had to be KILLed.
TIMED_OUT_STATUSES = (124, 137)


class SSHError(Exception):
    """Talking to a server failed in a way the operation should report and stop on."""


class OutputTooLarge(SSHError):
    """A script printed more than the service reads; it was stopped."""

    def __init__(self, address: str, stream: str, limit: int) -> None:
        super().__init__(
            f"a script on {address} printed over {limit // (1024 * 1024)} MiB on {stream}; "
            "it was stopped and its output discarded"
        )


async def read_capped(
    stream: asyncssh.SSHReader[bytes], limit: int, address: str, name: str
) -> bytes:
    """Everything ``stream`` sends until it ends; ``OutputTooLarge`` past ``limit`` bytes."""
    buffer = bytearray()
    while chunk := await stream.read(READ_CHUNK):
        if len(buffer) + len(chunk) > limit:
            raise OutputTooLarge(address, name, limit)
        buffer += chunk
    return bytes(buffer)


async def capped_lines(
    stream: asyncssh.SSHReader[str], limit: int = LINE_LIMIT
) -> AsyncIterator[str]:
    """The lines ``stream`` sends (without their ends), each cut at ``limit`` characters."""
    pending = ""
    cut = False
    while chunk := await stream.read(READ_CHUNK):
        pending += chunk
        *complete, pending = pending.split("\n")
        for line in complete:
            if cut:
                cut = False
                continue
            yield line.rstrip("\r")
        if len(pending) > limit:
            if not cut:
                yield pending[:limit] + f" … (line cut at {limit // 1024} KiB)"
            cut, pending = True, ""
    if pending and not cut:
        yield pending.rstrip("\r")


class Unreachable(SSHError):
    """The server did not answer, or refused the service's key."""


class KeyRefused(Unreachable):
    """The server answered and refused every key offered; the message says what to add."""


class HostKeyChanged(SSHError):
    """The server presented a host key other than the pinned one; nothing was run."""

    def __init__(self, host: str, port: int, presented: str, pinned: str) -> None:
        self.host = host
        self.port = port
        self.presented = presented
        self.pinned = pinned
        super().__init__(
            f"the server at {host}:{port} presented a different host key "
            f"({fingerprint(presented)}) than the one pinned ({fingerprint(pinned)}); "
            "if the server was rebuilt on purpose, put its new key in server.host_key of "
            ".github/classroom.yml (compare it with `ssh-keygen -lf "
            "/etc/ssh/ssh_host_ed25519_key.pub` run on the server); until then nothing "
            "runs on it"
        )


@dataclass(frozen=True)
class Target:
    """Where and as whom to connect, and the host key to insist on (None: first contact).

    ``client_key`` is offered first, then ``fallback_key`` if any (a server that may still
    trust the service's key from before per-course keys). ``authorize_line`` is the public
    key line the server's user must trust, named in the error when the server refuses.
    """

    host: str
    port: int = 22
    user: str = "root"
    pinned_key: str | None = None
    client_key: asyncssh.SSHKey | None = field(default=None, compare=False, repr=False)
    fallback_key: asyncssh.SSHKey | None = field(default=None, compare=False, repr=False)
    authorize_line: str | None = field(default=None, compare=False)

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def client_keys(self) -> list[asyncssh.SSHKey]:
        return [key for key in (self.client_key, self.fallback_key) if key is not None]

    @property
    def pool_key(self) -> tuple[str, int, str, tuple[str, ...]]:
        """A pooled connection serves only the same server, user and offered keys: a
        connection one course's key opened is never lent to another course."""
        keys = tuple(key_line(key) for key in self.client_keys)
        return (self.host, self.port, self.user, keys)


def key_line(key: asyncssh.SSHKey | str) -> str:
    """``algorithm base64`` of an OpenSSH public key, without its comment."""
    if not isinstance(key, str):
        key = key.export_public_key("openssh").decode()
    return " ".join(key.split()[:2])


def fingerprint(line: str) -> str:
    """OpenSSH's ``SHA256:…`` fingerprint of a public key line."""
    try:
        return asyncssh.import_public_key(line).get_fingerprint("sha256")
    except (asyncssh.KeyImportError, ValueError):
        return "unreadable key"


def wrap_script(script: str, merge_stderr: bool = False) -> str:
    """The script as bash must read it in full before running any of it.

    ``merge_stderr`` sends stderr into stdout on the server, where the two still arrive
    in the order they were written.
    """
    return "{\n" + script.rstrip("\n") + ("\n} 2>&1\n" if merge_stderr else "\n}\n")


def script_with_input(script: str, data: str) -> str:
    """``script`` followed by ``data`` on one stdin: the script reads the data, never runs it."""
    return wrap_script(script.rstrip("\n") + "\nexit $?\n") + data


def step_command(timeout: float) -> str:
    # --kill-after: a step that ignores TERM is KILLed ten seconds later.
    return f"timeout --signal=TERM --kill-after=10 {max(1, math.ceil(timeout))} bash -s"


def stamp(line: str) -> str:
    return f"{datetime.now(UTC):%H:%M:%S} {line}"


class _ConnectionDropped(Exception):
    """The connection went away while a command ran."""


# A connection that went away under a running command: worth opening again.
LOST = (_ConnectionDropped, asyncssh.ConnectionLost, asyncssh.DisconnectError)
# What may also fail opening it again; run_step retries these too, except on first contact.
DROPPED = (*LOST, OSError, Unreachable)


class _PinningClient(asyncssh.SSHClient):
    """Accepts any host key at first contact, none but the pinned one afterwards.

    asyncssh consults this only for keys not among the trusted ones, so with a pin the
    answer is no; either way the presented key is kept to report or record it.
    """

    def __init__(self, first_contact: bool) -> None:
        self.first_contact = first_contact
        self.presented: asyncssh.SSHKey | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.presented = key
        return self.first_contact


# Host, port, user and the offered client keys' lines.
PoolKey = tuple[str, int, str, tuple[str, ...]]


@dataclass
class _Pooled:
    connection: asyncssh.SSHClientConnection
    host_key: str
    in_use: int = 0
    idle_timer: asyncio.TimerHandle | None = None


class SSHPool:
    """Connections to servers, one per (host, port, user), reused across steps and jobs."""

    def __init__(
        self,
        *,
        idle_timeout: float = 60.0,
        keepalive_interval: float = 15.0,
        connect_timeout: float = 30.0,
        max_reconnects: int = 2,
        reconnect_delay: float = 1.0,
    ) -> None:
        self.idle_timeout = idle_timeout
        self.keepalive_interval = keepalive_interval
        self.connect_timeout = connect_timeout
        self.max_reconnects = max_reconnects
        self.reconnect_delay = reconnect_delay
        self.connections_opened = 0
        self.commands_run = 0
        self.reconnects = 0
        self._pool: dict[PoolKey, _Pooled] = {}
        self._locks: collections.defaultdict[PoolKey, asyncio.Lock] = collections.defaultdict(
            asyncio.Lock
        )

    def counters(self) -> dict[str, int]:
        """For the benchmark: SSH round trips and remote commands."""
        return {
            "connections_opened": self.connections_opened,
            "commands_run": self.commands_run,
            "reconnects": self.reconnects,
        }

    # -- connections ----------------------------------------------------------------

    async def connect(self, target: Target) -> tuple[asyncssh.SSHClientConnection, str]:
        """A connection to ``target`` and the host key line its server presented.

        With ``target.pinned_key`` None the key is accepted and returned so the caller can
        pin it; otherwise any other key raises ``HostKeyChanged`` before anything runs.
        """
        key = target.pool_key
        async with self._locks[key]:
            pooled = self._pool.get(key)
            if pooled is not None and (
                pooled.connection.is_closed()
                or (target.pinned_key and key_line(target.pinned_key) != pooled.host_key)
            ):
                self._discard(key, pooled)
                pooled = None
            if pooled is None:
                pooled = await self._open(target)
                self._pool[key] = pooled
            if pooled.idle_timer is not None:
                pooled.idle_timer.cancel()
                pooled.idle_timer = None
            return pooled.connection, pooled.host_key

    async def _open(self, target: Target) -> _Pooled:
        trusted: list[asyncssh.SSHKey] = []
        if target.pinned_key:
            try:
                trusted.append(asyncssh.import_public_key(target.pinned_key))
            except (asyncssh.KeyImportError, ValueError):
                raise SSHError(
                    f"the host key pinned for {target.address} is not an OpenSSH public key "
                    "line (expected e.g. 'ssh-ed25519 AAAA…')"
                ) from None
        client = _PinningClient(first_contact=not trusted)
        try:
            connection = await asyncssh.connect(
                target.host,
                target.port,
                username=target.user,
                client_keys=target.client_keys or None,
                known_hosts=(trusted, [], []),
                client_factory=lambda: client,
                keepalive_interval=self.keepalive_interval,
                keepalive_count_max=3,
                connect_timeout=self.connect_timeout,
                agent_path=None,
                config=None,
                password=None,
                kbdint_auth=False,
                gss_auth=False,
                host_based_auth=False,
            )
        except asyncssh.HostKeyNotVerifiable:
            if client.presented is None or target.pinned_key is None:
                raise SSHError(f"could not verify the host key of {target.address}") from None
            raise HostKeyChanged(
                target.host, target.port, key_line(client.presented), key_line(target.pinned_key)
            ) from None
        except asyncssh.PermissionDenied:
            if target.authorize_line:
                raise KeyRefused(
                    f"the server at {target.address} refused the course's SSH key for user "
                    f"{target.user!r}; add this line to that user's ~/.ssh/authorized_keys "
                    f"there:\n\n    {target.authorize_line}"
                ) from None
            raise KeyRefused(
                f"the server at {target.address} refused the service's SSH key for user "
                f"{target.user!r}; add the key from /ssh-key.pub to that user's "
                "~/.ssh/authorized_keys"
            ) from None
        except (OSError, TimeoutError, asyncssh.Error) as exc:
            raise Unreachable(f"could not connect to {target.address}: {exc}") from None
        self.connections_opened += 1
        presented = connection.get_server_host_key()
        assert presented is not None
        return _Pooled(connection, key_line(presented))

    def _discard(self, key: PoolKey, pooled: _Pooled) -> None:
        if self._pool.get(key) is pooled:
            del self._pool[key]
        if pooled.idle_timer is not None:
            pooled.idle_timer.cancel()
        pooled.connection.close()

    @contextlib.asynccontextmanager
    async def _borrow(self, target: Target):  # type: ignore[no-untyped-def]
        connection, _ = await self.connect(target)
        key = target.pool_key
        pooled = self._pool[key]
        pooled.in_use += 1
        try:
            yield connection
        except (*LOST, OSError):
            self._discard(key, pooled)
            raise
        finally:
            pooled.in_use -= 1
            if pooled.in_use == 0 and self._pool.get(key) is pooled:
                loop = asyncio.get_running_loop()
                pooled.idle_timer = loop.call_later(self.idle_timeout, self._expire, key, pooled)

    def _expire(self, key: PoolKey, pooled: _Pooled) -> None:
        if pooled.in_use == 0:
            self._discard(key, pooled)

    async def close_all(self) -> None:
        """Close every pooled connection (at shutdown, and between tests)."""
        pooled = list(self._pool.items())
        for key, entry in pooled:
            self._discard(key, entry)
        for _, entry in pooled:
            with contextlib.suppress(Exception):
                await entry.connection.wait_closed()

    # -- running ----------------------------------------------------------------------

    async def run_step(self, target: Target, step: Step, progress: Progress) -> StepResult:
        """Run ``step.script``, streaming each output line to ``progress``.

        A dropped connection is re-opened and the step run again (steps are idempotent),
        up to ``max_reconnects`` times. ``HostKeyChanged`` and ``Unreachable`` on the
        first connection are raised; every other failure is a failed ``StepResult``.
        """
        started = time.monotonic()
        tries = 0

        async def once() -> StepResult:
            nonlocal tries
            tries += 1
            async with self._borrow(target) as connection:
                return await self._run_step_once(connection, step, progress, started)

        def worth_again(failure: BaseException) -> bool:
            # A server that never answered is not retried here: the caller waits for it.
            first_contact = isinstance(failure, Unreachable) and tries == 1
            return isinstance(failure, DROPPED) and not first_contact

        async def on_retry(failure: BaseException, failures: int, _delay: float) -> None:
            self.reconnects += 1
            await progress(
                stamp(
                    f"connection to {target.address} lost ({redact(str(failure)) or 'dropped'});"
                    f" reconnecting and running step {step.name} again"
                    f" ({failures}/{self.max_reconnects})"
                )
            )

        policy = RetryPolicy(
            retry_on=worth_again,
            attempts=self.max_reconnects + 1,
            wait=lambda _failure, failures: self.reconnect_delay * failures,
        )
        try:
            return await policy.call(once, on_retry=on_retry)
        except DROPPED as exc:
            if isinstance(exc, Unreachable) and tries == 1:
                raise
            return StepResult(
                step,
                ok=False,
                seconds=time.monotonic() - started,
                output_tail=redact(
                    f"step {step.name}: lost the connection to {target.address} "
                    f"{tries} times; last: {exc}"
                ),
            )

    async def _run_step_once(
        self,
        connection: asyncssh.SSHClientConnection,
        step: Step,
        progress: Progress,
        started: float,
    ) -> StepResult:
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        process = await connection.create_process(
            step_command(step.timeout),
            stderr=asyncssh.STDOUT,
            encoding="utf-8",
            errors="replace",
        )
        self.commands_run += 1
        process.stdin.write(wrap_script(step.script, merge_stderr=True))
        process.stdin.write_eof()
        timed_out = False
        try:
            # The server's `timeout` ends the step; this is the backstop should it not.
            async with asyncio.timeout(step.timeout + 15):
                async for line in capped_lines(process.stdout):
                    text = redact(line)
                    tail.append(text)
                    await progress(stamp(text))
                await process.wait_closed()
        except TimeoutError:
            timed_out = True
            process.close()
        status = process.exit_status
        if not timed_out and status is None and process.exit_signal is None:
            raise _ConnectionDropped("the connection closed while the step ran")
        seconds = time.monotonic() - started
        if timed_out or status in TIMED_OUT_STATUSES:
            message = f"step {step.name} timed out after {step.timeout:g} s and was stopped"
        elif status == 0:
            return StepResult(step, ok=True, seconds=seconds, output_tail="\n".join(tail))
        elif status is None:
            signal_name = process.exit_signal[0] if process.exit_signal else "?"
            message = f"step {step.name} was killed by signal {signal_name}"
        else:
            message = f"step {step.name} failed with exit status {status}"
        await progress(stamp(message))
        return StepResult(step, ok=False, seconds=seconds, output_tail="\n".join([*tail, message]))

    async def run_script(
        self,
        target: Target,
        script: str,
        timeout: float = 120.0,
        *,
        stdin: str | None = None,
        limit: int = OUTPUT_LIMIT,
    ) -> tuple[int, str, str]:
        """Run a script in one round trip: ``(exit_status, stdout, stderr)``.

        Each stream is read up to ``limit`` bytes: past it the script is stopped and
        ``OutputTooLarge`` (an ``SSHError``) says so; nothing past the limit is held.

        ``stdin`` is data for the script to read (see ``script_with_input``). Output is
        returned as it came, for parsing; redact it before showing it to anyone. A dropped
        connection is retried once, so the script must be idempotent (observing is; so is
        each accounts action, one transaction each).
        """
        text = wrap_script(script) if stdin is None else script_with_input(script, stdin)

        async def once() -> tuple[int, str, str]:
            async with self._borrow(target) as connection:
                self.commands_run += 1
                process = await connection.create_process(step_command(timeout), encoding=None)
                process.stdin.write(text.encode())
                process.stdin.write_eof()
                # Both at once: an unread stream would stall the other's window.
                reads = [
                    asyncio.ensure_future(read_capped(stream, limit, target.address, name))
                    for stream, name in ((process.stdout, "stdout"), (process.stderr, "stderr"))
                ]
                try:
                    async with asyncio.timeout(timeout + 15):
                        out, err = await asyncio.gather(*reads)
                        await process.wait_closed()
                except TimeoutError:
                    process.close()
                    raise SSHError(
                        f"a script on {target.address} did not finish within {timeout:g} s"
                    ) from None
                except BaseException:
                    process.close()
                    raise
                finally:
                    for read in reads:
                        read.cancel()
                if process.exit_status is None and process.exit_signal is None:
                    # Inside the borrow, so the pool drops the dead connection.
                    raise _ConnectionDropped("the connection closed while the script ran")
            status = process.exit_status if process.exit_status is not None else -1
            return status, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

        async def on_retry(_failure: BaseException, _failures: int, _delay: float) -> None:
            self.reconnects += 1

        policy = RetryPolicy(
            retry_on=lambda failure: isinstance(failure, LOST),
            attempts=2,
            wait=lambda _failure, _failures: 0.0,
        )
        try:
            return await policy.call(once, on_retry=on_retry)
        except LOST:
            raise Unreachable(f"lost the connection to {target.address} twice") from None
