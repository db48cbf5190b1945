"""Events: the rules of signup, the waitlist, points, priority, check-in and completion."""
from __future__ import annotations

from datetime import timedelta

import pytest

from models import DomainError, Notification, db
from models.events import (
    Registration, SignupInput, cancel_event, cancel_registration, check_in, complete_event, opens_for,
    priority_suspended_until, save_event, send_reminders, signup,
)
from models.loyalty import award, balance_of
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
    from models.events import card_of

    card = card_of(event)
    assert (card.seats_taken, card.waitlisted) == (3, 2)


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
    from models.loyalty import spend
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
    from models.loyalty import PointsPosting
    db.session.add(PointsPosting(user_id=vip.id, kind="adjust", points=1, growth=2000, reason="test", key="g",
                                 day=now.date(), created_at=now))
    db.session.commit()
    assert opens_for(event, vip) < event.signup_opens_at
    assert priority_suspended_until(vip) is None
    # The same level, suspended by two no-shows: the general opening, like everyone else.
    _miss_two_events(factories, vip, now)
    assert priority_suspended_until(vip) is not None
    assert opens_for(event, vip) == event.signup_opens_at


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


def _input(event, **changes):
    from models.events import EventInput

    values = dict(community=event.community, kind=event.kind, title=event.title, description=event.description,
                  starts_at=event.starts_at, ends_at=event.ends_at, place=event.place, address=event.address,
                  map_url=event.map_url, capacity=event.capacity, companions_allowed=event.companions_allowed,
                  signup_opens_at=event.signup_opens_at, signup_closes_at=event.signup_closes_at,
                  cancel_deadline=event.cancel_deadline, points_price=event.points_price,
                  attendance_points=event.attendance_points, level_priority=event.level_priority,
                  safety_notice=event.safety_notice or "")
    values.update(changes)
    return EventInput(**values)


@pytest.mark.parametrize("changes, msgid", [
    ({"ends_at": "start"}, "The end must be after the start."),
    ({"capacity": 0}, "Capacity is between 1 and %(max)s people."),
    ({"capacity": -5}, "Capacity is between 1 and %(max)s people."),
    ({"companions_allowed": 6}, "Each member may bring 0 to %(max)s companions."),
    ({"map_url": "https://maps.google.com/?q=x"}, "Use an Amap (高德) or Baidu map link starting with https://."),
    ({"map_url": "javascript:alert(1)"}, "Use an Amap (高德) or Baidu map link starting with https://."),
    ({"kind": "road_trip", "safety_notice": ""},
     "A road trip needs a safety notice (at least 10 characters) for members to accept."),
    ({"signup_closes_at": "after start"}, "Signup must close before the event starts."),
])
def test_bad_event_input_is_refused_and_nothing_changes(factories, changes, msgid):
    event = factories.event()
    if changes.get("ends_at") == "start":
        changes["ends_at"] = event.starts_at
    if changes.get("signup_closes_at") == "after start":
        changes["signup_closes_at"] = event.starts_at + timedelta(minutes=1)
    with pytest.raises(DomainError) as refused:
        save_event(event.organizer, _input(event, **changes), event=db.session.merge(event))
    assert refused.value.message == msgid
    db.session.rollback()
    assert db.session.get(type(event), event.id).capacity == 20


def test_map_links_from_amap_and_baidu_are_kept_and_a_blank_one_is_generated(factories):
    amap = factories.event(map_url="https://surl.amap.com/abc123")
    baidu = factories.event(map_url="https://map.baidu.com/poi/x")
    blank = factories.event(map_url="")
    assert amap.map_url == "https://surl.amap.com/abc123" and baidu.map_url.startswith("https://map.baidu.com/")
    assert blank.map_url.startswith("https://uri.amap.com/search?keyword=%E4%B8%8A%E6%B5%B7")


def _refusal(event, user, **kw):
    with pytest.raises(DomainError) as refused:
        signup(db.session.merge(event), db.session.merge(user), SignupInput(**kw))
    db.session.rollback()
    mine = db.session.scalars(db.select(Registration).where(Registration.user_id == user.id,
                                                            Registration.event_id == event.id)).all()
    assert not mine or refused.value.message.startswith("You are already"), "a refusal registers no one"
    return refused.value.message


def test_signup_refusals(factories):
    now = utcnow()
    member = factories.user()
    later = factories.event(signup_opens_at=now + timedelta(hours=5), level_priority=False)
    assert _refusal(later, member) == "Signup opens for you on %(when)s."
    closed = factories.event(starts_at=now + timedelta(hours=1), signup_closes_at=now - timedelta(minutes=5),
                             signup_opens_at=now - timedelta(days=2), cancel_deadline=now - timedelta(hours=1))
    assert _refusal(closed, member) == "Signup closed on %(when)s."
    gone = factories.event()
    cancel_event(db.session.merge(gone), gone.organizer, "下雨取消，改期再约")
    db.session.commit()
    assert _refusal(gone, member) == "This event was cancelled."
    draft = factories.event(publish=False)
    assert _refusal(draft, member) == "This event is not open for signup."
    twice = factories.event()
    _signup(twice, member)
    assert _refusal(twice, member) == "You are already signed up for this event."
    priced = factories.event(points_price=500)
    assert _refusal(priced, factories.user()) == (
        "%(missing)s more points needed: this costs %(points)s, you have %(balance)s.")
    no_companions = factories.event(companions_allowed=0)
    assert _refusal(no_companions, factories.user(), companions=1) == "This event does not allow companions."


def test_road_trip_needs_safety_plate_and_emergency_contact(factories):
    trip = factories.event(kind="road_trip", safety_notice="全程限速 100，服从领队安排，车况自检。")
    member = factories.user()
    ok = dict(accept_safety=True, plate="粤B 12345", emergency_name="王女士", emergency_phone="139-0000-1111")
    assert _refusal(trip, member, **{**ok, "accept_safety": False}) == \
        "Read and accept the safety notice to join this road trip."
    assert _refusal(trip, member, **{**ok, "plate": "ABC"}) == "Enter your licence plate, such as 粤B12345."
    assert _refusal(trip, member, **{**ok, "emergency_phone": "12"}) == \
        "Give an emergency contact's name and mobile number."
    reg = _signup(trip, member, **ok)
    assert (reg.plate, reg.emergency_phone, reg.safety_accepted_at is not None) == ("粤B12345", "13900001111", True)
    ev_plate = _signup(trip, factories.user(), **{**ok, "plate": "沪AD12345"})
    assert ev_plate.plate == "沪AD12345", "new-energy plates have 8 characters"


def _vip(factories, growth=2000):
    """A member at Lv.4 (48 priority hours): growth from attended events."""
    from models.loyalty import PointsPosting

    member = factories.user()
    now = utcnow()
    for i in range(growth // 40):
        award(member, "event_attended", key=f"growth-{i}", points=0, now=now - timedelta(days=1))
    db.session.commit()
    assert sum(p.growth for p in db.session.scalars(db.select(PointsPosting))) >= growth
    return member


def test_level_priority_opens_earlier_for_higher_levels(factories):
    now = utcnow()
    vip = _vip(factories)
    newcomer = factories.user()
    event = factories.event(signup_opens_at=now + timedelta(hours=30), level_priority=True)
    assert opens_for(event, vip) == event.signup_opens_at - timedelta(hours=48)
    assert _signup(event, vip).state == "confirmed", "Lv.4 is inside their 48 priority hours"
    assert _refusal(event, newcomer) == "Signup opens for you on %(when)s."
    plain = factories.event(signup_opens_at=now + timedelta(hours=30), level_priority=False)
    assert _refusal(plain, vip) == "Signup opens for you on %(when)s.", "the event does not use priority"


def _miss_two_events(factories, member, now, days_ago=(40, 10)):
    """MEMBER holds a seat at two past events and shows up at neither (completed: no-shows)."""
    organizer = factories.user(role="organizer", community=factories.communities()["ev"])
    for ago in days_ago:
        past = factories.event(organizer=organizer, starts_at=now - timedelta(days=ago),
                               signup_opens_at=now - timedelta(days=ago + 5),
                               cancel_deadline=now - timedelta(days=ago + 1),
                               signup_closes_at=now - timedelta(days=ago, hours=1), publish=False)
        past.status = "published"
        db.session.add(Registration(event_id=past.id, user_id=member.id, state="confirmed", seq=1,
                                    ticket_token=f"tok-{member.id}-{ago}-xxxxxxxxxx", code=f"A{member.id % 10}{ago}Z"[:6]))
        db.session.commit()
        complete_event(db.session.merge(past), organizer)
        db.session.commit()


def test_two_no_shows_in_ninety_days_suspend_priority_for_ninety_days(factories):
    now = utcnow()
    vip = _vip(factories)
    _miss_two_events(factories, vip, now)
    until = priority_suspended_until(vip)
    assert until is not None and until.date() == (now - timedelta(days=10) + timedelta(hours=3) + timedelta(days=90)).date()
    event = factories.event(signup_opens_at=now + timedelta(hours=30), level_priority=True)
    assert opens_for(event, vip) == event.signup_opens_at
    assert priority_suspended_until(vip, now + timedelta(days=81)) is None, "back after 90 days"


def test_one_no_show_keeps_priority(factories):
    now = utcnow()
    vip = _vip(factories)
    past = factories.event(starts_at=now - timedelta(days=5), signup_opens_at=now - timedelta(days=9),
                           cancel_deadline=now - timedelta(days=6), signup_closes_at=now - timedelta(days=5, hours=1),
                           publish=False)
    past.status = "published"
    db.session.add(Registration(event_id=past.id, user_id=vip.id, state="confirmed", seq=1,
                                ticket_token="tok-one-xxxxxxxxxxxxxx", code="ABCDEF"))
    db.session.commit()
    complete_event(db.session.merge(past), None)
    db.session.commit()
    assert priority_suspended_until(vip) is None


def _started(factories, **kw):
    """A published event that started an hour ago (created in the past through `now`)."""
    from models.events import EventInput, publish_event

    now = utcnow()
    then = now - timedelta(days=3)
    community = factories.communities()["ev"]
    organizer = kw.pop("organizer", None) or factories.user(role="organizer", community=community)
    values = dict(community=community, kind="meetup", title="夜骑充电站", description="", starts_at=now - timedelta(hours=1),
                  ends_at=now + timedelta(hours=2), place="充电站", address="上海市徐汇区龙腾大道 1 号", map_url="",
                  capacity=10, companions_allowed=2, signup_opens_at=then, signup_closes_at=now - timedelta(hours=2),
                  cancel_deadline=now - timedelta(days=1), attendance_points=80)
    values.update(kw)
    event = save_event(organizer, EventInput(**values), now=then)
    publish_event(event, organizer, now=then)
    db.session.commit()
    return event, organizer, then


def _signed_up(event, user, when, **kw):
    reg = signup(db.session.merge(event), db.session.merge(user), SignupInput(**kw), now=when)
    db.session.commit()
    return reg


def test_check_in_keeps_the_earliest_scan_and_replays_are_harmless(factories):
    event, organizer, then = _started(factories)
    reg = _signed_up(event, factories.user(), then + timedelta(hours=1), companions=2)
    now = utcnow()
    later, earlier = now - timedelta(minutes=5), now - timedelta(minutes=20)
    first = check_in(db.session.merge(event), reg.display_code.lower(), organizer, scanned_at=later)
    db.session.commit()
    assert first.first and first.registration.checked_in_at == later
    replay = check_in(db.session.merge(event), reg.code, organizer, scanned_at=later)
    db.session.commit()
    assert not replay.first and replay.registration.checked_in_at == later
    offline = check_in(db.session.merge(event), f"https://x.example/events/t/{reg.ticket_token}", organizer,
                       scanned_at=earlier)
    db.session.commit()
    assert offline.registration.checked_in_at == earlier, "a device that was offline scanned first"
    future = check_in(db.session.merge(event), reg.code, organizer, scanned_at=now + timedelta(days=2))
    assert future.registration.checked_in_at == earlier


def test_check_in_refuses_forged_and_foreign_tickets(factories):
    event, organizer, then = _started(factories)
    other, _, _ = _started(factories, title="别的活动", organizer=organizer)
    foreign = _signed_up(other, factories.user(), then + timedelta(hours=1))
    waiting_event, _, _ = _started(factories, capacity=1, organizer=organizer)
    _signed_up(waiting_event, factories.user(), then + timedelta(hours=1))
    waiting = _signed_up(waiting_event, factories.user(), then + timedelta(hours=2))
    for text, msgid in [
        ("ZZZZZZ", "No ticket matches this code. Check it and try again."),
        ("not a ticket at all!", "No ticket matches this code. Check it and try again."),
        ("x" * 24, "No ticket matches this code. Check it and try again."),
        (foreign.ticket_token, "This ticket is for another event: %(title)s."),
        (foreign.code, "No ticket matches this code. Check it and try again."),
    ]:
        with pytest.raises(DomainError) as refused:
            check_in(db.session.merge(event), text, organizer)
        assert refused.value.message == msgid, text
    with pytest.raises(DomainError) as refused:
        check_in(db.session.merge(waiting_event), waiting.code, organizer)
    assert "waitlist" in refused.value.message
    db.session.rollback()
    assert db.session.scalar(db.select(db.func.count()).select_from(Registration)
                             .where(Registration.checked_in_at.is_not(None))) == 0


def test_completion_pays_attendance_counts_no_shows_and_qualifies_the_referral(factories):
    from models.loyalty import PointsPosting

    event, organizer, then = _started(factories)
    inviter = factories.user()
    invited = factories.user(invited_by_id=inviter.id, signup_device="phone-a")
    absent = factories.user()
    present = _signed_up(event, invited, then + timedelta(hours=1))
    _signed_up(event, absent, then + timedelta(hours=1))
    check_in(db.session.merge(event), present.code, organizer)
    attended, no_shows = complete_event(db.session.merge(event), organizer)
    assert balance_of(invited) == 0, "the rewards are a job's work, queued for after the commit"
    db.session.commit()
    assert (attended, no_shows) == (1, 1)
    earned = db.session.scalar(db.select(PointsPosting).where(PointsPosting.user_id == invited.id,
                                                              PointsPosting.rule == "event_attended"))
    assert earned.points == 80 and earned.growth == 40, "the event's reward, the rule's growth"
    assert balance_of(inviter) > 0, "a first attended event pays the referral"
    assert db.session.scalar(db.select(Registration.no_show).where(Registration.user_id == absent.id))
    # A check-in synced after the event was closed still counts, and pays once.
    check_in(db.session.merge(event), _reg(event, absent).code, organizer)
    check_in(db.session.merge(event), _reg(event, absent).code, organizer)
    db.session.commit()
    assert not _reg(event, absent).no_show
    assert db.session.scalar(db.select(db.func.count()).select_from(PointsPosting).where(
        PointsPosting.user_id == absent.id, PointsPosting.rule == "event_attended")) == 1


def test_an_event_is_completed_only_once_it_started(factories):
    event = factories.event()
    with pytest.raises(DomainError):
        complete_event(db.session.merge(event), event.organizer)


def test_cancelling_an_event_refunds_and_tells_everyone(factories):
    event = factories.event(capacity=1, points_price=40)
    paid, waiting = factories.user(), factories.user()
    for u in (paid, waiting):
        award(u, "referral", key="seed", points=100)
    db.session.commit()
    _signup(event, paid)
    _signup(event, waiting)
    assert balance_of(paid) == 60
    told = cancel_event(db.session.merge(event), event.organizer, "暴雨预警，活动取消，抱歉！")
    assert balance_of(paid) == 60, "refunds are a job's work, queued for after the commit"
    db.session.commit()
    assert told == 2 and balance_of(paid) == 100 and balance_of(waiting) == 100
    for user, kind in ((paid, "event_cancelled_refunded"), (waiting, "event_cancelled")):
        (note,) = _notes(user, kind)  # only who paid hears of a refund
        assert note.params["message"] == "暴雨预警，活动取消，抱歉！"
    with pytest.raises(DomainError):
        cancel_event(db.session.merge(event), event.organizer, "再取消一次看看")


def test_raising_capacity_promotes_the_waitlist(factories):
    event = factories.event(capacity=1)
    _signup(event, factories.user())
    waiting = factories.user()
    _signup(event, waiting)
    save_event(event.organizer, _input(event, capacity=2), event=db.session.merge(event))
    db.session.commit()
    assert _reg(event, waiting).state == "confirmed" and len(_notes(waiting, "event_promoted")) == 1


def test_reminders_go_out_the_day_before_once(factories):
    from datetime import datetime

    tomorrow_noon = datetime.combine(utcnow().astimezone(SHANGHAI).date() + timedelta(days=1),
                                     datetime.min.time().replace(hour=12), tzinfo=SHANGHAI)
    event = factories.event(starts_at=tomorrow_noon, cancel_deadline=tomorrow_noon - timedelta(hours=3),
                            signup_closes_at=tomorrow_noon - timedelta(hours=1))
    in_a_week = factories.event()
    member, waiting = factories.user(), factories.user()
    _signup(event, member)
    _signup(in_a_week, member)
    event_full = factories.event(capacity=1, starts_at=tomorrow_noon, cancel_deadline=tomorrow_noon - timedelta(hours=3),
                                 signup_closes_at=tomorrow_noon - timedelta(hours=1))
    _signup(event_full, factories.user())
    _signup(event_full, waiting)
    day_before_10am = shanghai_midnight(tomorrow_noon.date() - timedelta(days=1)) + timedelta(hours=10)
    assert send_reminders(day_before_10am - timedelta(hours=4)) == 0, "not at 6 in the morning"
    send_reminders(day_before_10am)
    send_reminders(day_before_10am + timedelta(hours=1))
    db.session.commit()
    (note,) = _notes(member, "event_reminder")
    assert note.params["time"] == "12:00" and note.link == f"/events/{event.id}"
    assert not _notes(waiting, "event_reminder"), "only confirmed members"


def test_the_worker_closes_events_nobody_marked_completed(app, factories):
    from models.outbox import periodic_jobs
    from services.jobs import execute

    assert {"services.tasks.remind_events", "services.tasks.complete_events"} <= set(periodic_jobs())
    now = utcnow()
    over, organizer, then = _started(factories, starts_at=now - timedelta(hours=10), ends_at=now - timedelta(hours=7),
                                     signup_closes_at=now - timedelta(hours=11), cancel_deadline=now - timedelta(days=1))
    running, _, _ = _started(factories, organizer=organizer)
    present = _signed_up(over, factories.user(), then + timedelta(hours=1))
    check_in(db.session.merge(over), present.code, organizer)
    db.session.commit()
    execute(app, "services.tasks.complete_events", [])
    db.session.rollback()
    assert db.session.get(type(over), over.id).status == "completed"
    assert db.session.get(type(running), running.id).status == "published", "still running: left alone"
    assert balance_of(present.user) == 80


def test_a_community_page_shows_its_next_events(client, factories):
    communities = factories.communities()
    soon = factories.event(community=communities["ev"], title="电池体检日")
    factories.event(community=communities["women"], title="她车社夜聊")
    draft = factories.event(community=communities["ev"], title="还在筹备", publish=False)
    page = client.get("/c/ev").get_data(as_text=True)
    assert f'href="/events/{soon.id}"' in page and "电池体检日" in page
    assert "她车社夜聊" not in page and draft.title not in page


def test_an_organizers_events_list_what_is_coming_soonest_first_then_the_past(factories):
    from models.events import managed_by

    now = utcnow()
    organizer = factories.user(role="organizer", community=factories.communities()["ev"])
    later = factories.event(organizer=organizer, title="下个月", starts_at=now + timedelta(days=30))
    soon = factories.event(organizer=organizer, title="下周", starts_at=now + timedelta(days=7))

    def past(title, days_ago):
        event = factories.event(organizer=organizer, title=title, publish=False,
                                starts_at=now - timedelta(days=days_ago),
                                signup_opens_at=now - timedelta(days=days_ago + 9),
                                signup_closes_at=now - timedelta(days=days_ago + 1),
                                cancel_deadline=now - timedelta(days=days_ago + 1))
        event.status = "completed"
        db.session.commit()
        return event

    old, recent = past("上个月", 30), past("上周", 7)
    assert [c.event.title for c in managed_by(organizer)] == ["下周", "下个月", "上周", "上个月"]
    assert [c.event.id for c in managed_by(factories.user(role="admin"))] == [soon.id, later.id, recent.id, old.id]
