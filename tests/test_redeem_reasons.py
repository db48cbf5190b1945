"""Issue #10, redeeming on a phone: the reward page says why the button is disabled, in the same
words `redeem` refuses with (one function decides both), and the confirmation step shows price,
balance after, validity and shops before anything is spent, also without JavaScript."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models import DomainError, Reward, Voucher, db
from models.loyalty import balance_of, redeem, redeem_refusal, refund
from models.nonces import new_nonce
from models.types import shanghai_day, utcnow


# The catalogue fixtures of the rewards tests: a partner with two stores and a reward maker.
from tests.test_rewards import make_reward, partner  # noqa: E402,F401


def member_with(factories, points: int, earned_days_ago: int = 0):
    member = factories.user()
    if points:
        refund(member, points, key="seed", reason="test points", now=utcnow() - timedelta(days=earned_days_ago))
    db.session.commit()
    return member


def text(response) -> str:
    return response.get_data(as_text=True)


def redeem_box(body: str) -> str:
    return body[body.index('id="redeem"'):]


def one_redeemed(member, reward):
    redeem(member, reward.id, new_nonce())
    db.session.commit()


# Each case: how to set it up, and the words the member reads (zh-CN) next to the disabled button.
CASES = {
    "level": (lambda f, r: (member_with(f, 500), r(min_level=3)), "仅限 Lv.3 及以上"),
    "points": (lambda f, r: (member_with(f, 60), r(points_price=100)), "还差 40 积分"),
    "expired points": (lambda f, r: (member_with(f, 500, earned_days_ago=400), r()), "还差 100 积分"),
    "per-member limit": (lambda f, r: _after_one(f, r(per_member_limit=1)), "已兑换该权益 1 次"),
    "monthly limit": (lambda f, r: _after_one(f, r(per_member_limit=5, monthly_limit=1)), "本月"),
    "out of stock": (lambda f, r: (member_with(f, 500), r(stock=0)), "兑完"),
}


def _after_one(factories, reward):
    member = member_with(factories, 500)
    one_redeemed(member, reward)
    return member, reward


@pytest.mark.parametrize("case", list(CASES))
def test_the_page_gives_the_same_reason_redeem_refuses_with(login_as, factories, make_reward, case):
    setup, words = CASES[case]
    member, reward = setup(factories, make_reward)
    expected = redeem_refusal(member, reward)
    assert expected is not None

    box = redeem_box(text(login_as(member).get(f"/rewards/{reward.id}")))
    assert re.search(r'<button class="button block" type="button" disabled aria-describedby="redeem-reason">', box)
    reason = re.search(r'<p id="redeem-reason" class="redeem-reason">\s*(.*?)\s*</p>', box, re.S).group(1)
    assert words in reason
    assert "/confirm" not in box and "<dialog" not in box, "no way to the confirmation"

    points, stock, vouchers = balance_of(member), reward.stock, db.session.scalar(
        select(func.count()).select_from(Voucher))
    with pytest.raises(DomainError) as refused:
        redeem(member, reward.id, new_nonce())
    db.session.rollback()
    assert (refused.value.message, refused.value.params) == (expected.message, expected.params)
    response = login_as(member).post(f"/rewards/{reward.id}/redeem", data={"nonce": new_nonce()},
                                     headers={"HX-Request": "true"})
    assert response.status_code == 422 and reason in text(response)
    assert text(response).count(reason) == 1, "said once, not twice"
    db.session.expire_all()
    assert balance_of(member) == points and db.session.get(Reward, reward.id).stock == stock
    assert db.session.scalar(select(func.count()).select_from(Voucher)) == vouchers


def test_a_visitor_is_asked_to_log_in(client, make_reward):
    reward = make_reward()
    box = redeem_box(text(client.get(f"/rewards/{reward.id}")))
    assert "disabled" in box and "登录后兑换" in box and "/auth/login?next=" in box
    assert client.get(f"/rewards/{reward.id}/confirm").status_code == 302


def test_a_member_who_can_redeem_gets_the_sheet_and_the_confirmation_page(login_as, factories, make_reward, partner):
    member = member_with(factories, 250)
    reward = make_reward(points_price=100, validity_days=30)
    client = login_as(member)
    last_day = (shanghai_day() + timedelta(days=30)).isoformat()

    box = redeem_box(text(client.get(f"/rewards/{reward.id}")))
    assert f'href="/rewards/{reward.id}/confirm"' in box and 'data-open-sheet="redeem-sheet"' in box
    assert '<dialog id="redeem-sheet"' in box and 'hx-post="/rewards/' in box
    for page in (box, text(client.get(f"/rewards/{reward.id}/confirm"))):
        assert re.search(r'data-fact="price"><strong>100</strong>', page)
        assert re.search(r'data-fact="balance-after">150 积分', page)
        assert f'data-fact="valid-until">{last_day}<' in page
        assert "1号店" in page and "2号店" in page
        assert 'name="nonce"' in page and 'action="/rewards/' in page
    confirm_page = text(client.get(f"/rewards/{reward.id}/confirm"))
    assert "hx-post" not in confirm_page, "without JavaScript the form posts and leads to the voucher"
    assert balance_of(member) == 250, "looking spends nothing"

    nonce = re.search(r'name="nonce" value="([^"]+)"', confirm_page).group(1)
    response = client.post(f"/rewards/{reward.id}/redeem", data={"nonce": nonce})
    assert response.status_code == 303 and response.headers["Location"].startswith("/me/vouchers/")
    voucher = db.session.scalar(select(Voucher))
    assert voucher.last_day.isoformat() == last_day, "the date shown is the voucher's last day"
    assert balance_of(member) == 150


def test_the_confirmation_page_sends_back_a_member_who_cannot_redeem(login_as, factories, make_reward):
    member = member_with(factories, 10)
    reward = make_reward()
    response = login_as(member).get(f"/rewards/{reward.id}/confirm")
    assert response.status_code == 302 and response.headers["Location"] == f"/rewards/{reward.id}"


def test_a_withdrawn_reward_has_no_confirmation_page(login_as, factories, make_reward):
    reward = make_reward(active=False)
    assert login_as(member_with(factories, 500)).get(f"/rewards/{reward.id}/confirm").status_code == 404
