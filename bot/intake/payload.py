"""A delivery's signature and body, each checked or decoded once, straight from the bytes.

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
_DIGITS_AS_ZEROS = bytes.maketrans(b"0123456789", b"0" * 10)
_LONG_DIGITS = b"0" * 19
_BEFORE_NUMBER = b"[:,"
_SPACE_OR_SIGN = b" \t\r\n-"


def _has_huge_integer(body: bytes) -> bool:
    """Whether ``body`` may have an integer beyond 64 bits: a number of 19 digits or more.

    orjson reads integers beyond 64 bits (over 2**64 - 1, under -2**63) as floats where
    json keeps them exact; 19 digits catches both ends. Digits inside strings (an
    all-zero commit SHA) do not count: a string's digits follow a quote, not ``[``, ``:``
    or ``,``. Byte translation and ``find`` keep this to microseconds; a regular
    expression scanning the body costs ten times more.
    """
    runs = body.translate(_DIGITS_AS_ZEROS)
    at = runs.find(_LONG_DIGITS)
    while at >= 0:
        before = at - 1
        while before >= 0 and body[before] in _SPACE_OR_SIGN:
            before -= 1
        if before < 0 or body[before] in _BEFORE_NUMBER:
            return True
        at = runs.find(_LONG_DIGITS, at + len(_LONG_DIGITS))
    return False


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
        if not _has_huge_integer(body):
            try:
                return orjson.loads(body)
            except orjson.JSONDecodeError:
                pass  # decided below by the reference decoder: NaN, surrogates, errors
        charset = "utf-8"
    return json.loads(body.decode(charset))
