"""The member's voucher pages: the list with states, the detail with a QR that scans, the PDF
download; only the member's own vouchers, a constant number of queries, no inline code."""
from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from sqlalchemy import update

from models import Voucher, db
from models.loyalty import use_voucher, void_voucher
from models.types import utcnow
from services.qr import validation_url
from tests.html import assert_no_inline_code
from tests.test_vouchers_pdf import decode_qr, issue_voucher


def english(client):
    client.set_cookie("lang", "en")  # the zh catalog is filled later: assert on the English msgids
    return client


def make_used(factories, voucher) -> Voucher:
    partner = voucher.reward.partner
    staff = factories.user(role="partner", partner=partner, nickname="店员小李")
    use_voucher(voucher.code, partner.stores[1], staff)
    db.session.commit()
    return voucher


def make_expired(voucher) -> Voucher:
    """Past its last day; the nightly job has not written the state yet (effective_state says so)."""
    db.session.execute(update(Voucher).where(Voucher.id == voucher.id).values(expires_at=utcnow() - timedelta(days=2)))
    db.session.commit()
    return voucher


def make_void(factories, voucher) -> Voucher:
    void_voucher(voucher, factories.user(role="admin"), "合作门店停业")
    db.session.commit()
    return voucher


# --- the list -------------------------------------------------------------------------------


def test_list_shows_each_state_newest_first(login_as, factories):
    member = factories.user(nickname="老王")
    partner = factories.partner("安心养车", stores=2)
    used = make_used(factories, issue_voucher(factories, member=member, partner=partner, title="小保养", title_en=""))
    expired = make_expired(issue_voucher(factories, member=member, partner=partner, title="四轮定位", title_en=""))
    void = make_void(factories, issue_voucher(factories, member=member, partner=partner, title="空调清洗", title_en=""))
    issued = issue_voucher(factories, member=member, partner=partner, title="精致洗车", title_en="")
    db.session.execute(update(Voucher).where(Voucher.id == used.id).values(issued_at=utcnow() - timedelta(days=9)))
    db.session.commit()

    response = english(login_as(member)).get("/me/vouchers")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    cards = re.findall(r'<li class="voucher-card state-(\w+)">', body)
    assert cards == ["issued", "void", "expired", "used"]  # newest first
    for label in ("Unused", "Used", "Expired", "Cancelled"):
        assert f">{label}</span>" in body
    assert body.index("精致洗车") < body.index("小保养")
    for voucher in (used, expired, void, issued):
        assert voucher.display_code in body
        assert f'href="/me/vouchers/{voucher.code}"' in body
    assert "Used at 2号店 · <time" in body  # where and when it was used
    assert f"Use by {issued.last_day.strftime('%b')}" in body
    assert "安心养车" in body
    assert_no_inline_code(body)


def test_list_is_empty_with_a_way_to_the_rewards(login_as, factories):
    other = factories.user()
    issue_voucher(factories, member=other)
    body = english(login_as(factories.user())).get("/me/vouchers").get_data(as_text=True)
    assert "voucher-card" not in body
    assert 'href="/rewards"' in body and "Browse rewards" in body


def test_list_costs_the_same_queries_for_one_voucher_or_many(login_as, factories, count_queries):
    member = factories.user()
    partner = factories.partner("全城洗车", stores=2)
    client = login_as(member)
    issue_voucher(factories, member=member, partner=partner)
    client.get("/me/vouchers")  # warm up: the first request of a client loads things once
    with count_queries() as one:
        assert client.get("/me/vouchers").status_code == 200
    for n in range(5):
        voucher = issue_voucher(factories, member=member, partner=factories.partner(f"别家{n}", stores=2))
        if n == 0:
            make_used(factories, voucher)
        elif n == 1:
            make_void(factories, voucher)
        elif n == 2:
            make_expired(voucher)
    with count_queries() as six:
        body = client.get("/me/vouchers").get_data(as_text=True)
    assert body.count('class="voucher-card') == 6
    assert six["n"] == one["n"], (one, six)


def test_visitor_is_sent_to_log_in(client, factories):
    voucher = issue_voucher(factories)
    for path in ("/me/vouchers", f"/me/vouchers/{voucher.code}", f"/me/vouchers/{voucher.code}.pdf"):
        response = client.get(path)
        assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


# --- the detail -----------------------------------------------------------------------------


def svg_to_png_qr(svg: str) -> list[str]:
    """Draw the page's inline SVG with WeasyPrint, rasterise it and read the QR back."""
    from services.pdf import render_pdf

    svg = svg.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)
    html = ('<html><head><style>@page { size: 80mm 80mm; margin: 5mm; } img { width: 70mm; height: 70mm; }</style>'
            f'</head><body><img src="data:image/svg+xml,{quote(svg)}"></body></html>')
    return decode_qr(render_pdf(html))


def test_detail_shows_a_big_qr_that_scans_and_the_code_for_the_counter(app, login_as, factories):
    voucher = issue_voucher(factories, check="$")
    client = english(login_as(voucher.user))
    response = client.get(f"/me/vouchers/{voucher.code}")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "private, no-store"
    body = response.get_data(as_text=True)
    assert_no_inline_code(body)
    svg = re.search(r"<svg [^>]*class=\"qr\".*?</svg>", body, re.S).group(0)
    assert "style" not in svg
    assert voucher.display_code in body and "Unused" in body
    assert "1号店" in body and "2号店" in body and "上海市某路 1 号" in body
    assert "SUV 加收 20 元" in body and "An expired voucher is not refunded." in body
    assert f'href="/me/vouchers/{voucher.code}.pdf"' in body
    with app.test_request_context("/"):
        expected = validation_url(voucher)
    assert svg_to_png_qr(svg) == [expected]


def test_detail_of_a_used_voucher_says_where_and_shows_no_qr(login_as, factories):
    voucher = make_used(factories, issue_voucher(factories))
    body = english(login_as(voucher.user)).get(f"/me/vouchers/{voucher.code}").get_data(as_text=True)
    assert 'class="qr"' not in body and ".pdf" not in body
    assert "state-used" in body and "2号店" in body and voucher.display_code in body


@pytest.mark.parametrize("check", ["*", "~", "$", "=", "U"])
def test_codes_with_any_check_symbol_route_raw_or_percent_encoded(login_as, factories, check):
    voucher = issue_voucher(factories, check=check)
    client = login_as(voucher.user)
    for code in (voucher.code, quote(voucher.code, safe="")):
        assert client.get(f"/me/vouchers/{code}").status_code == 200
        response = client.get(f"/me/vouchers/{code}.pdf")
        assert response.status_code == 200 and response.mimetype == "application/pdf"


def test_another_members_voucher_or_an_unknown_code_is_not_found(login_as, factories):
    voucher = issue_voucher(factories)
    stranger = login_as(factories.user())
    assert stranger.get(f"/me/vouchers/{voucher.code}").status_code == 404
    assert stranger.get(f"/me/vouchers/{voucher.code}.pdf").status_code == 404
    owner = login_as(voucher.user)
    assert owner.get("/me/vouchers/ZZZZZZZZZZZZZ").status_code == 404
    assert owner.get("/me/vouchers/ZZZZZZZZZZZZZ.pdf").status_code == 404
    assert owner.get(f"/me/vouchers/{voucher.code.lower()}").status_code == 404  # codes are canonical


# --- the PDF download -----------------------------------------------------------------------


def test_pdf_download_is_an_attachment_kept_out_of_caches(login_as, factories):
    voucher = issue_voucher(factories, check="=")
    response = login_as(voucher.user).get(f"/me/vouchers/{voucher.code}.pdf")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/pdf"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    filename = re.search(r'filename="([^"]+)"', disposition).group(1)
    assert filename.endswith(".pdf") and re.fullmatch(r"[A-Za-z0-9_.-]+", filename), filename
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.data.startswith(b"%PDF-")
