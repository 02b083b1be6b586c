"""Reading an HTTP answer up to a limit: whoever answers cannot make the service hold more."""

from __future__ import annotations

import aiohttp

READ_CHUNK = 64 * 1024


class BodyTooLarge(Exception):
    """An answer longer than the limit; it was not read further. The message says whose."""


async def read_capped(response: aiohttp.ClientResponse, limit: int, what: str) -> bytes:
    """The body of ``response``; ``BodyTooLarge`` once it passes ``limit`` bytes."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise BodyTooLarge(f"{what} is {declared:,} bytes, over the {limit:,} read")
    body = bytearray()
    async for chunk in response.content.iter_chunked(READ_CHUNK):
        if len(body) + len(chunk) > limit:
            raise BodyTooLarge(f"{what} is over the {limit:,} bytes read")
        body += chunk
    return bytes(body)
