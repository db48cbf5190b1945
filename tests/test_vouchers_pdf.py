"""Voucher PDF, QR and file storage: the Chinese text and font are really in the PDF, the QR
really decodes to the validation URL, the second download is read from the cache, and
WeasyPrint fetches no local file and no other host."""
from __future__ import annotations

import io
import itertools
import time
from pathlib import Path
from urllib.parse import unquote

import pytest
from pypdf import PdfReader
from sqlalchemy import update

from models import Reward, Store, Voucher, db
from models.loyalty import award, check_symbol, new_code, redeem
from models.nonces import new_nonce
from services.pdf import DataOnlyFetcher, render_pdf, safe_name, voucher_pdf
from services.qr import qr_data_uri, qr_svg, validation_url
from services.storage import LocalStorage, StorageKeyError, get_storage

_seq = itertools.count(1)
A6_POINTS = (297.64, 419.53)  # 105 × 148 mm


def issue_voucher(factories, member=None, partner=None, check=None, **reward_values) -> Voucher:
    """A real voucher: a partner with stores, a reward, points earned and redeemed.
    CHECK forces the code's check symbol (one of * ~ $ = U shows the URL quoting at work)."""
    partner = partner or factories.partner(f"闪亮洗车{next(_seq)}", stores=2)
    values = dict(partner_id=partner.id, kind="wash", title="精致洗车一次", title_en="Premium car wash",
                  terms="限五座轿车，SUV 加收 20 元。", points_price=100, stock=10, per_member_limit=5,
                  validity_days=30)
    values.update(reward_values)
    reward = Reward(**values)
    db.session.add(reward)
    member = member or factories.user(nickname="老王爱车")
    for _ in range(values["points_price"] // 100 + 1):
        award(member, "story_featured", key=f"seed:{next(_seq)}")
    db.session.commit()
    voucher = redeem(member, reward.id, new_nonce())
    db.session.commit()
    if check:
        code = new_code()
        while code[-1] != check:
            body = new_code()[:12]
            code = body + check_symbol(body)
        db.session.execute(update(Voucher).where(Voucher.id == voucher.id).values(code=code))
        db.session.commit()
        db.session.refresh(voucher)
    return voucher


# --- reading a PDF back -------------------------------------------------------------------


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def embedded_fonts(data: bytes) -> dict[str, set[str]]:
    """{font name: the embedded font-file streams it carries} over every page."""
    fonts: dict[str, set[str]] = {}
    for page in PdfReader(io.BytesIO(data)).pages:
        for font in (page["/Resources"].get("/Font") or {}).values():
            font = font.get_object()
            descendants = [d.get_object() for d in font.get("/DescendantFonts", [])] or [font]
            for part in descendants:
                descriptor = part.get("/FontDescriptor")
                files = set()
                if descriptor is not None:
                    descriptor = descriptor.get_object()
                    files = {k for k in ("/FontFile", "/FontFile2", "/FontFile3") if k in descriptor}
                fonts.setdefault(str(part.get("/BaseFont", font.get("/BaseFont"))), set()).update(files)
    return fonts


def decode_qr(data: bytes, scale: float = 4) -> list[str]:
    """Rasterise page 1 and read every barcode on it."""
    import pypdfium2
    import zxingcpp

    document = pypdfium2.PdfDocument(data)
    try:
        image = document[0].render(scale=scale).to_pil()
    finally:
        document.close()
    return [result.text for result in zxingcpp.read_barcodes(image)]


# --- the PDF --------------------------------------------------------------------------------


def test_voucher_pdf_has_the_chinese_text_an_embedded_cjk_font_a6_and_a_qr_that_decodes(app, factories, login_as):
    voucher = issue_voucher(factories)
    partner, member = voucher.reward.partner, voucher.user
    response = login_as(member).get(f"/me/vouchers/{voucher.code}.pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    data = response.data
    assert data.startswith(b"%PDF-")

    text = pdf_text(data)
    for expected in (partner.name, "精致洗车一次", "老王爱车", voucher.display_code, "SUV 加收 20 元",
                     "1号店", "上海市某路 1 号", voucher.last_day.strftime("%Y")):
        assert expected in text, expected

    fonts = embedded_fonts(data)
    cjk = {name: files for name, files in fonts.items() if "WenQuanYi" in name or "Noto" in name}
    assert cjk, f"no CJK font in {sorted(fonts)}"
    assert all(files & {"/FontFile2", "/FontFile3"} for files in cjk.values()), cjk  # embedded, not just named

    page = PdfReader(io.BytesIO(data)).pages[0]
    width, height = float(page.mediabox.width), float(page.mediabox.height)
    assert abs(width - A6_POINTS[0]) < 1 and abs(height - A6_POINTS[1]) < 1

    with app.test_request_context("/"):  # the test client's host: http://localhost
        expected_url = validation_url(voucher)
    assert decode_qr(data) == [expected_url]
    assert "/partner/v/" in expected_url


def test_pdf_is_rendered_once_then_served_from_the_storage(app, factories, monkeypatch, capsys):
    voucher = issue_voucher(factories)
    import weasyprint

    real_html = weasyprint.HTML
    calls = []

    def counting_html(*args, **kwargs):
        calls.append(1)
        return real_html(*args, **kwargs)

    monkeypatch.setattr(weasyprint, "HTML", counting_html)
    with app.test_request_context("/"):
        started = time.perf_counter()
        first = voucher_pdf(voucher)
        first_ms = (time.perf_counter() - started) * 1000
        assert len(calls) == 1

        def refuse(*_args, **_kwargs):
            raise AssertionError("WeasyPrint must not run for a cached voucher")

        monkeypatch.setattr(weasyprint, "HTML", refuse)
        started = time.perf_counter()
        second = voucher_pdf(voucher)
        cached_ms = (time.perf_counter() - started) * 1000
    assert second == first
    keys = get_storage(app).keys(f"vouchers/{safe_name(voucher.code)}/")
    assert len(keys) == 1 and keys[0].endswith(".pdf")
    with capsys.disabled():
        print(f"\n[bench] voucher PDF: first render {first_ms:.0f} ms, cached {cached_ms:.1f} ms, {len(first)} bytes")


def test_a_changed_store_gives_a_fresh_pdf_and_the_stale_one_is_dropped(app, factories):
    voucher = issue_voucher(factories)
    with app.test_request_context("/"):
        before = voucher_pdf(voucher)
        store = voucher.reward.partner.stores[0]
        store.address = "上海市新地址 88 号"
        db.session.commit()
        after = voucher_pdf(voucher)
    assert "上海市新地址 88 号" in pdf_text(after) and "上海市新地址 88 号" not in pdf_text(before)
    assert len(get_storage(app).keys(f"vouchers/{safe_name(voucher.code)}/")) == 1


def test_pdf_follows_the_request_language(app, factories, login_as):
    voucher = issue_voucher(factories)
    client = login_as(voucher.user)
    chinese = pdf_text(client.get(f"/me/vouchers/{voucher.code}.pdf").data)
    client.set_cookie("lang", "en")
    english = pdf_text(client.get(f"/me/vouchers/{voucher.code}.pdf").data)
    assert "精致洗车一次" in chinese and "Premium car wash" not in chinese
    assert "Premium car wash" in english and "An expired voucher is not refunded." in english
    assert len(get_storage(app).keys(f"vouchers/{safe_name(voucher.code)}/")) == 2  # one per language


def test_a_code_with_a_symbol_check_character_still_decodes(app, factories):
    voucher = issue_voucher(factories, check="$")
    with app.test_request_context("/"):
        data = voucher_pdf(voucher)
        expected = validation_url(voucher)
    assert voucher.code.endswith("$") and "/" not in safe_name(voucher.code) and "$" not in safe_name(voucher.code)
    assert decode_qr(data) == [expected]


# --- the fetcher: nothing local, no other host ---------------------------------------------


@pytest.mark.parametrize("url", ["file:///etc/passwd", "FILE:///etc/hostname", "http://example.com/x.png",
                                 "https://example.com/x.css", "ftp://example.com/x", "/etc/passwd"])
def test_fetcher_refuses_local_files_and_other_hosts(url):
    fetcher = DataOnlyFetcher()
    with pytest.raises(ValueError):
        fetcher.fetch(url)
    assert fetcher.refused == [url]


def test_fetcher_serves_data_uris():
    response = DataOnlyFetcher().fetch("data:text/plain;base64,aGVsbG8=")
    assert response.read() == b"hello"


def test_weasyprint_loads_nothing_but_data_uris(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    png = qr_data_uri("hello", kind="png", scale=2)
    html = f"""<!doctype html><html><head>
      <link rel="stylesheet" href="http://example.com/evil.css">
      <link rel="stylesheet" href="{secret.as_uri()}">
      <style>@import url("file:///etc/passwd"); body {{ background: url(http://example.com/bg.png); }}</style>
      </head><body><p>visible</p>
      <img src="file:///etc/passwd"><img src="http://example.com/x.png"><img src="{png}">
      <object data="{secret.as_uri()}"></object><iframe src="{secret.as_uri()}"></iframe>
      </body></html>"""
    fetcher = DataOnlyFetcher()
    data = render_pdf(html, fetcher)
    text = pdf_text(data)
    assert "visible" in text and "TOP-SECRET-CONTENT" not in text and "root:" not in text
    assert {"http://example.com/evil.css", secret.as_uri(), "file:///etc/passwd", "http://example.com/x.png",
            "http://example.com/bg.png"} <= set(fetcher.refused)
    assert not any(url.startswith("data:") for url in fetcher.refused)


def test_partner_written_markup_in_the_terms_is_text_not_html(app, factories, monkeypatch):
    fetched = []
    real_fetch = DataOnlyFetcher.fetch

    def spy(self, url, headers=None):
        fetched.append(url)
        return real_fetch(self, url, headers)

    monkeypatch.setattr(DataOnlyFetcher, "fetch", spy)
    voucher = issue_voucher(factories, terms='<img src="file:///etc/passwd"> 仅限工作日')
    with app.test_request_context("/"):
        text = pdf_text(voucher_pdf(voucher))
    assert '<img src="file:///etc/passwd">' in text and "root:" not in text
    assert fetched and all(url.startswith("data:") for url in fetched)  # only the QR


# --- QR and storage -----------------------------------------------------------------------


def test_inline_qr_svg_has_no_style_and_is_labelled():
    svg = str(qr_svg("https://cheyou.example/partner/v/X", label="ABCD-EFGH"))
    assert svg.startswith("<svg ") and "style" not in svg and "<script" not in svg
    assert 'role="img"' in svg and 'aria-label="ABCD-EFGH"' in svg and 'class="qr"' in svg


def test_validation_url_quotes_the_check_symbol_without_the_partner_page(app, factories, monkeypatch):
    voucher = issue_voucher(factories, check="$")
    monkeypatch.delitem(app.view_functions, "partner.voucher", raising=False)
    with app.test_request_context("/", base_url="https://cheyou.example"):
        assert validation_url(voucher) == f"https://cheyou.example/partner/v/{voucher.code[:12]}%24"


def test_validation_url_uses_the_partner_page_when_it_exists(app, factories):
    if "partner.voucher" not in app.view_functions:
        pytest.skip("the partner validation page is not registered")
    from flask import url_for

    voucher = issue_voucher(factories, check="*")
    with app.test_request_context("/", base_url="https://cheyou.example"):
        url = validation_url(voucher)
        assert unquote(url) == url_for("partner.voucher", code=voucher.code, _external=True)
        assert url == f"https://cheyou.example/partner/v/{voucher.code[:12]}%2A"
    # The server decodes the path before routing: the URL leads back to the same code.
    adapter = app.url_map.bind("cheyou.example", url_scheme="https")
    endpoint, args = adapter.match(unquote(url.removeprefix("https://cheyou.example")))
    assert endpoint == "partner.voucher" and args["code"] == voucher.code


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/etc/passwd", "a//b", "a\\b", "", ".", "a/./b", "a/b\x00",
                                 "vouchers/x$.pdf"])
def test_storage_refuses_keys_that_leave_the_root(tmp_path, key):
    storage = LocalStorage(tmp_path / "files")
    with pytest.raises(StorageKeyError):
        storage.write(key, b"x")
    with pytest.raises(StorageKeyError):
        storage.read(key)


def test_storage_writes_atomically_and_lists_keys(tmp_path):
    storage = LocalStorage(tmp_path / "files")
    assert not storage.exists("vouchers/A/zh-1.pdf") and storage.keys("vouchers/A/") == []
    storage.write("vouchers/A/zh-1.pdf", b"one")
    storage.write("vouchers/A/zh-1.pdf", b"two")
    storage.write("vouchers/A/en-1.pdf", b"three")
    assert storage.read("vouchers/A/zh-1.pdf") == b"two" and storage.exists("vouchers/A/en-1.pdf")
    assert storage.keys("vouchers/A/") == ["vouchers/A/en-1.pdf", "vouchers/A/zh-1.pdf"]
    assert [p.name for p in (tmp_path / "files/vouchers/A").iterdir() if p.name.startswith(".tmp")] == []
    storage.delete("vouchers/A/zh-1.pdf")
    storage.delete("vouchers/A/zh-1.pdf")  # already gone: no error
    assert storage.keys("vouchers/A/") == ["vouchers/A/en-1.pdf"]
    with pytest.raises(FileNotFoundError):
        storage.read("vouchers/A/zh-1.pdf")


def test_storage_refuses_a_symlink_out_of_the_root(tmp_path):
    root = tmp_path / "files"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(StorageKeyError):
        LocalStorage(root).write("link/x.pdf", b"x")
    assert not (tmp_path / "outside/x.pdf").exists()


def test_app_storage_lives_under_the_instance_folder(app):
    storage = get_storage(app)
    assert storage is get_storage(app)
    assert storage.root == Path(app.instance_path).resolve() / "uploads"


def test_stores_listed_on_the_reward_limit_the_pdf(app, factories):
    partner = factories.partner("全城养护", stores=3)
    voucher = issue_voucher(factories, partner=partner)
    reward = db.session.get(Reward, voucher.reward_id)
    reward.stores = [db.session.get(Store, partner.stores[1].id)]
    db.session.commit()
    with app.test_request_context("/"):
        text = pdf_text(voucher_pdf(voucher))
    assert "2号店" in text and "1号店" not in text and "3号店" not in text
