"""Signup under real concurrent requests through the app, on SQLite and PostgreSQL: capacity is
never exceeded, no one is registered twice, and the waitlist keeps arrival order."""
from __future__ import annotations

from sqlalchemy import func, select

from models import db
from models.events import Event, Registration
from models.loyalty import balance_of, refund
from tests.live import LiveServer, fire_at_once, session_cookie_for


def post_call(base_url, cookie, path, data=None):
    def call(http):
        return http.post(f"{base_url}{path}", data=data or {}, cookies={"session": cookie},
                         headers={"HX-Request": "true"}, timeout=120)
    return call


def registrations(event_id, state=None):
    db.session.rollback()
    query = select(Registration).where(Registration.event_id == event_id)
    if state:
        query = query.where(Registration.state == state)
    return list(db.session.scalars(query.order_by(Registration.seq)))


def confirmed_seats(event_id) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.coalesce(func.sum(1 + Registration.companions), 0)).where(
        Registration.event_id == event_id, Registration.state == "confirmed"))


def test_two_hundred_members_race_for_twenty_seats(app, factories):
    event = factories.event(capacity=20, companions_allowed=0)
    members = [factories.user() for _ in range(200)]
    cookies = [session_cookie_for(app, m) for m in members]
    with LiveServer(app) as server:
        responses = fire_at_once([post_call(server.url, c, f"/events/{event.id}/signup") for c in cookies])
    assert all(r.status_code == 200 for r in responses), {r.status_code for r in responses}
    confirmed, waitlisted = registrations(event.id, "confirmed"), registrations(event.id, "waitlisted")
    assert len(confirmed) == 20 and len(waitlisted) == 180
    assert len({r.user_id for r in confirmed + waitlisted}) == 200, "no one registered twice"
    # Arrival order is the order the event's lock was taken: the first 20 arrivals hold the
    # seats, and the waitlist positions follow arrival without gaps.
    assert max(r.seq for r in confirmed) < min(r.seq for r in waitlisted)
    assert [r.waitlist_position() for r in waitlisted] == list(range(1, 181))
    assert sorted(r.seq for r in confirmed + waitlisted) == list(range(1, 201))


def test_one_member_clicking_ten_times_is_registered_once(app, factories):
    event = factories.event(capacity=5)
    member = factories.user()
    cookie = session_cookie_for(app, member)
    with LiveServer(app) as server:
        responses = fire_at_once([post_call(server.url, cookie, f"/events/{event.id}/signup") for _ in range(10)])
    assert sorted(r.status_code for r in responses) == [200] + [422] * 9
    assert len(registrations(event.id)) == 1
    assert confirmed_seats(event.id) == 1


def test_cancellations_racing_new_signups_never_overfill(app, factories):
    event = factories.event(capacity=20, companions_allowed=2)
    holders = [factories.user() for _ in range(20)]
    newcomers = [factories.user() for _ in range(30)]
    from models.events import SignupInput, signup

    for member in holders:
        signup(db.session.get(Event, event.id), member, SignupInput())
        db.session.commit()
    assert confirmed_seats(event.id) == 20
    calls = []
    with LiveServer(app) as server:
        calls += [post_call(server.url, session_cookie_for(app, m), f"/events/{event.id}/cancel") for m in holders[:10]]
        calls += [post_call(server.url, session_cookie_for(app, m), f"/events/{event.id}/signup",
                            {"companions": str(i % 3)}) for i, m in enumerate(newcomers)]
        responses = fire_at_once(calls)
    assert all(r.status_code == 200 for r in responses), {r.status_code for r in responses}
    taken = confirmed_seats(event.id)
    assert taken <= 20
    # Whoever is still waiting did not fit into the seats left (promotion filled what it could).
    waiting = registrations(event.id, "waitlisted")
    assert all(r.seats > 20 - taken for r in waiting)
    assert len(registrations(event.id, "cancelled")) == 10


def test_paid_seats_race_never_overdraws_points(app, factories):
    events = [factories.event(capacity=50, points_price=100, title=f"付费活动{i}") for i in range(5)]
    member = factories.user()
    refund(member, 250, key="seed", reason="test points")
    db.session.commit()
    cookie = session_cookie_for(app, member)
    with LiveServer(app) as server:
        responses = fire_at_once([post_call(server.url, cookie, f"/events/{e.id}/signup") for e in events])
    assert sorted(r.status_code for r in responses) == [200, 200, 422, 422, 422]
    db.session.rollback()
    assert balance_of(member) == 50
    assert sum(len(registrations(e.id, "confirmed")) for e in events) == 2
