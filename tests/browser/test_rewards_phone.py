"""Issue #10 on 360 px and 412 px phones: the redeem button says why it is disabled, the bottom
sheet confirms price, balance after, validity and shop before spending, the catalogue has two
columns and sideways-scrolling chips, and the partner counter validates voucher after voucher."""
from __future__ import annotations

import itertools

import pytest
from sqlalchemy import func, select

from models import Reward, Voucher, db
from models.loyalty import balance_of, redeem, refund
from models.nonces import new_nonce
from tests.browser.test_shell import log_in

pytestmark = pytest.mark.browser

WIDTHS = [360, 412]
_keys = itertools.count(1)


def _fresh():
    """End the test's own read transaction so the server's writes are visible."""
    db.session.rollback()


@pytest.fixture(params=WIDTHS, ids=[f"{w}px" for w in WIDTHS])
def phone(request, page):
    page.set_viewport_size({"width": request.param, "height": 780})
    page.width = request.param
    return page


def member_with(factories, points: int, **kw):
    member = factories.user(**kw)
    if points:
        refund(member, points, key=f"seed:{next(_keys)}", reason="test points")
    db.session.commit()
    return member


def make_reward(partner, **kw) -> Reward:
    values = dict(partner_id=partner.id, kind="maintenance", title="小保养 8 折券", points_price=100, stock=5,
                  per_member_limit=3, validity_days=30)
    values.update(kw)
    reward = Reward(**values)
    db.session.add(reward)
    db.session.commit()
    return reward


def inside_viewport(page, locator) -> None:
    box = locator.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= page.width + 0.5, box


def test_the_disabled_button_says_why(phone, factories, console_errors):
    partner = factories.partner("安心养车", stores=1)
    member = member_with(factories, 160)
    limited = make_reward(partner, title="每人一次", points_price=10, per_member_limit=1)
    monthly = make_reward(partner, title="每月一次", points_price=10, per_member_limit=5, monthly_limit=1)
    for reward in (limited, monthly):
        redeem(member, reward.id, new_nonce())
    db.session.commit()  # 140 points left
    cases = [
        (make_reward(partner, title="金卡专享", min_level=3), "仅限 Lv.3 及以上"),
        (make_reward(partner, title="大保养", points_price=200), "还差 60 积分"),
        (limited, "已达上限"),
        (monthly, "本月"),
        (make_reward(partner, title="已兑完", stock=0), "兑完"),
    ]
    log_in(phone, member.email)
    for reward, words in cases:
        phone.goto(f"/rewards/{reward.id}")
        button = phone.locator("#redeem button")
        assert button.is_disabled(), reward.title
        reason = phone.locator("#redeem-reason")
        assert reason.is_visible() and words in reason.inner_text(), (reward.title, reason.inner_text())
        inside_viewport(phone, reason)
        assert phone.locator("#redeem [data-open-sheet]").count() == 0
        if phone.width == 360 and reward.title == "大保养":
            reason.scroll_into_view_if_needed()
            phone.screenshot(path="/tmp/cheyou-redeem-disabled-360.png")
    _fresh()
    assert balance_of(member) == 140
    assert not console_errors


def test_a_visitor_reads_log_in_to_redeem(phone, factories, console_errors):
    reward = make_reward(factories.partner("安心养车", stores=1))
    phone.goto(f"/rewards/{reward.id}")
    assert phone.locator("#redeem button").is_disabled()
    phone.locator("#redeem-reason a", has_text="登录后兑换").click()
    phone.wait_for_url(lambda url: "/auth/login" in url and "next=" in url)
    assert not console_errors


def test_the_bottom_sheet_confirms_before_spending(phone, factories, console_errors):
    from datetime import timedelta

    from models.types import shanghai_day

    partner = factories.partner("安心养车", stores=2)
    member = member_with(factories, 250)
    reward = make_reward(partner, points_price=100, validity_days=30)
    log_in(phone, member.email)
    phone.goto(f"/rewards/{reward.id}")
    sheet = phone.locator("#redeem-sheet")
    assert not sheet.is_visible()

    phone.locator("#redeem [data-open-sheet]").click()
    sheet.wait_for(state="visible")
    phone.wait_for_timeout(300)  # the slide-up
    assert "/confirm" not in phone.url, "the sheet opened in place"
    box = sheet.bounding_box()
    assert abs(box["y"] + box["height"] - 780) <= 1 and box["width"] == pytest.approx(phone.width, abs=1), box
    assert sheet.locator("[data-fact=price]").inner_text().startswith("100")
    assert sheet.locator("[data-fact=balance-after]").inner_text().startswith("150 积分")
    last_day = (shanghai_day() + timedelta(days=30)).isoformat()
    assert sheet.locator("[data-fact=valid-until]").inner_text() == last_day
    assert "1号店" in sheet.locator("[data-fact=stores]").inner_text()
    confirm = sheet.locator("button[type=submit]")
    inside_viewport(phone, confirm)
    assert confirm.bounding_box()["height"] >= 44
    if phone.width == 360:
        phone.screenshot(path="/tmp/cheyou-redeem-sheet-360.png")

    sheet.locator("[data-close-sheet]").click()
    sheet.wait_for(state="hidden")
    assert f"/rewards/{reward.id}" in phone.url and "/confirm" not in phone.url
    _fresh()
    assert balance_of(member) == 250 and db.session.scalar(select(func.count()).select_from(Voucher)) == 0

    phone.locator("#redeem [data-open-sheet]").click()
    sheet.wait_for(state="visible")
    confirm.click()
    phone.locator("#redeem .status.ok").wait_for()
    assert "兑换成功" in phone.locator("#redeem").inner_text()
    assert not phone.locator("#redeem-sheet").count()
    _fresh()
    assert db.session.scalar(select(func.count()).select_from(Voucher)) == 1
    assert balance_of(member) == 150 and db.session.get(Reward, reward.id).stock == 4
    assert not console_errors


def test_without_javascript_the_button_leads_to_a_confirmation_page(browser, live_server, csrf_on, factories):
    from tests.browser.conftest import PHONE

    member = member_with(factories, 250)
    reward = make_reward(factories.partner("安心养车", stores=1))
    context = browser.new_context(base_url=live_server, java_script_enabled=False,
                                  **{**PHONE, "viewport": {"width": 360, "height": 780}})
    try:
        page = context.new_page()
        log_in(page, member.email)
        page.goto(f"/rewards/{reward.id}")
        page.locator("#redeem [data-open-sheet]").click()
        page.wait_for_url(f"**/rewards/{reward.id}/confirm")
        assert page.locator("[data-fact=balance-after]").inner_text().startswith("150")
        _fresh()
        assert balance_of(member) == 250
        page.locator("main form button[type=submit]").click()
        page.wait_for_url("**/me/vouchers/*")
        _fresh()
        assert balance_of(member) == 150 and db.session.scalar(select(func.count()).select_from(Voucher)) == 1
    finally:
        context.close()


def test_the_catalogue_has_two_columns_and_chips_that_scroll(phone, factories, console_errors):
    factories.communities()
    partner = factories.partner("安心养车", stores=1)
    for kind, title in (("wash", "精致洗车"), ("maintenance", "小保养"), ("inspection", "电池检测"),
                        ("modding", "改装 9 折")):
        make_reward(partner, kind=kind, title=title)
    phone.goto("/rewards")
    cards = phone.locator(".reward-card")
    assert cards.count() == 4
    first, second, third = (cards.nth(i).bounding_box() for i in range(3))
    assert first["y"] == pytest.approx(second["y"], abs=1) and second["x"] > first["x"] + first["width"] - 1
    assert third["y"] > first["y"] + first["height"] - 1 and third["x"] == pytest.approx(first["x"], abs=1)
    assert second["x"] + second["width"] <= phone.width
    assert cards.first.locator("img.reward-pic").bounding_box()["width"] == pytest.approx(first["width"], abs=1)

    row = phone.locator("nav.reward-filters").nth(1)  # the communities
    chips = row.locator(".chip")
    assert all(chips.nth(i).bounding_box()["height"] >= 44 for i in range(chips.count()))
    metrics = row.evaluate("r => ({scroll: r.scrollWidth, client: r.clientWidth})")
    assert metrics["scroll"] > metrics["client"], "the chips do not all fit: the row scrolls"
    row_box = row.bounding_box()
    partly = [chips.nth(i).bounding_box() for i in range(chips.count())]
    edge = row_box["x"] + row_box["width"]
    assert any(edge - 48 < b["x"] + b["width"] and b["x"] < edge for b in partly[1:]), \
        "a chip shows in the fade at the edge, telling there is more"
    assert "no-more" not in row.get_attribute("class"), "the fade is on"
    assert row.evaluate("r => getComputedStyle(r).maskImage || getComputedStyle(r).webkitMaskImage") != "none"
    if phone.width == 360:
        phone.screenshot(path="/tmp/cheyou-catalogue-360.png")
    row.evaluate("r => r.scrollTo(r.scrollWidth, 0)")
    phone.wait_for_function("r => r.classList.contains('no-more')", arg=row.element_handle())
    chips.last.click()
    phone.wait_for_url(lambda url: "community=" in url)
    assert not console_errors


def test_the_counter_remembers_the_store_and_validates_two_in_a_row(phone, factories, console_errors):
    from tests.test_partner import make_voucher

    partner = factories.partner("洁亮洗车", stores=2)
    staff = factories.user(login=f"staff{next(_keys)}@example.com", role="partner", partner=partner)
    vouchers = [make_voucher(factories, partner) for _ in range(3)]
    store_2 = partner.stores[1]
    log_in(phone, staff.email)

    phone.goto("/partner")
    phone.fill("input[name=code]", vouchers[0].display_code.lower())
    phone.locator("form.lookup-form button[type=submit]").click()
    phone.wait_for_url(f"**/partner/v/{vouchers[0].code}")
    phone.select_option("select[name=store]", str(store_2.id))
    phone.locator("#voucher-status button[type=submit]").click()
    phone.locator(".pv-verdict.ok").wait_for()
    if phone.width == 360:
        phone.screenshot(path="/tmp/cheyou-counter-done-360.png")

    phone.locator("a.pv-next", has_text="验证下一张").click()
    phone.wait_for_url(lambda url: url.endswith("/partner?again=1"))
    code = phone.locator("input[name=code]")
    assert code.evaluate("el => el === document.activeElement"), "ready to type"
    assert code.input_value() == ""
    phone.keyboard.type(vouchers[1].code)
    phone.keyboard.press("Enter")
    phone.wait_for_url(f"**/partner/v/{vouchers[1].code}")
    phone.reload()
    assert phone.locator("select[name=store]").input_value() == str(store_2.id), "remembered across a reload"
    phone.locator("#voucher-status button[type=submit]").click()
    phone.locator(".pv-verdict.ok").wait_for()

    _fresh()
    used = db.session.scalars(select(Voucher).where(Voucher.state == "used").order_by(Voucher.id)).all()
    assert [v.id for v in used] == [vouchers[0].id, vouchers[1].id]
    assert {v.used_store_id for v in used} == {store_2.id}

    phone.goto(f"/partner/v/{vouchers[2].code}")  # can still change it
    phone.select_option("select[name=store]", str(partner.stores[0].id))
    phone.locator("#voucher-status button[type=submit]").click()
    phone.locator(".pv-verdict.ok").wait_for()
    _fresh()
    assert db.session.get(Voucher, vouchers[2].id).used_store_id == partner.stores[0].id
    assert not console_errors
