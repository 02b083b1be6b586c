"""Monitoring 1,000 courses beside webhook intake: memory, and intake latency while a
monitoring round runs.

Starts our service, registers N courses in its store, then measures a webhook load twice:
once with monitoring idle, and once from the moment the monitoring round of all N courses
begins until it ends (every course is probed once per interval, at a jittered time; their
hubs are a fake hub on loopback answering like JupyterHub). Prints throughput and p50/p99
of both runs, their ratio, how the round went, and the service's RSS with N courses
registered and monitored.

    .venv/bin/python bench/monitor.py [--courses 1000] [--every 20] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import _service
import psutil
import webhooks

HUB_SERVER = r"""
import sys, time
from aiohttp import web
count = 0
first = last = 0.0
async def api(request):
    global count, first, last
    count += 1
    last = time.time()
    first = first or last
    return web.json_response({"version": "5.1.0"})
async def stats(request):
    return web.json_response({"count": count, "first": first, "last": last})
app = web.Application()
app.router.add_get("/hub/api", api)
app.router.add_get("/stats", stats)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def hub_stats(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as answer:
        return json.loads(answer.read())


def database(data_dir: Path) -> sqlite3.Connection:
    db = sqlite3.connect(data_dir / "classroom.sqlite3", timeout=30, isolation_level=None)
    db.execute("PRAGMA busy_timeout=30000")
    return db


def register_courses(db: sqlite3.Connection, count: int) -> list[str]:
    names = [f"course-{i:04d}/hub" for i in range(count)]
    now = time.time()
    db.execute("BEGIN")
    db.executemany(
        "INSERT OR IGNORE INTO courses VALUES (?,?,?,1,?)",
        [(name, 1, None, now) for name in names],
    )
    db.execute("COMMIT")
    return names


def monitor_them(db: sqlite3.Connection, names: list[str], hub_port: int, every: float) -> None:
    # Written as a deploy would; the interval may be shorter than a course may ask for
    # (60 s), to keep the benchmark short.
    facts = json.dumps(
        {"hub_url": f"http://127.0.0.1:{hub_port}", "monitor_every": every, "monitor_issue": False}
    )
    db.execute("BEGIN")
    db.executemany(
        "INSERT OR REPLACE INTO meta VALUES (?,?)", [(f"course:{n}", facts) for n in names]
    )
    db.execute("COMMIT")


def load(server: _service.Server, secret: str, args: argparse.Namespace) -> webhooks.LoadResult:
    template = webhooks.request_template(server.url, webhooks.example_payload(), secret)
    return webhooks.run_load(server.url, template, args.concurrency, 10**9, args.seconds)


def describe(name: str, result: webhooks.LoadResult) -> str:
    return (
        f"{name:<28} {result.throughput:>8.0f}/s  p50 {result.latency(0.5):6.2f} ms"
        f"  p99 {result.latency(0.99):6.2f} ms  statuses {dict(result.statuses)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--courses", type=int, default=1000)
    parser.add_argument("--every", type=float, default=20.0, help="monitoring interval, s")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    secret = _service.new_secret()
    hub_port = _service.free_port()
    hub = subprocess.Popen([sys.executable, "-c", HUB_SERVER, str(hub_port)])
    server = _service.start_ours(secret)
    try:
        for _ in range(100):
            try:
                hub_stats(hub_port)
                break
            except OSError:
                time.sleep(0.1)
        db = database(server.data_dir)
        names = register_courses(db, args.courses)
        process = psutil.Process(server.pid)
        load(server, secret, argparse.Namespace(**{**vars(args), "seconds": 1.0}))  # warm-up
        args.seconds = args.every
        idle = load(server, secret, args)
        monitor_them(db, names, hub_port, args.every)
        # The monitor looks for due courses every 15 s; the load starts with the round's
        # first probe and lasts one interval, the whole round.
        deadline = time.time() + 30
        while hub_stats(hub_port)["count"] == 0 and time.time() < deadline:
            time.sleep(0.01)
        during = load(server, secret, args)
        stats = hub_stats(hub_port)
        rss = process.memory_info().rss / 2**20
    finally:
        server.stop()
        hub.terminate()
        hub.wait(timeout=10)
    print(
        f"{args.courses} courses registered, each probed every {args.every:g} s; load "
        f"{args.seconds:g} s at concurrency {args.concurrency}"
    )
    print(describe("intake, monitor idle", idle))
    print(describe("intake, during the round", during))
    print(
        f"ratio during/idle: throughput {during.throughput / idle.throughput:.2f}x, "
        f"p99 {during.latency(0.99) / idle.latency(0.99):.2f}x"
    )
    print(
        f"round: {stats['count']} hub probes over {stats['last'] - stats['first']:.1f} s; "
        f"service RSS afterwards {rss:.1f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
