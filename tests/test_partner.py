"""The partner portal: staff look a voucher up (typed or from its QR), mark it used once at one of
their stores, see today's redemptions and download the monthly statement for settlement."""
from __future__ import annotations

import csv
import io
import itertools
import re
from datetime import datetime, timedelta, timezone

import pytest
import requests
from sqlalchemy import func, select

from models import Notification, Reward, Voucher, db
from models.loyalty import CHECK_SYMBOLS, award, check_symbol, format_code, redeem, use_voucher, void_voucher
from models.types import shanghai_day, utcnow
from tests.factories import PASSWORD
from tests.live import LiveServer, fire_at_once

_keys = itertools.count(1)


@pytest.fixture
def shop(factories):
    """A car wash with two stores, and a staff member working there."""
    partner = factories.partner("洁亮洗车", stores=2)
    staff = factories.user(login="staff@example.com", nickname="店员小张", role="partner", partner=partner)
    return partner, staff


def make_voucher(factories, partner, member=None, stores=None, now=None, **reward_kw) -> Voucher:
    """A voucher issued the real way: points earned, a reward of PARTNER, redeemed."""
    member = member or factories.user(login=f"139{next(_keys):08d}", nickname="车主小李")
    now = now or utcnow()
    award(member, "story_featured", key=f"seed:{next(_keys)}", now=now)
    values = dict(partner_id=partner.id, kind="wash", title="精洗一次", points_price=100, stock=5, validity_days=30)
    values.update(reward_kw)
    reward = Reward(**values)
    reward.stores = list(stores or [])
    db.session.add(reward)
    db.session.commit()
    voucher = redeem(member, reward.id, f"nonce-{next(_keys):012d}", now=now)
    db.session.commit()
    return voucher


def english(client):
    client.set_cookie("lang", "en")
    return client


def text(response) -> str:
    return response.get_data(as_text=True)


# -- the portal page ---------------------------------------------------------------------------

def test_staff_see_their_business_and_stores_only(login_as, factories, shop):
    partner, staff = shop
    factories.partner("别家保养", stores=1)
    body = text(login_as(staff).get("/partner"))
    assert "洁亮洗车" in body and "1号店" in body and "2号店" in body
    assert "别家保养" not in body
    assert 'action="/partner/lookup"' in body


def test_a_typed_code_in_any_case_with_dashes_opens_the_voucher(login_as, factories, shop):
    partner, staff = shop
    voucher = make_voucher(factories, partner)
    typed = format_code(voucher.code).lower()
    response = login_as(staff).get("/partner/lookup", query_string={"code": f" {typed} "})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/partner/v/{voucher.code}")


def test_a_typo_is_caught_by_the_check_character_and_the_input_kept(login_as, factories, shop):
    partner, staff = shop
    voucher = make_voucher(factories, partner)
    first = voucher.code[0]
    typo = ("1" if first != "1" else "2") + voucher.code[1:]
    client = english(login_as(staff))
    response = client.get("/partner/lookup", query_string={"code": typo})
    assert response.status_code == 422
    body = text(response)
    assert "This code is not valid. Check it for a typo." in body
    assert f'value="{typo}"' in body
    empty = client.get("/partner/lookup", query_string={"code": ""})
    assert empty.status_code == 422 and "Type the code" in text(empty)


def test_another_partners_voucher_reveals_nothing(login_as, factories, shop):
    partner, staff = shop
    other = factories.partner("别家保养", stores=1)
    voucher = make_voucher(factories, other, title="别家的保养券")
    client = english(login_as(staff))
    response = client.get("/partner/lookup", query_string={"code": voucher.code})
    assert response.status_code == 422
    assert "No voucher of your business has this code." in text(response)
    page = client.get(f"/partner/v/{voucher.code}")
    assert page.status_code == 404
    assert "别家的保养券" not in text(page) and "车主小李" not in text(page)
    use = client.post(f"/partner/v/{voucher.code}/use", data={"store": other.stores[0].id})
    assert use.status_code == 404
    assert db.session.get(Voucher, voucher.id).state == "issued"


def test_visitors_log_in_and_plain_members_are_refused(client, login_as, factories, shop):
    partner, _staff = shop
    voucher = make_voucher(factories, partner)
    response = client.get(f"/partner/v/{voucher.code}")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    assert client.post(f"/partner/v/{voucher.code}/use", data={"store": partner.stores[0].id}).status_code == 302
    member = login_as(voucher.user)
    assert member.get(f"/partner/v/{voucher.code}").status_code == 403
    assert member.post(f"/partner/v/{voucher.code}/use", data={"store": partner.stores[0].id}).status_code == 403
    assert db.session.get(Voucher, voucher.id).state == "issued"


def test_voucher_page_shows_what_staff_need_and_never_the_phone(login_as, factories, shop):
    partner, staff = shop
    voucher = make_voucher(factories, partner, stores=[partner.stores[1]], terms="每车限用一次")
    body = text(english(login_as(staff)).get(f"/partner/v/{voucher.code}"))
    assert "精洗一次" in body and "车主小李" in body
    assert "Ready to use" in body
    assert voucher.last_day.isoformat() in body
    assert format_code(voucher.code) in body
    assert "2号店" in body and "每车限用一次" in body
    assert voucher.user.phone not in body and voucher.user.masked_phone not in body
    # Only the store the reward accepts is offered, and it is preselected.
    assert re.search(r'<option selected value="%d">' % partner.stores[1].id, body)
    assert f'value="{partner.stores[0].id}"' not in body


def test_the_qr_link_works_for_every_check_symbol(login_as, factories, shop):
    """The check character may be * ~ $ = U: the route and the lookup accept them."""
    partner, staff = shop
    voucher = make_voucher(factories, partner)
    for n in itertools.count():
        body = f"{n:012d}".replace("0", "A")[:12]
        if check_symbol(body) in "*~$=U":
            break
    voucher.code = body + check_symbol(body)
    db.session.commit()
    assert voucher.code[-1] in CHECK_SYMBOLS[32:]
    client = login_as(staff)
    from flask import url_for

    with client.application.test_request_context():
        url = url_for("partner.voucher", code=voucher.code)
    assert client.get(url).status_code == 200
    assert client.get(f"/partner/v/{voucher.code}").status_code == 200
    looked_up = client.get("/partner/lookup", query_string={"code": format_code(voucher.code).lower()})
    assert looked_up.status_code == 302 and client.get(looked_up.headers["Location"]).status_code == 200
    used = client.post(url + "/use", data={"store": partner.stores[0].id})
    assert used.status_code == 200 and db.session.get(Voucher, voucher.id).state == "used"


# -- marking used ------------------------------------------------------------------------------

def test_marking_used_confirms_store_and_time_and_tells_the_member(login_as, factories, shop):
    partner, staff = shop
    voucher = make_voucher(factories, partner)
    client = english(login_as(staff))
    response = client.post(f"/partner/v/{voucher.code}/use", data={"store": partner.stores[1].id},
                           headers={"HX-Request": "true"})
    assert response.status_code == 200
    body = text(response)
    assert "<html" not in body and 'id="voucher-status"' in body, "htmx gets the status fragment"
    db.session.expire_all()
    voucher = db.session.get(Voucher, voucher.id)
    assert voucher.state == "used" and voucher.used_store_id == partner.stores[1].id and voucher.used_by_id == staff.id
    when = voucher.used_at.astimezone(timezone(timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")
    assert f"Validated at 2号店, {when}." in body
    assert "Mark as used" not in body
    note = db.session.scalar(select(Notification).where(Notification.user_id == voucher.user_id,
                                                        Notification.kind == "voucher_used"))
    assert note.params["store"] == "2号店"


def test_marking_used_works_without_javascript(login_as, factories, shop):
    partner, staff = shop
    voucher = make_voucher(factories, partner)
    response = english(login_as(staff)).post(f"/partner/v/{voucher.code}/use", data={"store": partner.stores[0].id})
    assert response.status_code == 200
    body = text(response)
    assert "<html" in body and "Validated at 1号店" in body


def test_the_use_form_carries_its_csrf_token_and_a_stale_page_keeps_the_choice(login_as, factories, shop, csrf_on):
    partner, staff = shop
    voucher = make_voucher(factories, partner)
    client = english(login_as(staff))
    page = text(client.get(f"/partner/v/{voucher.code}"))
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    stale = client.post(f"/partner/v/{voucher.code}/use", data={"store": partner.stores[1].id, "csrf_token": "old"})
    assert stale.status_code == 400 and "This page was open for too long" in text(stale)
    assert f'<option selected value="{partner.stores[1].id}">' in text(stale)
    assert db.session.get(Voucher, voucher.id).state == "issued"
    # The lookup is a plain GET form: no token needed.
    assert client.get("/partner/lookup", query_string={"code": voucher.code}).status_code == 302
    used = client.post(f"/partner/v/{voucher.code}/use", data={"store": partner.stores[1].id, "csrf_token": token})
    assert used.status_code == 200 and "Validated at 2号店" in text(used)


def test_a_second_use_is_refused_saying_when_and_where(login_as, factories, shop):
    partner, staff = shop
    voucher = make_voucher(factories, partner)
    used_at = utcnow().replace(microsecond=0) - timedelta(hours=2)
    use_voucher(voucher.code, partner.stores[0], staff, now=used_at)
    db.session.commit()
    when = used_at.astimezone(timezone(timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")
    colleague = factories.user(role="partner", partner=partner)
    client = english(login_as(colleague))
    response = client.post(f"/partner/v/{voucher.code}/use", data={"store": partner.stores[1].id},
                           headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert f"Already used on {when} at 1号店." in text(response)
    page = text(client.get(f"/partner/v/{voucher.code}"))
    assert f"Already used on {when} at 1号店." in page and "Mark as used" not in page
    db.session.expire_all()
    assert db.session.get(Voucher, voucher.id).used_store_id == partner.stores[0].id


def test_an_expired_voucher_cannot_be_used(login_as, factories, shop):
    partner, staff = shop
    voucher = make_voucher(factories, partner, validity_days=3, now=utcnow() - timedelta(days=10))
    client = english(login_as(staff))
    page = text(client.get(f"/partner/v/{voucher.code}"))
    assert f"This voucher expired on {voucher.last_day.isoformat()} and cannot be used." in page
    assert "Mark as used" not in page
    response = client.post(f"/partner/v/{voucher.code}/use", data={"store": partner.stores[0].id})
    assert response.status_code == 422
    assert "expired on" in text(response)
    assert db.session.get(Voucher, voucher.id).state == "issued"  # the nightly job writes `expired`


def test_a_void_voucher_cannot_be_used(login_as, factories, shop):
    partner, staff = shop
    voucher = make_voucher(factories, partner)
    void_voucher(voucher, factories.user(role="admin"), "会员申请退券")
    db.session.commit()
    client = english(login_as(staff))
    assert "This voucher was cancelled and cannot be used." in text(client.get(f"/partner/v/{voucher.code}"))
    response = client.post(f"/partner/v/{voucher.code}/use", data={"store": partner.stores[0].id})
    assert response.status_code == 422 and "cancelled" in text(response)
    assert db.session.get(Voucher, voucher.id).state == "void"


def test_a_store_the_reward_does_not_accept_is_refused(login_as, factories, shop):
    partner, staff = shop
    voucher = make_voucher(factories, partner, stores=[partner.stores[1]])
    other_store = factories.partner("别家保养", stores=1).stores[0]
    client = login_as(staff)
    for store_id in (partner.stores[0].id, other_store.id, "abc"):
        response = client.post(f"/partner/v/{voucher.code}/use", data={"store": store_id})
        assert response.status_code == 422
        assert 'aria-invalid="true"' in text(response)
    assert db.session.get(Voucher, voucher.id).state == "issued"


def test_with_several_stores_staff_choose_and_their_last_store_is_remembered(login_as, factories, shop):
    partner, staff = shop
    first, second = make_voucher(factories, partner), make_voucher(factories, partner)
    client = english(login_as(staff))
    body = text(client.get(f"/partner/v/{first.code}"))
    assert '<option selected value="0">Choose the store</option>' in body
    refused = client.post(f"/partner/v/{first.code}/use", data={"store": 0})
    assert refused.status_code == 422 and "Choose the store where the member is." in text(refused)
    assert client.post(f"/partner/v/{first.code}/use", data={"store": partner.stores[1].id}).status_code == 200
    body = text(client.get(f"/partner/v/{second.code}"))
    assert f'<option selected value="{partner.stores[1].id}">' in body


def test_administrators_can_open_and_use_any_voucher(login_as, factories, shop):
    partner, _staff = shop
    voucher = make_voucher(factories, partner)
    admin = login_as(factories.user(role="admin"))
    assert admin.get(f"/partner/v/{voucher.code}").status_code == 200
    assert admin.post(f"/partner/v/{voucher.code}/use", data={"store": partner.stores[0].id}).status_code == 200
    assert db.session.get(Voucher, voucher.id).state == "used"


def test_a_lower_case_link_is_sent_to_the_canonical_code(login_as, factories, shop):
    partner, staff = shop
    voucher = make_voucher(factories, partner)
    response = login_as(staff).get(f"/partner/v/{format_code(voucher.code).lower()}")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/partner/v/{voucher.code}")


# -- today's redemptions -----------------------------------------------------------------------

def test_todays_redemptions_at_their_stores(login_as, factories, shop):
    partner, staff = shop
    member = factories.user(login="13912345678", nickname="车主老王")
    today = make_voucher(factories, partner, member=member, title="今日精洗")
    use_voucher(today.code, partner.stores[1], staff)
    yesterday = make_voucher(factories, partner, title="昨日精洗", now=utcnow() - timedelta(days=3))
    # The last minute of yesterday in Shanghai.
    from models.types import shanghai_midnight

    use_voucher(yesterday.code, partner.stores[0], staff, now=shanghai_midnight(shanghai_day()) - timedelta(minutes=1))
    other = factories.partner("别家保养", stores=1)
    elsewhere = make_voucher(factories, other, title="别家保养券")
    use_voucher(elsewhere.code, other.stores[0], factories.user(role="partner", partner=other))
    db.session.commit()
    body = text(login_as(staff).get("/partner"))
    assert "今日精洗" in body and format_code(today.code) in body and "车主老王" in body and "2号店" in body
    assert "昨日精洗" not in body and "别家保养券" not in body
    assert "13912345678" not in body and "139****5678" not in body


# -- the monthly statement ---------------------------------------------------------------------

def _csv_rows(response) -> list[list[str]]:
    data = response.get_data()
    assert data.startswith("\ufeff".encode()), "UTF-8 with BOM, so Excel reads Chinese"
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


def test_monthly_statement_per_store_follows_shanghai_month_boundaries(login_as, factories, shop):
    partner, staff = shop
    member = factories.user(login="13911112222", nickname="车主阿强")
    issued = datetime(2026, 3, 20, 2, 0, tzinfo=timezone.utc)
    march_last = datetime(2026, 3, 31, 15, 30, tzinfo=timezone.utc)  # 23:30 on 31 March in Shanghai
    april_first = datetime(2026, 3, 31, 16, 30, tzinfo=timezone.utc)  # 00:30 on 1 April in Shanghai
    march_first = datetime(2026, 2, 28, 16, 0, tzinfo=timezone.utc)  # 00:00 on 1 March in Shanghai
    vouchers = [make_voucher(factories, partner, member=member, now=datetime(2026, 2, 20, tzinfo=timezone.utc),
                             title="三月一日")]
    vouchers += [make_voucher(factories, partner, member=member, now=issued, title=t, points_price=p)
                 for t, p in (("月末精洗", 100), ("四月精洗", 100), ("二号店打蜡", 80))]
    use_voucher(vouchers[0].code, partner.stores[0], staff, now=march_first)
    use_voucher(vouchers[1].code, partner.stores[0], staff, now=march_last)
    use_voucher(vouchers[2].code, partner.stores[0], staff, now=april_first)
    use_voucher(vouchers[3].code, partner.stores[1], staff, now=datetime(2026, 3, 10, 4, 0, tzinfo=timezone.utc))
    other = factories.partner("别家保养", stores=1)
    theirs = make_voucher(factories, other, member=member, now=issued, title="别家保养券")
    use_voucher(theirs.code, other.stores[0], factories.user(role="partner", partner=other), now=march_last)
    db.session.commit()

    client = english(login_as(staff))
    response = client.get("/partner/statement", query_string={"month": "2026-03"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment; filename=") and disposition.endswith("2026-03.csv")
    rows = _csv_rows(response)
    assert rows[0] == ["Store", "Used at (Beijing time)", "Voucher code", "Reward", "Points"]
    assert rows[1:] == [
        ["1号店", "2026-03-01 00:00", format_code(vouchers[0].code), "三月一日", "100"],
        ["1号店", "2026-03-31 23:30", format_code(vouchers[1].code), "月末精洗", "100"],
        ["1号店", "Subtotal: 2 vouchers", "", "", "200"],
        ["2号店", "2026-03-10 12:00", format_code(vouchers[3].code), "二号店打蜡", "80"],
        ["2号店", "Subtotal: 1 voucher", "", "", "80"],
        ["洁亮洗车", "Total: 3 vouchers", "", "", "280"],
    ]
    body = response.get_data(as_text=True)
    assert "13911112222" not in body and "车主阿强" not in body and "别家保养券" not in body

    april = _csv_rows(client.get("/partner/statement", query_string={"month": "2026-04"}))
    assert [r[2] for r in april[1:-2]] == [format_code(vouchers[2].code)]
    assert april[1][1] == "2026-04-01 00:30"
    february = _csv_rows(client.get("/partner/statement", query_string={"month": "2026-02"}))
    assert february[1:] == [["洁亮洗车", "Total: 0 vouchers", "", "", "0"]]


def test_statement_page_lists_recent_months_and_refuses_a_bad_month(login_as, factories, shop):
    partner, staff = shop
    client = english(login_as(staff))
    this_month = shanghai_day().strftime("%Y-%m")
    for path in ("/partner", "/partner/statement"):
        body = text(client.get(path))
        assert f"month={this_month}&amp;partner={partner.id}" in body
    for month in ("2026-13", "March", "../etc"):
        response = client.get("/partner/statement", query_string={"month": month})
        assert response.status_code == 400 and "Choose a month" in text(response)
    other = factories.partner("别家保养", stores=1)
    refused = client.get("/partner/statement", query_string={"month": this_month, "partner": other.id})
    assert refused.status_code == 400, "another business's statement is not theirs to download"


def test_staff_of_two_businesses_choose_which_statement(login_as, factories, shop):
    partner, staff = shop
    second = factories.partner("洁亮二店", stores=1)
    from models.accounts import grant_role

    grant_role(staff, "partner", partner=second)
    db.session.commit()
    client = login_as(staff)
    this_month = shanghai_day().strftime("%Y-%m")
    assert client.get("/partner/statement", query_string={"month": this_month}).status_code == 400
    response = client.get("/partner/statement", query_string={"month": this_month, "partner": second.id})
    assert response.status_code == 200 and f"cheyou-statement-{second.id}-" in response.headers["Content-Disposition"]


# -- racing scans ------------------------------------------------------------------------------

def test_the_same_voucher_validated_at_once_from_ten_phones_is_used_once(app, factories, shop):
    """Real concurrent requests through a threaded server: one use, nine refusals."""
    partner, staff = shop
    voucher = make_voucher(factories, partner)
    code, stores = voucher.code, [s.id for s in partner.stores]
    db.session.commit()
    with LiveServer(app) as server:
        with requests.Session() as http:
            http.cookies.set("lang", "en")
            response = http.post(f"{server.url}/auth/login", data={"login": "staff@example.com", "password": PASSWORD},
                                 allow_redirects=False, timeout=30)
            assert response.status_code == 302 and "/auth/login" not in response.headers["Location"]
            cookies = http.cookies.get_dict()

        def scan(i):
            def call(http):
                http.cookies.update(cookies)
                return http.post(f"{server.url}/partner/v/{code}/use", data={"store": stores[i % 2]},
                                 headers={"HX-Request": "true"}, timeout=60)
            return call

        responses = fire_at_once([scan(i) for i in range(10)])
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [422] * 9, statuses
    winner = next(r for r in responses if r.status_code == 200)
    db.session.expire_all()
    voucher = db.session.get(Voucher, voucher.id)
    assert voucher.state == "used"
    store_name = voucher.used_store.name
    assert f"Validated at {store_name}" in winner.text
    when = voucher.used_at.astimezone(timezone(timedelta(hours=8))).strftime("%Y-%m-%d %H:%M")
    for refused in (r for r in responses if r.status_code == 422):
        assert f"Already used on {when} at {store_name}." in refused.text
    used_notes = db.session.scalar(select(func.count()).select_from(Notification).where(
        Notification.user_id == voucher.user_id, Notification.kind == "voucher_used"))
    assert used_notes == 1
