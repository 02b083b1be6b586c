"""The hot half of webhook intake, as pure functions: the signature check and the JSON decode.

The decoder must accept and refuse exactly what the reference path (``json`` on the text,
as gidgethub's ``Event.from_http`` does) accepts and refuses, whichever decoder runs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.intake.payload import decode_json, signature_matches

# GitHub's published test vector ("Validating webhook deliveries", docs.github.com).
DOC_SECRET = b"It's a Secret to Everybody"
DOC_BODY = b"Hello, World!"
DOC_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def sign(body: bytes, secret: bytes = DOC_SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def test_githubs_published_signature_matches() -> None:
    assert signature_matches(DOC_SECRET, DOC_BODY, DOC_SIGNATURE)


@pytest.mark.parametrize(
    "header",
    [
        DOC_SIGNATURE.upper().replace("SHA256=", "sha256="),  # GitHub sends lowercase hex
        DOC_SIGNATURE[len("sha256=") :],  # no prefix
        "sha1=" + hmac.new(DOC_SECRET, DOC_BODY, hashlib.sha1).hexdigest(),
        DOC_SIGNATURE + " ",
        DOC_SIGNATURE[:-2],
        "sha256=" + "0" * 64,
        "",
        "sha256=\udcff" + DOC_SIGNATURE[8:],  # obs-text bytes arrive as lone surrogates
        "sha256=é" + DOC_SIGNATURE[8:],
    ],
)
def test_anything_but_the_exact_signature_does_not_match(header: str) -> None:
    assert not signature_matches(DOC_SECRET, DOC_BODY, header)


def test_the_signature_is_of_these_bytes_with_this_secret() -> None:
    assert not signature_matches(b"another secret", DOC_BODY, DOC_SIGNATURE)
    assert not signature_matches(DOC_SECRET, DOC_BODY + b"\n", DOC_SIGNATURE)


@given(st.binary(max_size=3000), st.binary(min_size=1, max_size=40))
def test_signature_matches_agrees_with_hmac(body: bytes, secret: bytes) -> None:
    assert signature_matches(secret, body, sign(body, secret))
    assert not signature_matches(secret + b"x", body, sign(body, secret))


def reference(body: bytes, charset: str = "utf-8") -> tuple[str, Any]:
    """What the reference path makes of ``body``: ("ok", value) or ("refused", None)."""
    try:
        return "ok", json.loads(body.decode(charset))
    except (ValueError, RecursionError):
        return "refused", None


def ours(body: bytes, charset: str | None = None) -> tuple[str, Any]:
    try:
        return "ok", decode_json(body, charset)
    except (ValueError, RecursionError):
        return "refused", None


def same(a: Any, b: Any) -> bool:
    """Equality that also holds for NaN, which the reference decoder produces."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize(
    "body",
    [
        b'{"action": "opened", "number": 1}',
        b'{"big": 1180591620717411303424}',  # beyond 64 bits: orjson reads a float
        b'{"before": "0000000000000000000000000000000000000000", "n": [1, -18446744073709551616]}',
        b'{"a":\n 18446744073709551616}',
        b"18446744073709551616",
        b'{"a": 18446744073709551615, "b": -9223372036854775808}',  # 64 bits: orjson exact
        b'{"a": -9223372036854775809}',  # one below 64 bits: orjson reads a float
        b'{"x": NaN, "y": Infinity}',  # not JSON, but json reads it
        b'{"action": "created\\udcdd"}',  # a lone surrogate, spelt in JSON
        b"\xef\xbb\xbf{}",  # UTF-8 BOM: refused, as before
        b'{"a": "\xff"}',  # invalid UTF-8
        b"",
        b"1e999999",
        b"[" * 5000 + b"]" * 5000,  # deeper than either decoder goes
        b'{"a": 1, "a": 2}',
        b'{"a": 1} x',
    ],
)
def test_decodes_exactly_what_the_reference_decodes(body: bytes) -> None:
    expected, got = reference(body), ours(body)
    assert expected[0] == got[0]
    assert same(expected[1], got[1])


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300)
@given(json_values, st.booleans())
def test_any_json_text_decodes_as_the_reference_does(value: Any, ascii_only: bool) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    expected, got = reference(body), ours(body)
    assert expected[0] == got[0]
    assert same(expected[1], got[1])


@given(st.binary(max_size=300))
def test_any_bytes_decode_as_the_reference_does(body: bytes) -> None:
    expected, got = reference(body), ours(body)
    assert expected[0] == got[0]
    assert same(expected[1], got[1])


def test_a_declared_charset_is_honoured() -> None:
    body = '{"login": "José"}'.encode("latin-1")
    assert decode_json(body, "latin-1") == {"login": "José"}
    assert decode_json('{"a": "é"}'.encode("utf-16"), "utf-16") == {"a": "é"}
    assert decode_json(b'{"a": 1}', "UTF-8") == {"a": 1}


def test_an_unknown_charset_is_a_lookup_error() -> None:
    with pytest.raises(LookupError):
        decode_json(b"{}", "no-such-charset")
