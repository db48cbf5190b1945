"""Redemption under real concurrent requests through the app, on SQLite and PostgreSQL:
never a negative balance, never more vouchers than stock, one voucher per nonce."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from models import PointsPosting, Reward, Voucher, db
from models.loyalty import balance_of, refund
from models.nonces import new_nonce
from tests.live import LiveServer, fire_at_once, session_cookie_for


@pytest.fixture
def reward(factories):
    def make(price=100, stock=1000, per_member_limit=1000):
        partner = factories.partner("抢购洗车")
        item = Reward(partner_id=partner.id, kind="wash", title="精致洗车", points_price=price, stock=stock,
                      per_member_limit=per_member_limit, validity_days=30)
        db.session.add(item)
        db.session.commit()
        return item

    return make


def give_points(member, hundreds: int):
    refund(member, 100 * hundreds, key="seed", reason="test points")  # plain points, no level multiplier
    db.session.commit()


def redeem_call(base_url, cookie, reward_id, nonce):
    def call(http):
        return http.post(f"{base_url}/rewards/{reward_id}/redeem", data={"nonce": nonce},
                         cookies={"session": cookie}, headers={"HX-Request": "true"}, timeout=60)
    return call


def vouchers_of(member) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(Voucher).where(Voucher.user_id == member.id))


def test_points_for_three_buy_exactly_three_of_fifty_clicks(app, factories, reward):
    item = reward(price=100, stock=1000)
    member = factories.user()
    give_points(member, 3)
    cookie = session_cookie_for(app, member)
    with LiveServer(app) as server:
        responses = fire_at_once([redeem_call(server.url, cookie, item.id, new_nonce()) for _ in range(50)])
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 3 and statuses.count(422) == 47
    assert vouchers_of(member) == 3
    assert balance_of(member) == 0
    assert db.session.get(Reward, item.id).stock == 997
    refused = next(r for r in responses if r.status_code == 422)
    assert "积分" in refused.text or "points" in refused.text


def test_a_hundred_members_race_for_ten_in_stock(app, factories, reward):
    item = reward(price=100, stock=10)
    members = [factories.user() for _ in range(100)]
    for member in members:
        refund(member, 100, key="seed", reason="test points")
    db.session.commit()
    cookies = [session_cookie_for(app, m) for m in members]
    with LiveServer(app) as server:
        responses = fire_at_once([redeem_call(server.url, c, item.id, new_nonce()) for c in cookies])
    assert sum(r.status_code == 200 for r in responses) == 10
    assert sum(r.status_code == 422 for r in responses) == 90
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Voucher)) == 10
    assert db.session.get(Reward, item.id).stock == 0
    spent = db.session.scalar(select(func.count()).select_from(PointsPosting).where(PointsPosting.kind == "spend"))
    assert spent == 10, "only the winners paid"


def test_twenty_requests_with_one_nonce_give_one_voucher(app, factories, reward):
    item = reward(price=100, stock=1000)
    member = factories.user()
    give_points(member, 20)
    cookie = session_cookie_for(app, member)
    nonce = new_nonce()
    with LiveServer(app) as server:
        responses = fire_at_once([redeem_call(server.url, cookie, item.id, nonce) for _ in range(20)])
    assert all(r.status_code == 200 for r in responses)
    assert vouchers_of(member) == 1
    code = db.session.scalar(select(Voucher.code).where(Voucher.user_id == member.id))
    assert all(code in r.text or f"{code[:4]}-" in r.text for r in responses), "every answer shows the same voucher"
    assert balance_of(member) == 1900
    assert db.session.get(Reward, item.id).stock == 999
