"""Events: the rules of signup, the waitlist, points, priority, check-in and completion."""
from __future__ import annotations

from datetime import timedelta

import pytest

from models import DomainError, Notification, db
from models.events import (
    Registration, SignupInput, cancel_event, cancel_registration, check_in, complete_event, opens_for,
    priority_suspended_until, save_event, send_reminders, signup,
)
from models.points import award, balance_of
from models.types import SHANGHAI, shanghai_midnight, utcnow


def _notes(user, kind):
    return db.session.scalars(db.select(Notification).where(Notification.user_id == user.id,
                                                            Notification.kind == kind)).all()


def _signup(event, user, **kw):
    reg = signup(db.session.merge(event), db.session.merge(user), SignupInput(**kw))
    db.session.commit()
    return reg


def test_signup_confirms_while_seats_remain_then_waitlists_in_order(factories):
    event = factories.event(capacity=3, companions_allowed=2)
    a, b, c, d = (factories.user() for _ in range(4))
    assert _signup(event, a, companions=1).state == "confirmed"  # 2 seats
    assert _signup(event, b, companions=1).state == "waitlisted"  # would need 2, 1 left
    assert _signup(event, c).state == "confirmed"  # 1 seat fits
    reg_d = _signup(event, d)
    assert reg_d.state == "waitlisted"
    assert reg_d.waitlist_position() == 2
    assert event.seats_taken() == 3 and event.waitlist_length() == 2


def test_cancel_frees_seats_and_promotes_first_who_fits(factories):
    event = factories.event(capacity=2, companions_allowed=2)
    a, b, c = (factories.user() for _ in range(3))
    _signup(event, a, companions=1)
    _signup(event, b, companions=2)  # needs 3: never fits
    _signup(event, c)
    cancel_registration(db.session.merge(event), db.session.merge(a))
    db.session.commit()
    states = {r.user_id: r.state for r in db.session.scalars(db.select(Registration))}
    assert states == {a.id: "cancelled", b.id: "waitlisted", c.id: "confirmed"}
    assert len(_notes(c, "event_promoted")) == 1 and not _notes(b, "event_promoted")


def test_points_price_charged_on_confirm_refunded_before_deadline(factories):
    event = factories.event(capacity=1, points_price=30)
    a, b = factories.user(), factories.user()
    for u in (a, b):
        award(u, "referral", key="seed", points=100)  # hypothetical starting balance
    db.session.commit()
    _signup(event, a)
    _signup(event, b)  # waitlisted: not charged yet
    assert balance_of(a) == 70 and balance_of(b) == 100
    cancel = cancel_registration(db.session.merge(event), db.session.merge(a))
    db.session.commit()
    assert cancel.refunded == 30 and not cancel.late
    assert balance_of(a) == 100 and balance_of(b) == 70  # b promoted and charged


def test_late_cancellation_keeps_the_price(factories):
    now = utcnow()
    event = factories.event(points_price=30, cancel_deadline=now - timedelta(minutes=1),
                            starts_at=now + timedelta(days=1), signup_closes_at=now + timedelta(hours=20))
    a = factories.user()
    award(a, "referral", key="seed", points=100)
    db.session.commit()
    _signup(event, a)
    cancel = cancel_registration(db.session.merge(event), db.session.merge(a))
    db.session.commit()
    assert cancel.late and cancel.refunded == 0 and balance_of(a) == 70


def test_promotion_skips_a_member_who_can_no_longer_pay(factories):
    event = factories.event(capacity=1, points_price=50)
    a, poor, rich = factories.user(), factories.user(), factories.user()
    for u in (a, poor, rich):
        award(u, "referral", key="seed", points=60)
    db.session.commit()
    _signup(event, a)
    _signup(event, poor)
    _signup(event, rich)
    from models.points import spend
    spend(db.session.merge(poor), 20, key="spent-elsewhere")
    db.session.commit()
    cancel_registration(db.session.merge(event), db.session.merge(a))
    db.session.commit()
    assert db.session.get(Registration, _reg(event, poor).id).state == "waitlisted"
    assert _reg(event, rich).state == "confirmed"
    assert len(_notes(poor, "event_promotion_skipped")) == 1
    assert balance_of(poor) == 40 and balance_of(rich) == 10


def _reg(event, user):
    return db.session.scalar(db.select(Registration).where(Registration.event_id == event.id,
                                                           Registration.user_id == user.id))


@pytest.mark.parametrize("kw, message", [
    ({"companions": 3}, "at most 2 companions"),
])
def test_too_many_companions_is_refused(factories, kw, message):
    event = factories.event(companions_allowed=2)
    with pytest.raises(DomainError) as refused:
        _signup(event, factories.user(), **kw)
    assert "%(max)s" in refused.value.message and refused.value.params == {"max": 2}


def test_level_priority_opens_signup_early_unless_suspended(factories):
    now = utcnow()
    event = factories.event(signup_opens_at=now + timedelta(hours=30), level_priority=True)
    vip = factories.user()
    award(vip, "referral", key="growth", points=0)
    from models.points import PointsPosting
    db.session.add(PointsPosting(user_id=vip.id, kind="adjust", points=1, growth=2000, reason="test", key="g",
                                 day=now.date(), created_at=now))
    db.session.commit()
    assert opens_for(event, vip) < event.signup_opens_at
    assert priority_suspended_until(vip) is None


def test_capacity_cannot_drop_below_confirmed(factories):
    event = factories.event(capacity=3)
    for _ in range(2):
        _signup(event, factories.user(), companions=0)
    from models.events import EventInput
    data = EventInput(community=event.community, kind=event.kind, title=event.title, description="",
                      starts_at=event.starts_at, ends_at=event.ends_at, place=event.place, address=event.address,
                      map_url="", capacity=1, companions_allowed=0, signup_opens_at=event.signup_opens_at,
                      signup_closes_at=event.signup_closes_at, cancel_deadline=event.cancel_deadline)
    with pytest.raises(DomainError):
        save_event(event.organizer, data, event=db.session.merge(event))
    db.session.rollback()
    assert db.session.get(type(event), event.id).capacity == 3
