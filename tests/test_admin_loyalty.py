"""Admin pages of the loyalty programme: partners, stores and staff; rewards; points adjustments;
voucher cancellation. Each change is audited; bad input gets a clear answer and changes nothing."""
from __future__ import annotations

import itertools

import pytest
from sqlalchemy import func, select

from models import AuditEntry, Notification, Partner, PointsPosting, Reward, Store, User, Voucher, db
from models.loyalty import award, balance_of, format_code, redeem, use_voucher
from models.nonces import new_nonce

_keys = itertools.count(1)


@pytest.fixture
def admin(factories):
    return factories.user(login="boss@example.com", nickname="站长", role="admin")


@pytest.fixture
def as_admin(login_as, admin):
    client = login_as(admin)
    client.set_cookie("lang", "en")
    return client


def text(response) -> str:
    return response.get_data(as_text=True)


def audits(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)))


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def rich_member(factories, hundreds=3, **kw) -> User:
    member = factories.user(**kw)
    for _ in range(hundreds):
        award(member, "story_featured", key=f"seed:{next(_keys)}")
    db.session.commit()
    return member


def make_reward(partner, **kw) -> Reward:
    values = dict(partner_id=partner.id, kind="wash", title="精洗一次", points_price=100, stock=5, validity_days=30)
    values.update(kw)
    reward = Reward(**values)
    db.session.add(reward)
    db.session.commit()
    return reward


# -- partners, stores, staff -------------------------------------------------------------------

def test_admin_creates_a_partner_audited(as_admin, admin):
    response = as_admin.post("/admin/partners", data={"name": " 洁亮洗车 ", "kind": "wash"})
    partner = db.session.scalar(select(Partner).where(Partner.name == "洁亮洗车"))
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/admin/partners/{partner.id}")
    assert partner.kind == "wash"
    [entry] = audits("partner.create")
    assert entry.actor_id == admin.id and entry.before is None and entry.after == {"name": "洁亮洗车", "kind": "wash"}
    listing = text(as_admin.get("/admin/partners"))
    assert "洁亮洗车" in listing and "Car wash" in listing


@pytest.mark.parametrize("data, message", [
    ({"name": "", "kind": "wash"}, "Give the business a name."),
    ({"name": "洁亮洗车", "kind": "bakery"}, "Not a valid choice"),
    ({"name": "已有商户", "kind": "wash"}, "A partner named 已有商户 already exists."),
    ({"name": "x" * 81, "kind": "wash"}, "At most 80 characters."),
])
def test_partner_form_refuses_bad_input_and_keeps_it(as_admin, factories, data, message):
    factories.partner("已有商户", stores=0)
    response = as_admin.post("/admin/partners", data=data)
    assert response.status_code == 422
    assert message in text(response)
    assert count(Partner) == 1
    assert not audits("partner.create")


def test_admin_renames_a_partner_audited(as_admin, factories):
    partner = factories.partner("旧名字", stores=0)
    response = as_admin.post(f"/admin/partners/{partner.id}",
                             data={"partner-name": "新名字", "partner-kind": "inspection"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Partner, partner.id).name == "新名字"
    [entry] = audits("partner.update")
    assert entry.before["name"] == "旧名字" and entry.after == {"name": "新名字", "kind": "inspection"}


def test_admin_adds_and_edits_stores_audited(as_admin, factories):
    partner = factories.partner("洁亮洗车", stores=0)
    response = as_admin.post(f"/admin/partners/{partner.id}/stores",
                             data={"store-name": "徐汇店", "store-city": "上海", "store-address": "漕溪北路 1 号"})
    assert response.status_code == 302
    store = db.session.scalar(select(Store).where(Store.partner_id == partner.id))
    assert (store.name, store.city, store.address) == ("徐汇店", "上海", "漕溪北路 1 号")
    [created] = audits("store.create")
    assert created.after["name"] == "徐汇店" and created.after["partner_id"] == partner.id

    duplicate = as_admin.post(f"/admin/partners/{partner.id}/stores", data={"store-name": "徐汇店", "store-city": "上海"})
    assert duplicate.status_code == 422 and "洁亮洗车 already has a store named 徐汇店." in text(duplicate)
    empty = as_admin.post(f"/admin/partners/{partner.id}/stores", data={"store-name": "", "store-city": "北京"})
    assert empty.status_code == 422 and "Give the store a name." in text(empty) and 'value="北京"' in text(empty)
    assert count(Store) == 1

    page = text(as_admin.get(f"/admin/stores/{store.id}/edit"))
    assert 'value="徐汇店"' in page
    edited = as_admin.post(f"/admin/stores/{store.id}/edit", data={"name": "徐汇旗舰店", "city": "上海", "address": "新地址"})
    assert edited.status_code == 302
    [updated] = audits("store.update")
    assert updated.before["name"] == "徐汇店" and updated.after["name"] == "徐汇旗舰店"
    assert "徐汇旗舰店" in text(as_admin.get(f"/admin/partners/{partner.id}"))


def test_the_partner_page_forms_work_with_csrf_on(as_admin, factories, csrf_on):
    import re

    partner = factories.partner("洁亮洗车", stores=0)
    page = text(as_admin.get(f"/admin/partners/{partner.id}"))
    token = re.search(r'name="store-csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = as_admin.post(f"/admin/partners/{partner.id}/stores",
                             data={"store-name": "徐汇店", "store-csrf_token": token})
    assert response.status_code == 302
    stale = as_admin.post(f"/admin/partners/{partner.id}/stores", data={"store-name": "静安店", "store-csrf_token": "x"})
    assert stale.status_code == 400 and 'value="静安店"' in text(stale) and "This page was open for too long" in text(stale)
    assert [s.name for s in db.session.scalars(select(Store))] == ["徐汇店"]


def test_admin_makes_a_member_staff_of_a_partner(as_admin, admin, factories, login_as):
    partner = factories.partner("洁亮洗车", stores=1)
    member = factories.user(login="13800001111", nickname="新店员")
    response = as_admin.post(f"/admin/partners/{partner.id}/staff", data={"staff-login": "138 0000 1111"})
    assert response.status_code == 302
    db.session.expire_all()
    member = db.session.get(User, member.id)
    assert member.has_role("partner", partner=partner)
    [entry] = [e for e in audits("role.grant") if e.target_id == str(member.id)]
    assert entry.actor_id == admin.id and entry.after == {"role": "partner", "scope": f"partner:{partner.id}"}
    page = text(as_admin.get(f"/admin/partners/{partner.id}"))
    assert "新店员" in page and "138****1111" in page and "13800001111" not in page
    assert "/admin/roles/" in page, "a revoke button per staff member"
    assert login_as(member).get("/partner").status_code == 200

    unknown = as_admin.post(f"/admin/partners/{partner.id}/staff", data={"staff-login": "nobody@example.com"})
    assert unknown.status_code == 422
    assert "No member with this login." in text(unknown) and 'value="nobody@example.com"' in text(unknown)


# -- rewards -----------------------------------------------------------------------------------

def reward_data(partner, **kw) -> dict:
    data = {"partner": partner.id, "kind": "wash", "title": "精洗一次", "title_en": "Full wash", "description": "内外精洗",
            "terms": "每车限用一次", "points_price": "300", "stock": "20", "per_member_limit": "2", "monthly_limit": "",
            "min_level": "2", "validity_days": "30", "community": "0", "active": "y"}
    data.update(kw)
    return data


def test_admin_creates_a_reward_with_stores_audited(as_admin, admin, factories, communities):
    partner = factories.partner("洁亮洗车", stores=2)
    page = text(as_admin.get("/admin/rewards/new", query_string={"partner": partner.id}))
    assert "1号店" in page and "Minimum level" in page
    data = reward_data(partner, stores=[str(partner.stores[1].id)], community=str(communities["ev"].id),
                       monthly_limit="1")
    response = as_admin.post("/admin/rewards/new", data=data)
    assert response.status_code == 302, text(response)
    reward = db.session.scalar(select(Reward))
    assert (reward.title, reward.title_en, reward.points_price, reward.stock, reward.per_member_limit) == (
        "精洗一次", "Full wash", 300, 20, 2)
    assert reward.monthly_limit == 1 and reward.min_level == 2 and reward.community_id == communities["ev"].id
    assert [s.id for s in reward.stores] == [partner.stores[1].id] and reward.active
    [entry] = audits("reward.create")
    assert entry.actor_id == admin.id and entry.before is None
    assert entry.after["points_price"] == 300 and entry.after["stores"] == [partner.stores[1].id]
    listing = text(as_admin.get("/admin/rewards"))
    assert "精洗一次" in listing and "洁亮洗车" in listing and ">20<" in listing


@pytest.mark.parametrize("field, value, message", [
    ("points_price", "0", "The price is between 1 and 1000000 points."),
    ("points_price", "abc", "Not a valid integer value"),
    ("stock", "-1", "Stock is between 0 and 1000000 units."),
    ("per_member_limit", "0", "A limit is between 1 and 1000."),
    ("monthly_limit", "0", "A limit is between 1 and 1000."),
    ("validity_days", "0", "Between 1 and 3650 days."),
    ("min_level", "6", "Not a valid choice"),
    ("title", "", "Give the reward a title."),
])
def test_reward_form_refuses_bad_input_and_keeps_it(as_admin, factories, field, value, message):
    partner = factories.partner("洁亮洗车", stores=1)
    response = as_admin.post("/admin/rewards/new", data=reward_data(partner, **{field: value}, title_en="Kept wash")
                             if field != "title" else reward_data(partner, title="", title_en="Kept wash"))
    assert response.status_code == 422
    body = text(response)
    assert message in body
    assert 'value="Kept wash"' in body
    assert count(Reward) == 0 and not audits("reward.create")


def test_reward_stores_must_belong_to_its_partner(as_admin, factories):
    partner = factories.partner("洁亮洗车", stores=1)
    other = factories.partner("别家保养", stores=1)
    response = as_admin.post("/admin/rewards/new", data=reward_data(partner, stores=[str(other.stores[0].id)]))
    assert response.status_code == 422
    assert "Choose only stores of the selected partner." in text(response)
    assert count(Reward) == 0


def test_editing_stock_keeps_redemptions_made_meanwhile(as_admin, factories):
    partner = factories.partner("洁亮洗车", stores=1)
    reward = make_reward(partner, stock=5)
    form = text(as_admin.get(f"/admin/rewards/{reward.id}/edit"))
    assert 'name="stock_seen" type="hidden" value="5"' in form
    member = rich_member(factories, 1)
    redeem(member, reward.id, new_nonce())  # a member redeems while the admin edits
    db.session.commit()
    response = as_admin.post(f"/admin/rewards/{reward.id}/edit",
                             data=reward_data(partner, stock="10", stock_seen="5", title="精洗一次（新）"))
    assert response.status_code == 302
    db.session.expire_all()
    reward = db.session.get(Reward, reward.id)
    assert reward.stock == 9, "5 seen → 10 typed adds 5 to the 4 left"
    assert reward.title == "精洗一次（新）"
    [entry] = audits("reward.update")
    assert entry.before["stock"] == 4 and entry.after["stock"] == 9
    assert entry.before["title"] == "精洗一次" and entry.after["title"] == "精洗一次（新）"


def test_stock_cannot_be_taken_below_what_is_left(as_admin, factories):
    partner = factories.partner("洁亮洗车", stores=1)
    reward = make_reward(partner, stock=1)
    member = rich_member(factories, 1)
    redeem(member, reward.id, new_nonce())
    db.session.commit()
    response = as_admin.post(f"/admin/rewards/{reward.id}/edit", data=reward_data(partner, stock="0", stock_seen="2"))
    assert response.status_code == 422
    assert "The stock changed while you were editing: 0 left now." in text(response)
    db.session.expire_all()
    assert db.session.get(Reward, reward.id).stock == 0 and not audits("reward.update")


def test_a_rewards_partner_cannot_change_once_vouchers_exist(as_admin, factories):
    partner = factories.partner("洁亮洗车", stores=1)
    other = factories.partner("别家保养", stores=1)
    reward = make_reward(partner)
    redeem(rich_member(factories, 1), reward.id, new_nonce())
    db.session.commit()
    response = as_admin.post(f"/admin/rewards/{reward.id}/edit", data=reward_data(other, stock="4", stock_seen="4"))
    assert response.status_code == 422
    assert "its partner cannot change" in text(response)
    db.session.expire_all()
    assert db.session.get(Reward, reward.id).partner_id == partner.id


# -- points adjustments ------------------------------------------------------------------------

def test_admin_finds_a_member_and_adjusts_points_once_per_form(as_admin, admin, factories, login_as):
    member = rich_member(factories, 1, login="13900002222", nickname="车主小周")
    page = as_admin.get("/admin/points", query_string={"login": "13900002222"})
    body = text(page)
    assert "车主小周" in body and "139****2222" in body and "<strong>100</strong>" in body
    assert "Story featured" in body, "recent postings with their reasons"
    nonce = new_nonce()
    data = {"member": member.id, "nonce": nonce, "points": "+50", "reason": "活动补发"}
    first = as_admin.post("/admin/points", data=data)
    assert first.status_code == 303 and first.headers["Location"].endswith(f"/admin/points?member={member.id}")
    again = as_admin.post("/admin/points", data=data)  # a double submit
    assert again.status_code == 303
    assert balance_of(member) == 150
    adjustments = db.session.scalars(select(PointsPosting).where(PointsPosting.kind == "adjust")).all()
    assert len(adjustments) == 1 and adjustments[0].actor_id == admin.id and adjustments[0].reason == "活动补发"
    [entry] = audits("points.adjust")
    assert entry.before == {"balance": 100} and entry.after == {"balance": 150, "reason": "活动补发"}
    notes = db.session.scalars(select(Notification).where(Notification.kind == "points_adjusted")).all()
    assert len(notes) == 1 and notes[0].params == {"points": "+50", "reason": "活动补发"}
    member_client = login_as(member)
    member_client.set_cookie("lang", "en")
    assert "adjusted by +50: 活动补发" in text(member_client.get("/me/notifications"))
    shown = text(as_admin.get(f"/admin/points?member={member.id}"))
    assert "<strong>150</strong>" in shown and "活动补发" in shown and "+50" in shown


@pytest.mark.parametrize("points, reason, message", [
    ("-101", "扣回误发", "This would take the balance below zero: the member has 100 points."),
    ("10001", "补发", "An adjustment is between 1 and 10000 points, up or down."),
    ("-10001", "扣回", "An adjustment is between 1 and 10000 points, up or down."),
    ("0", "无", "An adjustment is between 1 and 10000 points, up or down."),
    ("50", "  ", "Give a reason for the adjustment."),
    ("fifty", "补发", "Not a valid integer value"),
])
def test_a_refused_adjustment_leaves_the_balance_exact_and_keeps_the_input(as_admin, factories, points, reason,
                                                                          message):
    member = rich_member(factories, 1)
    response = as_admin.post("/admin/points", data={"member": member.id, "nonce": new_nonce(), "points": points,
                                                    "reason": reason})
    assert response.status_code == 422
    body = text(response)
    assert message in body
    assert f'value="{points}"' in body
    assert balance_of(member) == 100
    assert not audits("points.adjust")
    assert db.session.scalar(select(func.count()).select_from(Notification).where(
        Notification.kind == "points_adjusted")) == 0


def test_taking_points_down_to_exactly_zero_is_allowed(as_admin, factories):
    member = rich_member(factories, 1)
    response = as_admin.post("/admin/points", data={"member": member.id, "nonce": new_nonce(), "points": "-100",
                                                    "reason": "违规收回"})
    assert response.status_code == 303
    assert balance_of(member) == 0


def test_an_unknown_login_is_said_plainly(as_admin):
    response = as_admin.get("/admin/points", query_string={"login": "nobody@example.com"})
    assert "No member with this login." in text(response)
    assert 'value="nobody@example.com"' in text(response)


# -- vouchers ----------------------------------------------------------------------------------

@pytest.fixture
def issued(factories):
    partner = factories.partner("洁亮洗车", stores=1)
    reward = make_reward(partner, stock=5, points_price=100)
    member = rich_member(factories, 2, login="13900003333", nickname="车主小吴")
    voucher = redeem(member, reward.id, new_nonce())
    db.session.commit()
    return voucher


def test_vouchers_are_found_by_code_or_by_member_login(as_admin, issued):
    by_code = text(as_admin.get("/admin/vouchers", query_string={"code": format_code(issued.code).lower()}))
    assert format_code(issued.code) in by_code and "车主小吴" in by_code and "Cancel voucher and refund" in by_code
    assert "13900003333" not in by_code
    by_login = text(as_admin.get("/admin/vouchers", query_string={"code": "13900003333"}))
    assert format_code(issued.code) in by_login
    typo = text(as_admin.get("/admin/vouchers", query_string={"code": "1" + issued.code[1:] if issued.code[0] != "1"
                                                                    else "2" + issued.code[1:]}))
    assert "No voucher has this code and no member has this login." in typo


def test_voiding_refunds_the_points_returns_the_stock_and_is_audited(as_admin, admin, issued):
    member, reward = issued.user, issued.reward
    assert balance_of(member) == 100 and reward.stock == 4
    response = as_admin.post(f"/admin/vouchers/{issued.id}/void",
                             data={f"v{issued.id}-reason": "门店停业", f"v{issued.id}-q": issued.code})
    assert response.status_code == 303
    db.session.expire_all()
    voucher = db.session.get(Voucher, issued.id)
    assert voucher.state == "void"
    assert balance_of(member) == 200
    assert db.session.get(Reward, reward.id).stock == 5
    [entry] = audits("voucher.void")
    assert entry.actor_id == admin.id and entry.after == {"state": "void", "reason": "门店停业"}
    assert db.session.scalar(select(Notification).where(Notification.kind == "voucher_voided")) is not None
    page = text(as_admin.get(response.headers["Location"]))
    assert "Cancelled" in page and "Cancel voucher and refund" not in page

    again = as_admin.post(f"/admin/vouchers/{issued.id}/void", data={f"v{issued.id}-reason": "再来一次"})
    assert again.status_code == 422 and "Only an unused voucher can be cancelled." in text(again)
    assert balance_of(member) == 200 and db.session.get(Reward, reward.id).stock == 5


def test_voiding_needs_a_reason(as_admin, issued):
    response = as_admin.post(f"/admin/vouchers/{issued.id}/void", data={f"v{issued.id}-reason": " "})
    assert response.status_code == 422 and "Give a reason for cancelling." in text(response)
    db.session.expire_all()
    assert db.session.get(Voucher, issued.id).state == "issued" and balance_of(issued.user) == 100


def test_a_used_voucher_cannot_be_voided(as_admin, factories, issued):
    store = issued.reward.partner.stores[0]
    use_voucher(issued.code, store, factories.user(role="partner", partner=issued.partner_id))
    db.session.commit()
    page = text(as_admin.get("/admin/vouchers", query_string={"code": issued.code}))
    assert "Cancel voucher and refund" not in page and "1号店" in page
    response = as_admin.post(f"/admin/vouchers/{issued.id}/void", data={f"v{issued.id}-reason": "误操作"})
    assert response.status_code == 422 and "Only an unused voucher can be cancelled." in text(response)
    db.session.expire_all()
    assert db.session.get(Voucher, issued.id).state == "used" and balance_of(issued.user) == 100


# -- only administrators -----------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/admin/partners", "/admin/points", "/admin/rewards/new", "/admin/vouchers/1/void",
                                  "/admin/partners/1/stores", "/admin/partners/1/staff"])
def test_only_administrators_may_post(login_as, client, factories, path):
    staff = factories.user(role="partner")
    assert login_as(staff).post(path, data={"name": "x"}).status_code == 403
    assert client.post(path, data={"name": "x"}).status_code == 302
    assert count(Partner) == 1  # the staff member's own
