"""The instructor console with 1,000 courses in the store: GitHub requests and server time
per page view.

Runs the service in-process against the spec-checked fake GitHub, with one installation of
1,000 course repositories (all in the store, each with a few finished jobs), of which the
signed-in instructor may write to 20. Signs in through the OAuth web flow, views the course
list and one course page once each (cold caches), then many times (warm caches), and
reports GitHub requests per view (API and OAuth web endpoints together) and the time per
page, measured in the service by a middleware (server time) and at the client.

    .venv/bin/python bench/console.py [views]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.app import make_app
from bot.services import SERVICES
from bot.settings import load_settings
from bot.store import NewJob
from tests.console_support import sign_in
from tests.fakes.github import FakeGitHub
from tests.plugins.service import WEBHOOK_SECRET

INSTALLATION = 1001
COURSES = 1_000
WRITABLE = 20
JOBS_PER_COURSE = 3


def github_requests(github: FakeGitHub) -> int:
    return len(github.requests) + len(github.oauth_requests)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def main(views: int) -> int:
    server_times: dict[str, list[float]] = {}

    @web.middleware
    async def timed(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            return await handler(request)
        finally:
            key = "list" if request.path == "/courses" else "page"
            server_times.setdefault(key, []).append((time.perf_counter() - started) * 1000)

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        github = FakeGitHub()
        github.add_installation(INSTALLATION, "octo-org")
        names = [f"octo-org/course{n:04d}" for n in range(COURSES)]
        for n, name in enumerate(names):
            collaborators = {"alice": "write"} if n % (COURSES // WRITABLE) == 0 else {}
            github.add_repository(
                name, {"README.md": b"# A course\n"}, installation_id=INSTALLATION,
                collaborators={**collaborators, "someone": "admin"},
            )  # fmt: skip
        await github.start()
        settings = load_settings(
            {
                "BOT_DATA_DIR": str(base / "data"),
                "GITHUB_APP_ID": str(github.app.id),
                "GITHUB_PRIVATE_KEY": github.app.private_key_pem,
                "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "GITHUB_CLIENT_ID": github.app.client_id,
                "GITHUB_CLIENT_SECRET": github.app.client_secret,
                "GITHUB_API_URL": github.url,
                "GITHUB_URL": github.url,
            },
            env_file=base / ".env",
        )
        app = make_app(settings, monitoring=False)
        app.middlewares.insert(0, timed)
        client = TestClient(TestServer(app))
        await client.start_server()
        services = client.server.app[SERVICES]
        services.runner.pause()  # the jobs below are only history for the page
        store = services.store
        await store.add_courses(INSTALLATION, [(name, None) for name in names])
        for name in names:
            for _ in range(JOBS_PER_COURSE):
                added = await store.enqueue(NewJob(name, "command", {"name": "status"}))
                assert added is not None
                await store.finish_job(
                    added[0], "done", result={"conclusion": "success", "log": "ok\n" * 50}
                )
        course = names[0]
        try:
            await sign_in(client, github, "alice")
            results = {}
            for key, path in (("list", "/courses"), ("page", f"/courses/{course}")):
                before = github_requests(github)
                answer = await client.get(path)
                assert answer.status == 200, await answer.text()
                cold = github_requests(github) - before
                server_times[key] = []
                client_times = []
                before = github_requests(github)
                for _ in range(views):
                    started = time.perf_counter()
                    answer = await client.get(path)
                    await answer.read()
                    client_times.append((time.perf_counter() - started) * 1000)
                    assert answer.status == 200
                warm = (github_requests(github) - before) / views
                results[key] = (cold, warm, server_times[key], client_times)
            listed = (await (await client.get("/courses")).text()).count('class="course"')
        finally:
            await client.close()
            await github.close()
    print(f"{COURSES} courses in the store; alice may write to {listed}; {views} views each")
    for key, label in (("list", "course list"), ("page", "course page")):
        cold, warm, server, at_client = results[key]
        print(
            f"{label}: GitHub requests cold {cold}, warm {warm:.2f}/view (goal <= 2); "
            f"server p50 {statistics.median(server):.2f} ms, p99 {percentile(server, 0.99):.2f} ms "
            f"(goal <= 50); at the client p99 {percentile(at_client, 0.99):.2f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)))
