"""A delivery's signature and body, checked and decoded once, with nothing copied.

Pure functions, the hot half of ``POST /webhook``: GitHub signs the raw body with
HMAC-SHA256 (``X-Hub-Signature-256: sha256=<64 lowercase hex>``) and sends UTF-8 JSON.
The common case takes the fast path (one-shot HMAC in OpenSSL, orjson on the bytes); any
body orjson refuses is decoded again exactly as gidgethub's ``Event.from_http`` would, so
what is accepted and what is refused does not depend on which decoder ran.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import orjson

SIGNATURE_PREFIX = b"sha256="
_UTF8 = frozenset({"utf-8", "utf8"})


def signature_matches(secret: bytes, body: bytes, header: str) -> bool:
    """Whether ``header`` (``X-Hub-Signature-256``) is GitHub's signature of ``body``.

    Compared in constant time, as bytes: a header value holding anything but ASCII
    (obs-text arrives as lone surrogates) simply does not match.
    """
    expected = SIGNATURE_PREFIX + hmac.digest(secret, body, hashlib.sha256).hex().encode()
    return hmac.compare_digest(header.encode("utf-8", "backslashreplace"), expected)


def decode_json(body: bytes, charset: str | None) -> Any:
    """The JSON value in ``body``; ``ValueError`` (or ``RecursionError``) if there is none.

    ``charset`` is the content type's parameter (``None``: UTF-8, GitHub's only encoding).
    An unknown charset is a ``LookupError``.
    """
    if charset is None or charset.lower() in _UTF8:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # decided below by the reference decoder: NaN, huge integers, surrogates
        charset = "utf-8"
    return json.loads(body.decode(charset))
