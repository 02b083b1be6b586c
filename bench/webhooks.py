"""Benchmark webhook intake: our service against Probot, same signed deliveries, same run.

The load generator runs in a process of its own (forked), so its CPU is not the server's:
on a two-core machine the server under test gets one core and the generator the other.
It speaks HTTP/1.1 over keep-alive connections with a minimal ``asyncio.Protocol`` client
rather than aiohttp's, because a general-purpose client costs several times more CPU per
request than the servers being measured and would cap the figures.

Every delivery is GitHub's first published ``push`` example, signed with
X-Hub-Signature-256, with a fresh X-GitHub-Delivery UUID. Servers are reached on loopback
only; every run is bounded in both request count and time.

Run ``.venv/bin/python bench/webhooks.py --help`` from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import math
import multiprocessing
import os
import sqlite3
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import _service
import psutil

EXAMPLES = (
    _service.REPO
    / "tests/data/npm/node_modules/@octokit/webhooks-examples/api.github.com/index.json"
)
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# Hard ceilings, whatever the command line asks for.
MAX_REQUESTS = 2_000_000
MAX_SECONDS = 600.0
REQUEST_TIMEOUT = 30.0


# -- pure parts: the request, the response parser, the summary --------------------------


def example_payload(event: str = "push", index: int = 0) -> bytes:
    """GitHub's published example body for ``event``, compact JSON as GitHub sends it."""
    catalogue = json.loads(EXAMPLES.read_text())
    for entry in catalogue:
        if entry["name"] == event:
            return json.dumps(entry["examples"][index], separators=(",", ":")).encode()
    raise LookupError(f"{EXAMPLES}: no example named {event!r}")


def signature(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class RequestTemplate:
    """A signed delivery's bytes around the one part that changes, its delivery id."""

    head: bytes
    tail: bytes

    def render(self, delivery_id: str) -> bytes:
        return self.head + delivery_id.encode() + self.tail


def request_template(url: str, body: bytes, secret: str, event: str = "push") -> RequestTemplate:
    parts = urlsplit(url)
    host = parts.netloc
    path = parts.path or "/"
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "User-Agent: GitHub-Hookshot/bench\r\n"
        "Accept: */*\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"X-GitHub-Event: {event}\r\n"
        "X-GitHub-Hook-ID: 1\r\n"
        f"X-Hub-Signature-256: {signature(body, secret)}\r\n"
        "X-GitHub-Delivery: "
    ).encode()
    return RequestTemplate(head, b"\r\n\r\n" + body)


def check_loopback(url: str) -> str:
    """The URL, if it is plain HTTP on a loopback address; else a clear error."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS or parts.port is None:
        raise ValueError(
            f"{url!r}: only http://127.0.0.1:PORT/... (or localhost, [::1]) URLs are allowed"
        )
    return url


class ResponseParser:
    """Incremental HTTP/1.1 response reader: feed bytes, get the statuses of whole answers.

    Handles Content-Length and chunked bodies, which is what aiohttp and Node send.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._status: int | None = None
        self._remaining = 0  # bytes of a Content-Length body still to come
        self._chunked = False

    def feed(self, data: bytes) -> list[int]:
        self._buffer += data
        done: list[int] = []
        while True:
            if self._status is None:
                end = self._buffer.find(b"\r\n\r\n")
                if end < 0:
                    return done
                lines = bytes(self._buffer[:end]).split(b"\r\n")
                del self._buffer[: end + 4]
                self._status = int(lines[0].split(b" ", 2)[1])
                self._remaining, self._chunked = 0, False
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        self._remaining = int(value.strip())
                    elif name == b"transfer-encoding" and b"chunked" in value.lower():
                        self._chunked = True
            if self._chunked:
                if not self._skip_chunks():
                    return done
            else:
                if len(self._buffer) < self._remaining:
                    return done
                del self._buffer[: self._remaining]
            done.append(self._status)
            self._status = None

    def _skip_chunks(self) -> bool:
        """Consume whole chunks; True once the terminating chunk (and trailer) is read."""
        while True:
            end = self._buffer.find(b"\r\n")
            if end < 0:
                return False
            size = int(bytes(self._buffer[:end]).split(b";")[0], 16)
            if size == 0:
                trailer_end = self._buffer.find(b"\r\n\r\n", end)
                if trailer_end < 0 and bytes(self._buffer[end : end + 4]) != b"\r\n\r\n":
                    return False
                del self._buffer[: (trailer_end if trailer_end >= 0 else end) + 4]
                return True
            if len(self._buffer) < end + 2 + size + 2:
                return False
            del self._buffer[: end + 2 + size + 2]


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values (``fraction`` in 0..1)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class LoadResult:
    """What one load run measured, from the generator's side."""

    sent: int = 0
    completed: int = 0
    elapsed: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    generator_cpu: float = 0.0  # seconds of the generator process's own CPU

    @property
    def throughput(self) -> float:
        return self.completed / self.elapsed if self.elapsed else 0.0

    def latency(self, fraction: float) -> float:
        return percentile(sorted(self.latencies_ms), fraction)

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)


# -- the load generator (runs in its own process) -----------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive connection sending deliveries back to back."""

    def __init__(self, load: _Load) -> None:
        self.load = load
        self.parser = ResponseParser()
        self.transport: asyncio.Transport | None = None
        self.sent_at = 0
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._send_next()

    def _send_next(self) -> None:
        assert self.transport is not None
        if not self.load.take():
            self.transport.close()
            return
        self.sent_at = time.perf_counter_ns()
        self.transport.write(self.load.template.render(str(uuid.uuid4())))

    def data_received(self, data: bytes) -> None:
        for status in self.parser.feed(data):
            self.load.answered(status, (time.perf_counter_ns() - self.sent_at) / 1e6)
            self._send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            self.load.result.errors.append(f"connection lost: {exc}")
        if not self.closed.done():
            self.closed.set_result(None)


@dataclass
class _Load:
    template: RequestTemplate
    limit: int
    deadline: float  # time.monotonic() after which nothing new is sent
    result: LoadResult = field(default_factory=LoadResult)
    record: bool = True

    def take(self) -> bool:
        if self.result.sent >= self.limit or time.monotonic() >= self.deadline:
            return False
        self.result.sent += 1
        return True

    def answered(self, status: int, latency_ms: float) -> None:
        self.result.completed += 1
        self.result.statuses[status] += 1
        if self.record:
            self.result.latencies_ms.append(latency_ms)


async def _generate(
    template: RequestTemplate, host: str, port: int, concurrency: int, limit: int, seconds: float
) -> LoadResult:
    loop = asyncio.get_running_loop()
    load = _Load(template, limit, time.monotonic() + seconds)
    cpu_before = time.process_time()
    started = time.perf_counter()
    connections: list[_Connection] = []
    for _ in range(concurrency):
        _, protocol = await loop.create_connection(lambda: _Connection(load), host, port)
        connections.append(protocol)
    # Bounded in time whatever the server does: a stuck answer ends the run, reported.
    try:
        await asyncio.wait_for(
            asyncio.gather(*(c.closed for c in connections)), seconds + REQUEST_TIMEOUT
        )
    except TimeoutError:
        load.result.errors.append("timed out waiting for answers")
        for connection in connections:
            if connection.transport is not None:
                connection.transport.abort()
    load.result.elapsed = time.perf_counter() - started
    load.result.generator_cpu = time.process_time() - cpu_before
    return load.result


def _generator_main(connection: Any, args: tuple) -> None:
    try:
        connection.send(asyncio.run(_generate(*args)))
    except Exception as exc:  # reported to the parent, which prints it
        connection.send(exc)
    finally:
        connection.close()


def run_load(
    url: str, template: RequestTemplate, concurrency: int, limit: int, seconds: float
) -> LoadResult:
    """Drive ``url`` from a forked generator process and return what it measured."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    context = multiprocessing.get_context("fork")
    parent_end, child_end = context.Pipe(duplex=False)
    args = (template, parts.hostname, parts.port, concurrency, limit, seconds)
    process = context.Process(target=_generator_main, args=(child_end, args), daemon=True)
    process.start()
    child_end.close()
    if not parent_end.poll(seconds + REQUEST_TIMEOUT + 30):
        process.kill()
        raise RuntimeError(f"{url}: the load generator did not finish")
    outcome = parent_end.recv()
    process.join(timeout=10)
    if isinstance(outcome, Exception):
        raise RuntimeError(f"{url}: load generator failed: {outcome!r}")
    return outcome


# -- orchestration ------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    url: str
    secret: str
    pid: int | None
    server: _service.Server | None = None  # set when this script started it

    def rss_mb(self) -> float | None:
        if self.pid is None:
            return None
        return psutil.Process(self.pid).memory_info().rss / 2**20

    def cpu_seconds(self) -> float | None:
        if self.pid is None:
            return None
        times = psutil.Process(self.pid).cpu_times()
        return times.user + times.system

    def recorded_deliveries(self) -> int | None:
        """How many deliveries our service has committed to SQLite (when we started it)."""
        if self.server is None or self.server.data_dir is None:
            return None
        path = self.server.data_dir / "classroom.sqlite3"
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
        finally:
            db.close()


@dataclass
class Measured:
    target: Target
    result: LoadResult
    server_cpu: float | None  # seconds of the server's CPU during the measured run


def measure(
    target: Target, body: bytes, concurrency: int, limit: int, seconds: float, warmup: int
) -> Measured:
    template = request_template(target.url, body, target.secret)
    if warmup:
        warm = run_load(target.url, template, concurrency, warmup, seconds)
        _require_success(target, warm)
    cpu_before = target.cpu_seconds()
    result = run_load(target.url, template, concurrency, limit, seconds)
    cpu_after = target.cpu_seconds()
    _require_success(target, result)
    server_cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return Measured(target, result, server_cpu)


def combine(parts: list[Measured]) -> Measured:
    """One target's rounds as one measurement: counts, times and latencies pooled."""
    total = LoadResult()
    server_cpu: float | None = 0.0
    for part in parts:
        r = part.result
        total.sent += r.sent
        total.completed += r.completed
        total.elapsed += r.elapsed
        total.statuses.update(r.statuses)
        total.latencies_ms.extend(r.latencies_ms)
        total.errors.extend(r.errors)
        total.generator_cpu += r.generator_cpu
        server_cpu = (
            None
            if server_cpu is None or part.server_cpu is None
            else (server_cpu + part.server_cpu)
        )
    return Measured(parts[0].target, total, server_cpu)


def measure_interleaved(
    targets: list[Target],
    body: bytes,
    concurrency: int,
    limit: int,
    seconds: float,
    warmup: int,
    rounds: int,
) -> list[Measured]:
    """Every target for ``seconds`` in all, in ``rounds`` turns taken in A B B A order.

    On a shared machine the background load drifts within seconds; short alternating
    turns give every server the same share of it, so the ratio measures the servers.
    """
    for target in targets:  # warm up each server once, unmeasured
        if warmup:
            template = request_template(target.url, body, target.secret)
            _require_success(target, run_load(target.url, template, concurrency, warmup, seconds))
    parts: dict[str, list[Measured]] = {t.name: [] for t in targets}
    for turn in range(rounds):
        order = targets if turn % 2 == 0 else list(reversed(targets))
        for target in order:
            parts[target.name].append(
                measure(target, body, concurrency, limit // rounds or 1, seconds / rounds, 0)
            )
    return [combine(parts[t.name]) for t in targets]


def _require_success(target: Target, result: LoadResult) -> None:
    if result.errors or result.ok != result.completed or result.completed != result.sent:
        raise RuntimeError(
            f"{target.name}: {result.completed}/{result.sent} answered, statuses "
            f"{dict(result.statuses)}, errors {result.errors[:3]}"
        )


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or math.isnan(value) else format(value, spec)


def print_throughput(runs: list[Measured]) -> None:
    print(
        f"{'server':<8} {'deliveries':>10} {'seconds':>8} {'deliv/s':>9} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8} {'srv CPU%':>8} {'CPU us/d':>8} {'gen CPU%':>8}  statuses"
    )
    for run in runs:
        r = run.result
        cpu = 100 * run.server_cpu / r.elapsed if run.server_cpu is not None else None
        # The server's CPU per delivery: what it costs, whatever share of the machine it got.
        per = 1e6 * run.server_cpu / r.completed if run.server_cpu and r.completed else None
        print(
            f"{run.target.name:<8} {r.completed:>10} {r.elapsed:>8.2f} {r.throughput:>9.0f} "
            f"{r.latency(0.50):>8.2f} {r.latency(0.99):>8.2f} {r.latency(1.0):>8.2f} "
            f"{_fmt(cpu, '.0f'):>8} {_fmt(per, '.0f'):>8} "
            f"{100 * r.generator_cpu / r.elapsed:>8.0f}  "
            f"{dict(sorted(r.statuses.items()))}"
        )
        recorded = run.target.recorded_deliveries()
        if recorded is not None:
            print(f"{'':<8} deliveries recorded in SQLite so far (warm-up included): {recorded}")
    if len(runs) == 2:
        ours, peer = runs[0].result, runs[1].result
        print(
            f"ratio ours/{runs[1].target.name}: throughput "
            f"{ours.throughput / peer.throughput:.2f}x, "
            f"p50 {ours.latency(0.5) / peer.latency(0.5):.2f}x, "
            f"p99 {ours.latency(0.99) / peer.latency(0.99):.2f}x"
            + _cpu_ratio(runs)
            + " (throughput: higher is better; latency and CPU: lower is better)"
        )


def _cpu_ratio(runs: list[Measured]) -> str:
    ours, peer = runs
    if not (ours.server_cpu and peer.server_cpu):
        return ""
    per_ours = ours.server_cpu / ours.result.completed
    per_peer = peer.server_cpu / peer.result.completed
    return f", CPU per delivery {per_ours / per_peer:.2f}x"


def memory_run(target: Target, body: bytes, concurrency: int, count: int) -> None:
    template = request_template(target.url, body, target.secret)
    before = target.rss_mb()
    result = run_load(target.url, template, concurrency, count, MAX_SECONDS)
    _require_success(target, result)
    time.sleep(1.0)  # let the answers' background work (none expected) settle
    after = target.rss_mb()
    recorded = target.recorded_deliveries()
    print(
        f"{target.name:<8} {count} deliveries in {result.elapsed:.1f} s: RSS before "
        f"{_fmt(before, '.1f')} MB, after {_fmt(after, '.1f')} MB"
        + (f"; {recorded} recorded in SQLite" if recorded is not None else "")
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/webhooks.py",
        description="Webhook intake throughput, p50/p99 acknowledgement latency and RSS: "
        "our service against Probot, with the same signed push deliveries.",
    )
    ours = parser.add_mutually_exclusive_group(required=True)
    ours.add_argument("--url", help="our service's webhook URL (http://127.0.0.1:PORT/webhook)")
    ours.add_argument("--start", action="store_true", help="start our service on a free port")
    parser.add_argument("--pid", type=int, help="our service's pid, for CPU and RSS (with --url)")
    parser.add_argument("--secret", help="webhook secret of --url/--peer (generated with --start)")
    peer = parser.add_mutually_exclusive_group()
    peer.add_argument("--peer", help="Probot's webhook URL (.../api/github/webhooks)")
    peer.add_argument("--start-peer", action="store_true", help="start Probot with start.sh")
    parser.add_argument("--peer-pid", type=int, help="the peer's pid, for CPU and RSS")
    parser.add_argument(
        "--peer-workdir",
        type=Path,
        default=Path(os.environ.get("TMPDIR", "/tmp")) / "probot-peer",
        help="where start.sh installs Probot once (default: $TMPDIR/probot-peer)",
    )
    parser.add_argument("--concurrency", type=int, default=16, help="open connections (16)")
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--requests", type=int, help="deliveries per server")
    amount.add_argument("--seconds", type=float, help="seconds per server (default 10)")
    parser.add_argument("--warmup", type=int, default=1000, help="unmeasured deliveries first")
    parser.add_argument(
        "--rounds",
        type=int,
        default=10,
        help="alternating turns the servers take, A B B A (10; 1 = one run each, in turn)",
    )
    parser.add_argument(
        "--memory", type=int, metavar="N", help="instead: send N deliveries, then print RSS"
    )
    args = parser.parse_args(argv)
    if args.url:
        args.url = check_loopback(args.url)
        if not args.secret:
            parser.error("--url needs --secret (the service's GITHUB_WEBHOOK_SECRET)")
    if args.peer:
        args.peer = check_loopback(args.peer)
        if not args.secret:
            parser.error("--peer needs --secret (one secret for both servers)")
    if not 1 <= args.concurrency <= 1024:
        parser.error("--concurrency: between 1 and 1024")
    for name in ("requests", "memory"):
        value = getattr(args, name)
        if value is not None and not 1 <= value <= MAX_REQUESTS:
            parser.error(f"--{name}: between 1 and {MAX_REQUESTS}")
    if args.seconds is not None and not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"--seconds: more than 0, at most {MAX_SECONDS:.0f}")
    if args.requests is None and args.seconds is None:
        args.seconds = 10.0
    if not 1 <= args.rounds <= 100:
        parser.error("--rounds: between 1 and 100")
    return args


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    secret = args.secret or _service.new_secret()
    body = example_payload()
    targets: list[Target] = []
    try:
        if args.start:
            server = _service.start_ours(secret)
            targets.append(Target("ours", server.url, secret, server.pid, server))
        else:
            targets.append(Target("ours", args.url, secret, args.pid))
        if args.start_peer:
            server = _service.start_probot(secret, args.peer_workdir)
            targets.append(Target("probot", server.url, secret, server.pid, server))
        elif args.peer:
            targets.append(Target("probot", args.peer, secret, args.peer_pid))

        print(
            f"payload: push example #0, {len(body)} bytes; concurrency {args.concurrency}; "
            f"{args.rounds} alternating rounds; load generator: separate process; "
            f"{os.cpu_count()} CPUs"
        )
        if args.memory:
            for target in targets:
                memory_run(target, body, args.concurrency, args.memory)
            return 0
        limit = args.requests or MAX_REQUESTS
        seconds = args.seconds or MAX_SECONDS
        runs = measure_interleaved(
            targets, body, args.concurrency, limit, seconds, args.warmup, args.rounds
        )
        print_throughput(runs)
        return 0
    except (RuntimeError, _service.StartError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        for target in targets:
            if target.server is not None:
                target.server.stop()


if __name__ == "__main__":
    sys.exit(main())
