"""The rewards catalogue and redeeming: every refusal is clear and leaves points and stock exact."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models import Notification, Reward, Voucher, db
from models.loyalty import balance_of, format_code, new_code, normalise_code, refund
from models.nonces import new_nonce
from models.types import utcnow


@pytest.fixture
def partner(factories):
    return factories.partner("安心养车", stores=2)


@pytest.fixture
def make_reward(partner):
    def make(**kw):
        values = dict(partner_id=partner.id, kind="maintenance", title="小保养 8 折券", points_price=100, stock=5,
                      per_member_limit=3, validity_days=30)
        values.update(kw)
        reward = Reward(**values)
        db.session.add(reward)
        db.session.commit()
        return reward

    return make


def rich_member(factories, hundreds=5, **kw):
    member = factories.user(**kw)
    if hundreds:  # plain points: no growth, so no level multiplier muddles the sums
        refund(member, 100 * hundreds, key="seed", reason="test points")
    db.session.commit()
    return member


def redeem(client, reward, nonce=None, htmx=True):
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(f"/rewards/{reward.id}/redeem", data={"nonce": nonce or new_nonce()}, headers=headers)


def test_catalogue_filters_by_kind_and_community(client, make_reward, communities):
    make_reward(title="精致洗车", kind="wash")
    make_reward(title="电池检测", kind="inspection", community_id=communities["ev"].id)
    make_reward(title="停售的券", kind="wash", active=False)
    body = client.get("/rewards").get_data(as_text=True)
    assert "精致洗车" in body and "电池检测" in body and "停售的券" not in body
    wash = client.get("/rewards?kind=wash").get_data(as_text=True)
    assert "精致洗车" in wash and "电池检测" not in wash
    women = client.get("/rewards?community=women").get_data(as_text=True)
    assert "精致洗车" in women and "电池检测" not in women
    fragment = client.get("/rewards?kind=inspection", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<html" not in fragment and "电池检测" in fragment


def test_redeem_debits_points_issues_a_voucher_and_notifies(login_as, factories, make_reward):
    member = rich_member(factories, 2)
    reward = make_reward()
    client = login_as(member)
    response = redeem(client, reward)
    assert response.status_code == 200
    assert response.headers["HX-Trigger"] == "points-changed"
    voucher = db.session.scalar(select(Voucher))
    assert voucher.display_code in response.get_data(as_text=True)
    assert balance_of(member) == 100 and db.session.get(Reward, reward.id).stock == 4
    assert voucher.state == "issued" and voucher.points_paid == 100
    assert db.session.scalar(select(Notification).where(Notification.kind == "voucher_issued")) is not None


def test_plain_form_post_redirects_to_the_voucher(login_as, factories, make_reward):
    member = rich_member(factories, 1)
    response = redeem(login_as(member), make_reward(), htmx=False)
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/me/vouchers/")


def test_same_nonce_returns_the_same_voucher(login_as, factories, make_reward):
    member = rich_member(factories, 5)
    reward = make_reward()
    client = login_as(member)
    nonce = new_nonce()
    first, second = redeem(client, reward, nonce), redeem(client, reward, nonce)
    assert first.status_code == second.status_code == 200
    assert db.session.scalar(select(func.count()).select_from(Voucher)) == 1
    assert balance_of(member) == 400


@pytest.mark.parametrize(
    "setup, message",
    [
        (dict(hundreds=0, reward={}), "积分"),
        (dict(hundreds=5, reward={"stock": 0}), "兑完"),
        (dict(hundreds=5, reward={"min_level": 3}), "Lv.3"),
    ],
)
def test_refusals_leave_points_and_stock_exact(login_as, factories, make_reward, setup, message):
    member = rich_member(factories, setup["hundreds"])
    reward = make_reward(**setup["reward"])
    before_points, before_stock = balance_of(member), reward.stock
    response = redeem(login_as(member), reward)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    db.session.expire_all()
    assert balance_of(member) == before_points
    assert db.session.get(Reward, reward.id).stock == before_stock
    assert db.session.scalar(select(func.count()).select_from(Voucher)) == 0


def test_per_member_limit_over_the_rewards_life(login_as, factories, make_reward):
    member = rich_member(factories, 5)
    reward = make_reward(per_member_limit=2)
    client = login_as(member)
    assert [redeem(client, reward).status_code for _ in range(3)] == [200, 200, 422]
    assert balance_of(member) == 300


def test_monthly_limit(login_as, factories, make_reward):
    from models.loyalty import redeem as redeem_now

    member = rich_member(factories, 5)
    reward = make_reward(per_member_limit=5, monthly_limit=1)
    # Last month's voucher counts for the reward's lifetime limit, not for this month's.
    last_month = utcnow() - timedelta(days=40)
    refund(member, 100, key="last-month", reason="test points", now=last_month)
    redeem_now(member, reward.id, new_nonce(), now=last_month)
    db.session.commit()
    client = login_as(member)
    assert redeem(client, reward).status_code == 200
    refused = redeem(client, reward)
    assert refused.status_code == 422 and "本月" in refused.get_data(as_text=True)


def test_visitors_are_sent_to_log_in(client, make_reward):
    reward = make_reward()
    page = client.get(f"/rewards/{reward.id}").get_data(as_text=True)
    assert "/auth/login" in page
    response = client.post(f"/rewards/{reward.id}/redeem", data={"nonce": new_nonce()})
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


def test_a_forged_nonce_is_refused(login_as, factories, make_reward):
    member = rich_member(factories, 1)
    response = redeem(login_as(member), make_reward(), nonce="x")
    assert response.status_code == 422
    assert balance_of(member) == 100


def test_voucher_codes_carry_a_check_symbol_that_catches_typos():
    for _ in range(200):
        code = new_code()
        assert len(code) == 13
        assert normalise_code(format_code(code).lower()) == code
        typo = code[:5] + ("0" if code[5] != "0" else "1") + code[6:]
        assert normalise_code(typo) is None, "one wrong character is caught"
        swapped = code[:2] + code[3] + code[2] + code[4:]
        if swapped != code:
            assert normalise_code(swapped) is None, "two swapped characters are caught"
    # Crockford's reading aids: O reads as 0, I and L as 1.
    code = "0000000000011"  # body value 1 → check symbol "1"
    assert normalise_code("OOOO-OOOO-OOO1-L") == code


def test_an_expired_voucher_is_never_refunded(factories, make_reward):
    from datetime import timedelta

    from models import DomainError
    from models.loyalty import redeem as redeem_voucher, void_voucher
    from models.types import utcnow

    admin, member = factories.user(role="admin"), rich_member(factories, 1)
    voucher = redeem_voucher(member, make_reward(validity_days=1).id, new_nonce())
    db.session.commit()
    with pytest.raises(DomainError):
        void_voucher(voucher, admin, "客户要求", now=utcnow() + timedelta(days=3))
    db.session.rollback()
    assert balance_of(member) == 0 and db.session.get(Voucher, voucher.id).state == "issued"


def test_voucher_sweep_expires_and_reminds_three_days_ahead(factories, make_reward):
    from datetime import timedelta

    from models.loyalty import redeem as redeem_voucher
    from models.types import utcnow
    from services.tasks import sweep_vouchers

    member = factories.user()
    refund(member, 300, key="seed", reason="test points", now=utcnow() - timedelta(days=10))
    soon = redeem_voucher(member, make_reward(validity_days=2).id, new_nonce())
    later = redeem_voucher(member, make_reward(validity_days=30).id, new_nonce())
    old = redeem_voucher(member, make_reward(validity_days=1).id, new_nonce(), now=utcnow() - timedelta(days=5))
    db.session.commit()
    sweep_vouchers()
    sweep_vouchers()  # a second run reminds nobody twice
    db.session.expire_all()
    assert db.session.get(Voucher, old.id).state == "expired"
    assert db.session.get(Voucher, soon.id).state == "issued" and db.session.get(Voucher, later.id).state == "issued"
    reminders = db.session.scalars(select(Notification).where(Notification.kind == "voucher_expiring")).all()
    assert [n.link for n in reminders] == [f"/me/vouchers/{soon.code}"]
    assert balance_of(member) == 0, "an expired voucher is not refunded"


def test_catalogue_runs_a_constant_number_of_queries(login_as, factories, make_reward, count_queries):
    client = login_as(rich_member(factories, 1))

    def queries():
        with count_queries() as counter:
            assert client.get("/rewards").status_code == 200
        return counter["n"]

    make_reward(title="一")
    few = queries()
    for i in range(10):
        make_reward(title=f"券{i}", kind=("wash", "inspection")[i % 2])
    assert queries() == few
