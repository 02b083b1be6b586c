"""Answers from GitHub, DigitalOcean and a hub are read up to a cap, with a clear error
past it: a loopback HTTP server sends more than the cap, declared or chunked."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import web

from bot.github import client as github_client
from bot.monitor import PROBE_LIMIT, probe_hub
from deploy.providers import digitalocean_api
from deploy.providers.digitalocean_api import DigitalOceanAPI, ResponseTooLarge


def big_answers(size: int) -> web.Application:
    """``/declared``: a JSON body of ``size`` bytes with its length; ``/chunked``: the same
    streamed without one; ``/small``: a small JSON object."""

    body = b'{"version": "' + b"x" * size + b'"}'

    async def declared(_request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def chunked(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(body), 65536):
            await response.write(body[start : start + 65536])
        await response.write_eof()
        return response

    async def small(_request: web.Request) -> web.Response:
        return web.json_response({"version": "5.1.0", "droplets": [], "links": {}, "meta": {}})

    app = web.Application()
    for path, handler in (("declared", declared), ("chunked", chunked), ("small", small)):
        app.router.add_get(f"/{path}", handler)
        app.router.add_get(f"/{path}/hub/api", handler)
    return app


@pytest.mark.parametrize("path", ["/declared", "/chunked"])
async def test_a_github_answer_over_the_cap_is_a_clear_error(
    aiohttp_server, monkeypatch, path: str
) -> None:
    server = await aiohttp_server(big_answers(2 * 1024 * 1024))
    monkeypatch.setattr(github_client.CappedGitHubAPI, "response_limit", 1024 * 1024)
    async with aiohttp.ClientSession() as session:
        api = github_client.CappedGitHubAPI(session, "test", base_url=str(server.make_url("")))
        assert (await api.getitem("/small"))["version"] == "5.1.0"
        with pytest.raises(github_client.ResponseTooLarge, match=f"GET http://.*{path}.*1,048,576"):
            await api.getitem(path)


@pytest.mark.parametrize("path", ["declared", "chunked"])
async def test_a_digitalocean_answer_over_the_cap_is_a_clear_error(
    aiohttp_server, monkeypatch, path: str
) -> None:
    server = await aiohttp_server(big_answers(2 * 1024 * 1024))
    monkeypatch.setattr(digitalocean_api, "RESPONSE_LIMIT", 1024 * 1024)
    api = DigitalOceanAPI("token", end_point=str(server.make_url("/")))
    assert (await asyncio.to_thread(api.request, "small"))["version"] == "5.1.0"
    with pytest.raises(ResponseTooLarge, match="over the 1,048,576"):
        await asyncio.to_thread(api.request, path)


@pytest.mark.parametrize("path", ["declared", "chunked"])
async def test_a_hub_probe_answer_over_the_cap_is_down_with_the_reason(
    aiohttp_server, path: str
) -> None:
    server = await aiohttp_server(big_answers(PROBE_LIMIT + 1))
    async with aiohttp.ClientSession() as session:
        up = await probe_hub(session, str(server.make_url("/small")), 5.0)
        assert up.up and up.version == "5.1.0"
        down = await probe_hub(session, str(server.make_url(f"/{path}")), 5.0)
    assert not down.up
    assert "hub/api's answer" in down.detail and "65,536" in down.detail
