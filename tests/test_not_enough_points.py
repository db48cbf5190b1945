"""One "not enough points" rule and one message: `require_balance` is what spending, redeeming a
reward and paying for an event all ask, so a member who falls short reads the same words everywhere."""
from __future__ import annotations

import pytest

from models import Voucher, db
from models.loyalty import NotEnoughPoints, balance_of, refund, require_balance
from models.nonces import new_nonce

# The catalogue fixtures of the rewards tests: a partner with two stores and a reward maker.
from tests.test_rewards import make_reward, partner  # noqa: F401

HX = {"HX-Request": "true"}
SHORT_BY_40 = "还差 40 积分：需要 100 积分，你现在有 60 积分。"  # zh-CN, the default language


@pytest.fixture
def member(factories):
    member = factories.user()
    refund(member, 60, key="seed", reason="test points")
    db.session.commit()
    return member


def test_the_rule_says_how_many_points_are_missing(member):
    with pytest.raises(NotEnoughPoints) as short:
        require_balance(member, 100)
    assert short.value.params == {"missing": 40, "points": 100, "balance": 60}
    assert require_balance(member, 60) == 60


def test_redeeming_and_paying_for_an_event_refuse_in_the_same_words(login_as, factories, make_reward, member):
    client = login_as(member)
    reward = make_reward(points_price=100)
    assert SHORT_BY_40 in client.get(f"/rewards/{reward.id}").get_data(as_text=True)  # beside the disabled button
    redeemed = client.post(f"/rewards/{reward.id}/redeem", data={"nonce": new_nonce()}, headers=HX)
    assert redeemed.status_code == 422 and SHORT_BY_40 in redeemed.get_data(as_text=True)

    event = factories.event(points_price=100)
    signed_up = client.post(f"/events/{event.id}/signup", data={}, headers=HX)
    assert signed_up.status_code == 422 and SHORT_BY_40 in signed_up.get_data(as_text=True)

    assert balance_of(member) == 60 and db.session.scalar(db.select(db.func.count()).select_from(Voucher)) == 0
