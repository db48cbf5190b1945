"""Voucher PDFs, rendered by WeasyPrint on first download and cached through the storage.

The page is A6 (a phone screen or a quarter of an A4 sheet): partner, reward, the code and
its QR, the member, where and until when it is usable, the terms. WeasyPrint embeds a subset
of the Chinese system font (WenQuanYi Micro Hei; with libharfbuzz-subset0 the subset takes
~0.1 s, without it a Chinese PDF took seconds).

The cache key holds a digest of the HTML the PDF is made from, so a changed store address,
nickname, language or template gives a fresh PDF, and an unchanged one is read back from the
storage without calling WeasyPrint. WeasyPrint may fetch nothing but `data:` URIs: no local
file, no other host, whatever a partner writes into a reward's terms.
"""
from __future__ import annotations

import hashlib
import logging
import re
import time

from flask import current_app, render_template
from flask_babel import format_date, get_locale
from PIL import ImageFile
from weasyprint.urls import URLFetcher

from services.qr import qr_data_uri, validation_url
from services.storage import get_storage

log = logging.getLogger("cheyou.pdf")
# WeasyPrint logs every rendering step at INFO: keep its warnings (a refused URL), not the steps.
logging.getLogger("weasyprint.progress").setLevel(logging.WARNING)
# WeasyPrint switches Pillow to accept truncated images for the whole process; uploads must
# keep refusing them (services/images.py checks the bytes too).
ImageFile.LOAD_TRUNCATED_IMAGES = False

TEMPLATE = "vouchers/pdf.html"


class DataOnlyFetcher(URLFetcher):
    """A WeasyPrint URL fetcher that serves `data:` URIs and refuses everything else."""

    def __init__(self):
        super().__init__(timeout=1, allowed_protocols={"data"}, allow_redirects=False)
        self.refused: list[str] = []

    def fetch(self, url, headers=None):
        if not url.strip().lower().startswith("data:"):
            self.refused.append(url)
            log.warning("voucher PDF: refused to fetch %.200s", url)
            raise ValueError(f"only data: URIs may be fetched, not {url[:200]!r}")
        return super().fetch(url, headers)


def safe_name(code: str) -> str:
    """A file name for CODE: the Crockford check symbols * ~ $ = spelled as _2a _7e _24 _3d."""
    return re.sub(r"[^0-9A-Za-z]", lambda match: f"_{ord(match[0]):02x}", code)


def voucher_html(voucher) -> str:
    """The HTML the voucher's PDF is made from, in the current request's language."""
    reward = voucher.reward
    return render_template(
        TEMPLATE,
        voucher=voucher,
        reward=reward,
        partner=reward.partner,
        stores=reward.usable_stores(),
        member=voucher.user,
        last_day=format_date(voucher.last_day, "long"),
        qr=qr_data_uri(validation_url(voucher)),
    )


def render_pdf(html: str, fetcher: URLFetcher | None = None) -> bytes:
    """HTML as PDF bytes; only `data:` URIs are fetched."""
    from weasyprint import HTML

    ImageFile.LOAD_TRUNCATED_IMAGES = False  # importing WeasyPrint turned it on again

    return HTML(string=html, url_fetcher=fetcher or DataOnlyFetcher()).write_pdf()


def _locale_tag() -> str:
    return re.sub(r"[^A-Za-z0-9]", "", str(get_locale() or "zh_CN"))


def voucher_pdf(voucher) -> bytes:
    """The voucher's PDF: read from the storage when this exact rendering exists, else rendered once."""
    html = voucher_html(voucher)
    digest = hashlib.sha256(html.encode()).hexdigest()[:16]
    folder = f"vouchers/{safe_name(voucher.code)}"
    key = f"{folder}/{_locale_tag()}-{digest}.pdf"
    storage = get_storage(current_app)
    try:
        return storage.read(key)
    except FileNotFoundError:
        pass
    started = time.perf_counter()
    data = render_pdf(html)
    storage.write(key, data)
    log.info("voucher PDF %s rendered in %.0f ms (%d bytes)", voucher.id, (time.perf_counter() - started) * 1000,
             len(data))
    # Keep one rendering per language: an older one (say, before a store moved) is never served again.
    for old in storage.keys(folder + "/"):
        if old != key and old.rsplit("/", 1)[-1].startswith(_locale_tag() + "-"):
            storage.delete(old)
    return data


def forget_voucher_pdfs(voucher) -> None:
    """Delete every cached PDF of VOUCHER (they carry the member's nickname): for account deletion."""
    storage = get_storage(current_app)
    for key in storage.keys(f"vouchers/{safe_name(voucher.code)}/"):
        storage.delete(key)
