"""Fitting text into GitHub's check-run output limits without breaking it.

GitHub refuses a check run whose ``summary`` or ``text`` is over 65535 bytes, so long
logs are cut here first: by UTF-8 bytes, never through a character, with the cut
marked so a reader knows text is missing.
"""

from __future__ import annotations

from typing import Literal

CHECK_RUN_LIMIT = 65535


def cut_marker(cut_bytes: int) -> str:
    """The line that stands in for ``cut_bytes`` removed bytes."""
    return f"… {cut_bytes} bytes cut …"


def _head_bytes(data: bytes, size: int) -> bytes:
    """The longest prefix of ``data`` of at most ``size`` bytes that ends on a character."""
    end = max(0, min(size, len(data)))
    # Step back over continuation bytes (10xxxxxx) to the lead byte, then drop it
    # if its character does not fit whole.
    start = end
    while start > 0 and start < len(data) and data[start] & 0xC0 == 0x80:
        start -= 1
    return data[:start]


def _tail_bytes(data: bytes, size: int) -> bytes:
    """The longest suffix of ``data`` of at most ``size`` bytes that starts on a character."""
    start = max(0, len(data) - max(0, size))
    while start < len(data) and data[start] & 0xC0 == 0x80:
        start += 1
    return data[start:]


def fit_bytes(
    text: str, limit: int = CHECK_RUN_LIMIT, *, keep: Literal["tail", "head"] = "tail"
) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, the cut marked.

    ``keep="tail"`` keeps the end (logs: the error is last); ``keep="head"`` keeps the
    start (summaries). Text that fits comes back unchanged. When ``limit`` is too small
    even for the marker, the kept part is returned unmarked.
    """
    if limit < 0:
        raise ValueError(f"limit must be 0 or more, got {limit}")
    if keep not in ("tail", "head"):
        raise ValueError(f"keep must be 'tail' or 'head', got {keep!r}")
    data = text.encode("utf-8", errors="surrogatepass")
    if len(data) <= limit:
        return text
    # The marker's own length depends on the count it reports; settle on a size
    # that holds both. Each round only shrinks ``room``, so this ends.
    room = limit
    while True:
        kept = _tail_bytes(data, room) if keep == "tail" else _head_bytes(data, room)
        marker = cut_marker(len(data) - len(kept))
        joined = f"{marker}\n" if keep == "tail" else f"\n{marker}"
        overhead = len(joined.encode("utf-8"))
        if len(kept) + overhead <= limit:
            break
        if limit - overhead < 0:
            kept = _tail_bytes(data, limit) if keep == "tail" else _head_bytes(data, limit)
            return kept.decode("utf-8", errors="surrogatepass")
        room = min(room - 1, limit - overhead)
    body = kept.decode("utf-8", errors="surrogatepass")
    return f"{joined}{body}" if keep == "tail" else f"{body}{joined}"
