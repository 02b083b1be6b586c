"""SVG badges the service serves itself: a flat, shields-style label + message image.

Pure text out; the web layer sends it with ``Content-Type: image/svg+xml`` and the
``etag_for`` value so GitHub's image proxy (camo) can revalidate cheaply.
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal
from xml.sax.saxutils import escape

HubState = Literal["up", "down", "deploying", "unknown"]

COLOURS: dict[str, str] = {
    "brightgreen": "#4c1",
    "green": "#97ca00",
    "yellow": "#dfb317",
    "orange": "#fe7d37",
    "red": "#e05d44",
    "blue": "#007ec6",
    "lightgrey": "#9f9f9f",
    "grey": "#555",
}

STATUS_LABEL = "hub"
_STATUS_COLOUR: dict[str, str] = {
    "up": "brightgreen",
    "down": "red",
    "deploying": "blue",
    "unknown": "lightgrey",
}

_HEX_COLOUR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
# Characters XML 1.0 forbids outright; they would make the whole image unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")

# Rough advance widths in px for Verdana at 11px; a badge need only look right,
# so an estimate by character class is enough (shields measures exactly).
_NARROW = set("fijlrtI!|.,:;'`()[]{} ")
_WIDE = set("mwMW@%")
_PADDING = 10  # 5px either side of each half


def text_width(text: str) -> int:
    """Estimated rendered width of ``text`` in pixels."""
    width = 0.0
    for char in text:
        if char in _NARROW:
            width += 3.9
        elif char in _WIDE:
            width += 10.5
        elif char.isupper() or char.isdigit():
            width += 7.5
        elif ord(char) > 0x2E7F:  # CJK and other full-width scripts
            width += 11.0
        else:
            width += 6.6
    return round(width)


def _colour_value(colour: str) -> str:
    if colour in COLOURS:
        return COLOURS[colour]
    if _HEX_COLOUR.fullmatch(colour):
        return colour.lower()
    raise ValueError(
        f"badge colour {colour!r} is not allowed; use #rgb, #rrggbb or one of " + ", ".join(COLOURS)
    )


def _xml_text(text: str) -> str:
    return escape(_NOT_XML.sub("\ufffd", text), {'"': "&quot;", "'": "&apos;"})


def badge(label: str, message: str, colour: str) -> str:
    """A flat badge: ``label`` on grey, ``message`` on ``colour`` (a name or #hex)."""
    fill = _colour_value(colour)
    label_width = text_width(label) + _PADDING
    message_width = text_width(message) + _PADDING
    total = label_width + message_width
    label_xml, message_xml = _xml_text(label), _xml_text(message)
    title = _xml_text(f"{label}: {message}")
    label_x = label_width / 2
    message_x = label_width + message_width / 2
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" '
        f'role="img" aria-label="{title}">'
        f"<title>{title}</title>"
        '<linearGradient id="s" x2="0" y2="100%">'
        '<stop offset="0" stop-color="#bbb" stop-opacity=".1"/>'
        '<stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>'
        '<g clip-path="url(#r)">'
        f'<rect width="{label_width}" height="20" fill="#555"/>'
        f'<rect x="{label_width}" width="{message_width}" height="20" fill="{fill}"/>'
        f'<rect width="{total}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" '
        'font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{label_x:g}" y="15" fill="#010101" fill-opacity=".3">{label_xml}</text>'
        f'<text x="{label_x:g}" y="14">{label_xml}</text>'
        f'<text x="{message_x:g}" y="15" fill="#010101" fill-opacity=".3">{message_xml}</text>'
        f'<text x="{message_x:g}" y="14">{message_xml}</text>'
        "</g></svg>"
    )


def status_badge(state: HubState) -> str:
    """The live ``hub: up|down|deploying|unknown`` badge; any other state reads unknown."""
    if state not in _STATUS_COLOUR:
        state = "unknown"
    return badge(STATUS_LABEL, state, _STATUS_COLOUR[state])


def etag_for(svg: str) -> str:
    """A strong HTTP entity tag (quoted) that changes whenever the image does."""
    return '"' + hashlib.sha256(svg.encode("utf-8")).hexdigest()[:32] + '"'
