"""``POST /webhook`` fuzzed through the real app: whatever a client sends, never a 5xx.

Requests are written byte for byte on a raw socket, so headers (including a wrong
``Content-Length``) reach the server exactly as generated, not as an HTTP client would
tidy them. After each run the service must still answer ``/healthz``, and its memory
must not have grown past a stated bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import hmac
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psutil
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import make_app
from bot.jobs.runner import JobKinds
from bot.services import SERVICES
from tests.plugins.service import EXAMPLES, WEBHOOK_SECRET, deliver

EVENT_NAMES = sorted({entry["name"] for entry in json.loads(EXAMPLES.read_text())})
# The fuzz sends up to a few MiB per request and a few hundred requests; the service
# keeps nothing of a refused request, so its RSS may grow by caches and allocator slack
# only. 150 MiB is far above that and far below what a leak of the bodies would cost.
RSS_GROWTH_BOUND = 150 * 1024 * 1024
MAX_BODY = 25 * 1024 * 1024
FUZZ_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


# ----- a running service, driven from synchronous hypothesis tests ----------------------


@dataclass
class Service:
    loop: asyncio.AbstractEventLoop
    client: TestClient

    @property
    def port(self) -> int:
        assert self.client.port is not None
        return self.client.port

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def raw(self, request: bytes, *, hang_up: bool = False) -> int | None:
        return self.run(raw_exchange(self.port, request, hang_up=hang_up))

    def healthy(self) -> bool:
        async def check() -> bool:
            response = await self.client.get("/healthz")
            return response.status == 200 and (await response.json()) == {"status": "alive"}

        return self.run(check())

    def metrics(self) -> tuple[int, str]:
        async def fetch() -> tuple[int, str]:
            response = await self.client.get("/metrics")
            return response.status, await response.text()

        return self.run(fetch())


@contextmanager
def running_service(make_settings) -> Iterator[Service]:
    """The real app on 127.0.0.1 in its own event loop, so hypothesis can drive it."""
    loop = asyncio.new_event_loop()
    app = make_app(make_settings(), job_kinds=JobKinds(), monitoring=False)
    client = TestClient(TestServer(app, host="127.0.0.1"), loop=loop)
    loop.run_until_complete(client.start_server())
    try:
        yield Service(loop, client)
    finally:
        loop.run_until_complete(client.close())
        loop.close()


async def raw_exchange(port: int, request: bytes, *, hang_up: bool = False) -> int | None:
    """Send ``request`` as is and return the status of the answer.

    With ``hang_up`` the connection is dropped once the request is written, as a client
    that promised more body than it sent does; there is no answer then (None).
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        if hang_up:
            await asyncio.sleep(0.01)
            return None
        line = await asyncio.wait_for(reader.readline(), 30)
    except (ConnectionError, TimeoutError):
        return None
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    parts = line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    return int(parts[1])


def signature(body: bytes, secret: str = WEBHOOK_SECRET) -> bytes:
    return b"sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()


def http_request(
    headers: list[tuple[bytes, bytes]], body: bytes, declared_length: int | None
) -> bytes:
    lines = [b"POST /webhook HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    if declared_length is not None:
        lines.append(b"Content-Length: %d" % declared_length)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def rss() -> int:
    gc.collect()
    return psutil.Process().memory_info().rss


# ----- strategies -----------------------------------------------------------------------

# Header values as HTTP allows them on the wire: visible ASCII, spaces and obs-text bytes.
header_text = st.binary(max_size=80).map(
    lambda raw: bytes(b for b in raw if b >= 0x20 and b != 0x7F).strip()
)
event_names = st.one_of(
    st.sampled_from(EVENT_NAMES).map(str.encode),
    header_text,
    st.just(b"ping"),
)
delivery_ids = st.one_of(st.uuids().map(lambda u: str(u).encode()), header_text)
content_types = (
    st.sampled_from(
        [
            b"application/json",
            b"application/json; charset=utf-8",
            b"application/json; charset=latin-1",
            b"application/json; charset=utf-16",
            b"APPLICATION/JSON",
            b"application/x-www-form-urlencoded",
            b"text/plain",
            b"multipart/form-data; boundary=x",
            b"",
        ]
    )
    | header_text
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=50)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(
        st.sampled_from(
            ["action", "repository", "installation", "sender", "comment", "issue", "ref", "x"]
        )
        | st.text(max_size=10),
        children,
        max_size=6,
    ),
    max_leaves=30,
)


@st.composite
def nested(draw: st.DrawFn) -> bytes:
    """JSON nested deeper than any real payload, within what a JSON parser takes."""
    depth = draw(st.integers(min_value=50, max_value=900))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    return opener * depth + b"1" + closer * depth


def _encodings(value: Any) -> st.SearchStrategy[bytes]:
    text = json.dumps(value, ensure_ascii=False)
    return st.sampled_from(
        [
            text.encode(),
            b"\xef\xbb\xbf" + text.encode(),
            text.encode("utf-16"),
            text.encode("utf-32"),
            text.encode("latin-1", "replace"),
        ]
    )


bodies = st.one_of(
    st.binary(max_size=2000),
    json_values.map(lambda v: json.dumps(v).encode()),
    json_values.flatmap(_encodings),
    st.integers(min_value=1, max_value=4).map(lambda mib: b'{"x": "' + b"a" * mib * 2**20 + b'"}'),
    nested(),
    st.binary(max_size=200).map(lambda raw: b'{"action": "' + raw + b'"}'),  # invalid UTF-8
    st.sampled_from([b"", b"null", b"[]", b"{}", b'"x"', b"1e999999", b"\x00", b"{" * 20]),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, bool]:
    """A raw HTTP request, and whether the client hangs up before the server answers."""
    body = draw(bodies)
    headers: list[tuple[bytes, bytes]] = []
    # Mostly well-formed headers, so the fuzz reaches the checks behind the first ones.
    match draw(st.integers(0, 9)):
        case 0:
            pass
        case 1 | 2:
            headers.append((b"Content-Type", draw(content_types)))
        case _:
            headers.append((b"Content-Type", b"application/json"))
    if draw(st.integers(0, 9)):
        headers.append((b"X-GitHub-Event", draw(event_names)))
    if draw(st.integers(0, 9)):
        headers.append((b"X-GitHub-Delivery", draw(delivery_ids)))
    match draw(st.integers(0, 7)):
        case 0:
            pass
        case 1 | 2 | 3:
            headers.append((b"X-Hub-Signature-256", signature(body)))
        case 4:
            headers.append((b"X-Hub-Signature-256", signature(body, "not-the-secret")))
        case 5:
            headers.append((b"X-Hub-Signature-256", draw(header_text)))
        case 6:
            headers.append((b"X-Hub-Signature-256", b"sha256=" + b"0" * 64))
        case _:
            headers.append(
                (
                    b"X-Hub-Signature",
                    b"sha1=" + hashlib.sha1(body, usedforsecurity=False).hexdigest().encode(),
                )
            )
    headers = draw(st.permutations(headers))
    match draw(st.integers(0, 9)):
        case 0:
            # Claims more than the limit and sends nothing more: refused before reading.
            return http_request(headers, b"", MAX_BODY + draw(st.integers(1, 2**40))), False
        case 1:
            # Claims less than it sends: the rest is read as garbage after the request.
            return http_request(headers, body, draw(st.integers(0, len(body)))), False
        case 2:
            # Claims more than it sends, then hangs up.
            return http_request(headers, body, len(body) + draw(st.integers(1, 1000))), True
        case _:
            return http_request(headers, body, len(body)), False


# ----- tests ----------------------------------------------------------------------------


def test_random_requests_never_get_a_server_error(make_settings) -> None:
    with running_service(make_settings) as service:
        service.raw(http_request([(b"Content-Type", b"application/json")], b"{}", 2))
        before = rss()
        answers: list[int | None] = []

        @FUZZ_SETTINGS
        @given(request=requests())
        def fuzz(request: tuple[bytes, bool]) -> None:
            raw, hang_up = request
            status = service.raw(raw, hang_up=hang_up)
            answers.append(status)
            assert hang_up or status is not None, raw[:300]
            assert status is None or status < 500, raw[:300]

        fuzz()
        growth = rss() - before
        assert service.healthy()
        # What the fuzz sent is counted, and the count still renders.
        status, metrics = service.metrics()
        assert status == 200 and 'event="unverified"' in metrics
    assert growth < RSS_GROWTH_BOUND, f"RSS grew by {growth / 2**20:.0f} MiB"
    # The fuzz reached the checks it is meant to exercise, not only one of them: each way
    # of refusing a request, and past them all, requests accepted (200 ignored, 202 queued).
    assert {400, 401, 413, 415} <= {a for a in answers if a is not None}, Counter(answers)
    assert {200, 202} & set(answers), Counter(answers)


def test_validly_signed_random_objects_under_every_event_never_get_a_server_error(
    make_settings,
) -> None:
    with running_service(make_settings) as service:

        @FUZZ_SETTINGS
        @given(
            event=st.sampled_from(EVENT_NAMES),
            payload=st.dictionaries(st.text(max_size=12), json_values, max_size=8),
            shaped=st.fixed_dictionaries(
                {},
                optional={
                    "action": json_values,
                    "repository": json_values,
                    "installation": json_values,
                    "sender": json_values,
                    "comment": json_values,
                    "issue": json_values,
                    "check_run": json_values,
                    "requested_action": json_values,
                },
            ),
        )
        def fuzz(event: str, payload: dict[str, Any], shaped: dict[str, Any]) -> None:
            body = json.dumps({**payload, **shaped}).encode()
            headers = [
                (b"Content-Type", b"application/json"),
                (b"X-GitHub-Event", event.encode()),
                (b"X-GitHub-Delivery", str(uuid.uuid4()).encode()),
                (b"X-Hub-Signature-256", signature(body)),
            ]
            status = service.raw(http_request(headers, body, len(body)))
            assert status in (200, 202), (event, body[:300])

        fuzz()
        assert service.healthy()


@pytest.mark.parametrize("event", EVENT_NAMES)
def test_every_published_example_is_answered_without_a_server_error(
    make_settings, webhook_examples, event: str
) -> None:
    with running_service(make_settings) as service:
        for name, payload in webhook_examples:
            if name != event:
                continue
            body = json.dumps(payload).encode()
            headers = [
                (b"Content-Type", b"application/json"),
                (b"X-GitHub-Event", name.encode()),
                (b"X-GitHub-Delivery", str(uuid.uuid4()).encode()),
                (b"X-Hub-Signature-256", signature(body)),
            ]
            assert service.raw(http_request(headers, body, len(body))) in (200, 202)
        assert service.healthy()
        # Answered 200 is not enough: a handler that raised is counted, and must not be.
        status, metrics = service.metrics()
        assert status == 200
        assert "\nwebhook_handler_errors_total 0.0\n" in metrics, event


def test_deeper_nesting_than_the_parser_takes_is_a_bad_request(make_settings) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    headers = [
        (b"Content-Type", b"application/json"),
        (b"X-GitHub-Event", b"push"),
        (b"X-GitHub-Delivery", b"deep-1"),
        (b"X-Hub-Signature-256", signature(body)),
    ]
    with running_service(make_settings) as service:
        assert service.raw(http_request(headers, body, len(body))) == 400
        assert service.healthy()


def signed_request(event: bytes, body: bytes) -> bytes:
    headers = [
        (b"Content-Type", b"application/json"),
        (b"X-GitHub-Event", event),
        (b"X-GitHub-Delivery", str(uuid.uuid4()).encode()),
        (b"X-Hub-Signature-256", signature(body)),
    ]
    return http_request(headers, body, len(body))


@pytest.mark.parametrize("event", ["push", "issue_comment", "installation", "check_run"])
def test_lone_surrogates_in_a_signed_payload_are_not_a_server_error(
    make_settings, event: str
) -> None:
    # JSON may spell a lone surrogate (\udcdd), which UTF-8 (and so SQLite) cannot hold.
    body = (
        b'{"action": "created\\udcdd", "repository": {"full_name": "o\\udcdd/r"},'
        b' "installation": {"id": 1001}, "sender": {"login": "a\\udcdd", "type": "User"},'
        b' "comment": {"body": "/status\\udcdd", "user": {"login": "a\\udcdd"}}}'
    )
    with running_service(make_settings) as service:
        assert service.raw(signed_request(event.encode(), body)) in (200, 202)
        status, _ = service.metrics()
        assert status == 200
        assert service.healthy()


@pytest.mark.parametrize("header", [b"push\x80", b"p\xffsh", b"push ping"])
def test_an_event_header_that_is_not_visible_ascii_is_a_bad_request(
    make_settings, header: bytes
) -> None:
    with running_service(make_settings) as service:
        assert service.raw(signed_request(header, b"{}")) == 400
        status, metrics = service.metrics()
        assert status == 200
        assert "\\x" not in metrics and "\ufffd" not in metrics


def test_an_action_that_is_not_text_is_ignored(make_settings) -> None:
    with running_service(make_settings) as service:
        for action in (b"[]", b"{}", b"1", b"null"):
            body = b'{"action": ' + action + b"}"
            assert service.raw(signed_request(b"check_run", body)) == 200, action


# ----- replays ---------------------------------------------------------------------------


async def test_a_replayed_delivery_is_a_duplicate_and_makes_no_second_job(
    aiohttp_client, make_settings, example
) -> None:
    client = await aiohttp_client(make_app(make_settings(), job_kinds=JobKinds(), monitoring=False))
    store = client.app[SERVICES].store
    payload = example("issue_comment", "created")
    payload["comment"]["body"] = "/status"
    payload["sender"]["type"] = "User"
    payload["comment"]["performed_via_github_app"] = None
    payload["installation"] = {"id": 1001, "node_id": "x"}
    first = await deliver(client, "issue_comment", payload, delivery="replayed-1")
    assert first.status == 202
    jobs = await store.jobs()
    assert len(jobs) == 1

    again = await deliver(client, "issue_comment", payload, delivery="replayed-1")
    assert again.status == 200
    assert (await again.json())["message"] == "duplicate delivery"
    # A replay with another body under the same id is the same delivery too.
    payload["comment"]["body"] = "/rebuild"
    altered = await deliver(client, "issue_comment", payload, delivery="replayed-1")
    assert altered.status == 200
    assert (await altered.json())["message"] == "duplicate delivery"
    assert [job.id for job in await store.jobs()] == [jobs[0].id]


async def test_a_replayed_push_makes_no_second_job(aiohttp_client, make_settings, example) -> None:
    client = await aiohttp_client(make_app(make_settings(), job_kinds=JobKinds(), monitoring=False))
    store = client.app[SERVICES].store
    payload = example("push")
    payload.update(ref="refs/heads/main", deleted=False, installation={"id": 1001, "node_id": "x"})
    payload["repository"]["default_branch"] = "main"
    first = await deliver(client, "push", payload, delivery="push-replay")
    assert first.status == 202
    jobs = await store.jobs()
    assert len(jobs) == 1
    for _ in range(3):
        again = await deliver(client, "push", payload, delivery="push-replay")
        assert again.status == 200
        assert (await again.json())["message"] == "duplicate delivery"
    assert [job.id for job in await store.jobs()] == [jobs[0].id]
