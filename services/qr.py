"""QR codes (segno) for vouchers and event tickets: inline SVG for pages, a data URI for the PDF.

A voucher's QR carries the partner validation page's URL, so staff scan it with any phone
camera and land on the voucher; a ticket's carries its check-in URL. The SVG has no `style` attribute (our CSP forbids inline styles):
colours are presentation attributes, size comes from the page's CSS.
"""
from __future__ import annotations

from functools import lru_cache
from urllib.parse import quote

import segno
from flask import current_app, url_for
from flask_babel import gettext as _
from markupsafe import Markup, escape

# Medium error correction: survives a scratched printout or a cracked phone screen while
# keeping the symbol small enough to scan from a phone held at the counter.
ERROR_LEVEL = "m"
BORDER = 4  # the quiet zone the QR standard asks for, in modules


def validation_url(voucher) -> str:
    """The absolute URL of the partner validation page for VOUCHER (what its QR encodes)."""
    code = voucher.code
    if "partner.voucher" in current_app.view_functions:
        url = url_for("partner.voucher", code=code, _external=True)
    else:  # the partner portal's validation page is not registered: build its stable URL by hand
        url = url_for("main.home", _external=True).rstrip("/") + "/partner/v/" + code
    # url_for leaves a check symbol * $ = raw (legal in a path), but a scanner or chat app that
    # turns text into links may stop before it: percent-encode the code in what the QR carries.
    if url.endswith("/" + code):
        url = url[: -len(code)] + quote(code, safe="")
    return url


def ticket_url(reg) -> str:
    """The absolute URL the ticket of registration REG carries (the check-in page resolves it)."""
    if "events.ticket" in current_app.view_functions:
        return url_for("events.ticket", token=reg.ticket_token, _external=True)
    return url_for("main.home", _external=True).rstrip("/") + "/events/t/" + reg.ticket_token


def ticket_qr(reg) -> Markup:
    """The ticket's QR as inline SVG, for the event page, the member's tickets and check-in."""
    return qr_svg(ticket_url(reg), _("Ticket %(code)s", code=reg.display_code), css_class="qr event-qr-code")


def make_qr(data: str) -> segno.QRCode:
    return segno.make_qr(data, error=ERROR_LEVEL, boost_error=False)


@lru_cache(maxsize=1024)  # a ticket or voucher page is opened again and again: draw each code once
def qr_svg(data: str, label: str = "", css_class: str = "qr") -> Markup:
    """DATA as an inline `<svg>` element, scalable (no width/height), without inline styles."""
    svg = make_qr(data).svg_inline(
        scale=1, border=BORDER, dark="#000", light="#fff", omitsize=True, svgclass=css_class, lineclass=None,
        title=label or None,
    )
    # segno writes no accessibility attributes: name the image for screen readers.
    if label:
        svg = svg.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1)
    assert "style=" not in svg
    return Markup(svg)


def qr_data_uri(data: str, kind: str = "svg", scale: int = 10) -> str:
    """DATA as a `data:` URI for WeasyPrint: SVG (vector, crisp at any print size) or PNG."""
    qr = make_qr(data)
    if kind == "png":
        return qr.png_data_uri(scale=scale, border=BORDER)
    return qr.svg_data_uri(scale=scale, border=BORDER, dark="#000", light="#fff")
