"""The points ledger: award/spend, caps, multipliers, expiry, FIFO, levels, check-in, referral."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from models import AuditEntry, DomainError, EarningRule, Notification, PointsPosting, db, level_of
from models.loyalty import (
    NotEnoughPoints, adjust, award, balance_of, check_in, expire_due, expiring_soon, lots_of, refund, reverse_earnings,
    spend
)
from models.referrals import invite_code, inviter_for, qualify_referral, record_invitation

T0 = datetime(2026, 3, 10, 4, 0, tzinfo=timezone.utc)  # 12:00 in Shanghai

RULES = ["checkin", "checkin_streak", "story_posted", "story_featured", "comment", "like_received",
         "event_attended", "referral", "confirmed_report", "campaign_return"]


@pytest.fixture
def restore_rules():
    saved = {r.code: (r.points, r.growth, r.daily_limit, r.active) for r in db.session.scalars(select(EarningRule))}
    yield
    for code, (points, growth, limit, active) in saved.items():
        rule = db.session.get(EarningRule, code)
        rule.points, rule.growth, rule.daily_limit, rule.active = points, growth, limit, active
    db.session.commit()


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_pays_through_award_once_per_key(factories, rule):
    member = factories.user()
    expected = EarningRule.get(rule)
    first = award(member, rule, key=f"{rule}:1", now=T0)
    again = award(member, rule, key=f"{rule}:1", now=T0)
    db.session.commit()
    assert first.points == expected.points and first.growth == expected.growth
    assert again.id == first.id
    assert balance_of(member) == expected.points


def test_daily_cap_counts_in_shanghai_days(factories):
    member = factories.user()
    limit = EarningRule.get("comment").daily_limit
    # 23:30 Shanghai on 10 March is 15:30 UTC; 00:30 on 11 March is 16:30 UTC.
    late = datetime(2026, 3, 10, 15, 30, tzinfo=timezone.utc)
    paid = [award(member, "comment", key=f"c{i}", now=late) for i in range(limit + 3)]
    assert sum(p is not None for p in paid) == limit
    next_day = award(member, "comment", key="c-next", now=late + timedelta(hours=1))
    assert next_day is not None, "a new Shanghai day resets the cap"
    db.session.commit()
    assert balance_of(member) == (limit + 1) * EarningRule.get("comment").points


def test_switched_off_rule_pays_nothing(factories, restore_rules):
    EarningRule.get("comment").active = False
    db.session.commit()
    assert award(factories.user(), "comment", key="x") is None


def test_level_multiplier_applies_to_points_not_growth(factories):
    member = factories.user()
    for i in range(10):  # 10 × 50 growth = 500: Lv.3 (×1.2)
        award(member, "story_featured", key=f"f{i}", now=T0)
    assert level_of(member, T0).number == 3
    posting = award(member, "story_posted", key="s", now=T0)
    assert posting.points == 24 and posting.growth == 20


def test_level_is_computed_from_the_trailing_365_days_and_can_fall(factories):
    member = factories.user()
    for i in range(10):
        award(member, "story_featured", key=f"f{i}", now=T0)  # 500 growth
    db.session.commit()
    assert level_of(member, T0).number == 3
    info = level_of(member, T0 + timedelta(days=366))
    assert info.number == 1 and info.growth == 0
    assert level_of(member, T0).next_level.number == 4 and level_of(member, T0).to_next == 1000


def test_level_change_notifies_the_member(factories):
    member = factories.user()
    for i in range(2):
        award(member, "story_featured", key=f"f{i}", now=T0)  # 2 × 50 growth = 100: Lv.2
    db.session.commit()
    note = db.session.scalar(select(Notification).where(Notification.user_id == member.id, Notification.kind == "level_up"))
    assert note is not None and note.params == {"level": "Lv.2"}
    assert member.level_number == 2


def test_spending_never_goes_below_zero(factories):
    member = factories.user()
    award(member, "story_featured", key="f", now=T0)
    with pytest.raises(NotEnoughPoints):
        spend(member, 101, key="too-much", now=T0)
    spend(member, 100, key="all", now=T0)
    db.session.commit()
    assert balance_of(member) == 0


def test_spend_with_the_same_key_is_a_no_op(factories):
    member = factories.user()
    award(member, "story_featured", key="f", now=T0)
    a = spend(member, 30, key="k", now=T0)
    b = spend(member, 30, key="k", now=T0)
    db.session.commit()
    assert a.id == b.id and balance_of(member) == 70


def test_points_expire_after_12_months_oldest_first(factories):
    member = factories.user()
    award(member, "story_featured", key="old", now=T0)                       # 100, March 2026
    award(member, "event_attended", key="new", now=T0 + timedelta(days=60))  # 50, May 2026
    spend(member, 80, key="spend", now=T0 + timedelta(days=90))              # takes 80 of the March lot
    db.session.commit()
    soon = expiring_soon(member, now=T0 + timedelta(days=300))
    assert soon == [(datetime(2027, 3, 10).date(), 20)]
    # Still usable on 10 March 2027 (Shanghai), gone on the 11th.
    assert expire_due(member, now=datetime(2027, 3, 10, 15, 59, tzinfo=timezone.utc)) == 0
    assert expire_due(member, now=datetime(2027, 3, 10, 16, 1, tzinfo=timezone.utc)) == 20
    assert expire_due(member, now=datetime(2027, 3, 11, 16, 1, tzinfo=timezone.utc)) == 0, "written once"
    db.session.commit()
    assert balance_of(member) == 50
    expired = db.session.scalar(select(PointsPosting).where(PointsPosting.kind == "expire"))
    assert expired.points == -20


def test_spending_skips_lots_past_their_date(factories):
    member = factories.user()
    award(member, "story_featured", key="old", now=T0)
    with pytest.raises(NotEnoughPoints):
        spend(member, 50, key="late", now=T0 + timedelta(days=400))
    db.session.rollback()


def test_ledger_rows_are_never_updated_or_deleted(factories):
    member = factories.user()
    posting = award(member, "comment", key="c", now=T0)
    db.session.commit()
    posting.points = 1000
    with pytest.raises(RuntimeError, match="append-only"):
        db.session.commit()
    db.session.rollback()


def test_adjustment_needs_a_reason_is_audited_and_never_goes_negative(factories):
    admin, member = factories.user(role="admin"), factories.user()
    award(member, "comment", key="c", now=T0)
    with pytest.raises(DomainError):
        adjust(member, 10, "  ", admin, key="a0")
    with pytest.raises(NotEnoughPoints):
        adjust(member, -3, "clawback", admin, key="a1")
    with pytest.raises(DomainError):
        adjust(member, 10_001, "too big", admin, key="a2")
    adjust(member, 50, "活动补偿", admin, key="a3")
    adjust(member, -52, "重复发放", admin, key="a4")
    db.session.commit()
    assert balance_of(member) == 0
    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "points.adjust")).all()
    assert [e.after["reason"] for e in entries] == ["活动补偿", "重复发放"]


def test_reverse_earnings_takes_back_what_a_cause_earned(factories):
    member = factories.user()
    cause = ("stories", 7)
    award(member, "story_posted", cause=cause, key="story:7", now=T0)
    award(member, "like_received", cause=cause, key="like:7:1", now=T0)
    award(member, "comment", key="other", now=T0)
    reverse_earnings(member, cause, "Story hidden for a violation", key="reverse:7", now=T0)
    again = reverse_earnings(member, cause, "Story hidden for a violation", key="reverse:7", now=T0)
    db.session.commit()
    assert balance_of(member) == 2 and again.points == -21


def test_refund_is_a_new_lot(factories):
    member = factories.user()
    refund(member, 40, cause=("vouchers", 1), key="void:1", now=T0)
    db.session.commit()
    lots, deficit = lots_of(member)
    assert deficit == 0 and [(lot.points, lot.remaining) for lot in lots] == [(40, 40)]


def test_daily_check_in_and_the_7_day_streak_bonus(factories):
    member = factories.user()
    results = [check_in(member, now=T0 + timedelta(days=d)) for d in range(7)]
    assert [r.streak for r in results] == [1, 2, 3, 4, 5, 6, 7]
    assert [r.bonus is not None for r in results] == [False] * 6 + [True]
    repeat = check_in(member, now=T0 + timedelta(days=6, hours=1))
    assert repeat.already and repeat.streak == 7
    db.session.commit()
    assert balance_of(member) == 7 * 5 + 30
    gap = check_in(member, now=T0 + timedelta(days=9))
    assert gap.streak == 1


def test_referral_rewards_both_once(factories):
    inviter = factories.user(signup_device="a" * 32)
    invitee = factories.user(signup_device="b" * 32)
    assert inviter_for(invite_code(inviter)).id == inviter.id
    record_invitation(invitee, invite_code(inviter))
    db.session.commit()
    assert qualify_referral(invitee) is True
    assert qualify_referral(invitee) is True  # a second qualifying action pays nothing more
    db.session.commit()
    referral = EarningRule.get("referral").points
    assert balance_of(inviter) == referral and balance_of(invitee) == referral
    assert db.session.scalar(select(func.count()).select_from(PointsPosting)) == 2


def test_self_referral_and_one_device_accounts_get_nothing(factories):
    inviter = factories.user(signup_device="d" * 32)
    record_invitation(inviter, invite_code(inviter))
    assert inviter.invited_by_id is None, "no one invites themselves"
    same_device = factories.user(signup_device="d" * 32)
    record_invitation(same_device, invite_code(inviter))
    first = factories.user(signup_device="e" * 32)
    second = factories.user(signup_device="e" * 32)
    record_invitation(first, invite_code(inviter))
    record_invitation(second, invite_code(inviter))
    db.session.commit()
    assert qualify_referral(same_device) is False
    assert qualify_referral(first) is True
    assert qualify_referral(second) is False, "one device, one referral"
    db.session.commit()
    assert balance_of(inviter) == EarningRule.get("referral").points


@pytest.mark.corrupts_ledger
def test_points_verify_catches_a_debit_with_nothing_behind_it(runner, factories):
    from sqlalchemy import insert

    member = factories.user()
    award(member, "comment", key="c", now=T0)
    db.session.execute(insert(PointsPosting).values(
        user_id=member.id, kind="spend", points=-50, reason="forged", key="forged", day=T0.date(), created_at=T0 + timedelta(hours=1)))
    db.session.commit()
    result = runner.invoke(args=["points", "verify"])
    assert result.exit_code == 1
    assert f"member {member.id}: balance -48" in result.output
    assert "48 points debited with nothing to consume" in result.output


def test_points_grant_cli(runner, factories):
    member = factories.user(login="member@example.com")
    result = runner.invoke(args=["points", "grant", "member@example.com", "300", "--reason", "线下活动补发"])
    assert result.exit_code == 0 and "balance 300" in result.output
    result = runner.invoke(args=["points", "grant", "member@example.com", "--reason", "x", "--", "-500"])
    assert result.exit_code != 0 and "below zero" in result.output
    assert balance_of(member) == 300
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "points.adjust")).actor_id is None


def test_check_in_button_on_me_and_the_points_tab_works_in_place(login_as, factories):
    member = factories.user()
    client = login_as(member)
    for page in ("/me", "/rewards", "/me/points"):
        assert 'action="/me/checkin"' in client.get(page).get_data(as_text=True)
    response = client.post("/me/checkin", headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and body.lstrip().startswith('<section class="card points-card" id="points-card">')
    assert "签到成功" in body or "+5" in body
    assert response.headers["HX-Trigger"] == "points-changed"
    again = client.post("/me/checkin", headers={"HX-Request": "true"})
    assert "HX-Trigger" not in again.headers and 'action="/me/checkin"' not in again.get_data(as_text=True)
    assert balance_of(member) == 5


def test_points_page_lists_the_ledger_with_reasons_and_pages(login_as, factories):
    member = factories.user()
    for i in range(25):
        award(member, "comment", key=f"c{i}", now=T0 + timedelta(days=i))
    db.session.commit()
    client = login_as(member)
    body = client.get("/me/points").get_data(as_text=True)
    assert body.count('class="posting credit"') == 20 and "发表评论" in body
    assert 'hx-trigger="revealed"' in body
    assert "Lv.5" in body, "the page shows what each level gives"
    oldest = min(p.id for p in db.session.scalars(select(PointsPosting).order_by(PointsPosting.id)).all()[-20:])
    more = client.get(f"/me/points?before={oldest}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert more.count('class="posting credit"') == 5 and "<html" not in more


def test_invite_link_records_the_inviter_at_signup(client, factories, communities):
    inviter = factories.user(nickname="老司机")
    response = client.get(f"/i/{invite_code(inviter)}")
    assert response.status_code == 302 and "/auth/signup" in response.headers["Location"]
    response = client.post("/auth/signup", data={"login": "friend@example.com", "nickname": "新朋友",
                                                 "password": "Abcdef123", "consent": "y"})
    assert response.status_code == 302
    assert "cy_device=" in " ".join(response.headers.getlist("Set-Cookie"))
    from models import User

    friend = User.find_by_login("friend@example.com")
    assert friend.invited_by_id == inviter.id and friend.signup_device and len(friend.signup_device) == 32


def test_expiry_job_writes_off_old_points(app, factories):
    from services.tasks import expire_points

    member = factories.user()
    award(member, "story_featured", key="old", now=datetime(2024, 1, 1, tzinfo=timezone.utc))
    award(member, "comment", key="new")
    db.session.commit()
    expire_points()
    db.session.expire_all()
    assert balance_of(member) == 2
    assert db.session.scalar(select(PointsPosting).where(PointsPosting.kind == "expire")).points == -100


def test_level_refresh_job_tells_members_whose_level_fell(app, factories):
    from models.types import utcnow
    from services.tasks import refresh_levels

    member = factories.user()
    for i in range(2):
        award(member, "story_featured", key=f"f{i}", now=utcnow() - timedelta(days=366))
    db.session.commit()
    assert member.level_number == 2
    refresh_levels()
    db.session.expire_all()
    down = db.session.scalar(select(Notification).where(Notification.kind == "level_down"))
    assert down is not None and down.params == {"level": "Lv.1"}
