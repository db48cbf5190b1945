"""The member's event pages: the listing, an event's page, signup and cancellation through HTTP,
the calendar file and "My tickets"."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from icalendar import Calendar
from sqlalchemy import func, select

from models import db
from models.events import Event, Registration, SignupInput, cancel_event, check_in, complete_event, signup
from models.loyalty import award, balance_of
from models.types import add_months, shanghai_day, shanghai_midnight, utcnow
from tests.html import assert_no_inline_code

HX = {"HX-Request": "true"}
TRIP_NOTICE = "全程限速 100，服从领队安排，出发前自检车况。"
TRIP_OK = {"accept_safety": "1", "plate": "粤B12345", "emergency_name": "王女士", "emergency_phone": "13900001111"}


def english(client):
    """Assert on English text: the Chinese catalogue is filled in by the lead at the end."""
    client.set_cookie("lang", "en")
    return client


@pytest.fixture
def member(factories):
    return factories.user(nickname="车友小李")


@pytest.fixture
def member_client(login_as, member):
    return english(login_as(member))


def _regs(event_id=None):
    db.session.expire_all()
    query = select(Registration).order_by(Registration.seq)
    if event_id is not None:
        query = query.where(Registration.event_id == event_id)
    return list(db.session.scalars(query))


def _card_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'id="event-card-(\d+)"', html)]


def _give(user, points=100):
    award(user, "referral", key=f"gift-{user.id}", points=points)
    db.session.commit()


def _at_month(months_ahead: int, day: int = 15, hour: int = 10) -> datetime:
    """A Shanghai local time in the month MONTHS_AHEAD from now, as UTC."""
    first = add_months(shanghai_day().replace(day=1), months_ahead)
    return shanghai_midnight(first.replace(day=day)) + timedelta(hours=hour)


# --- the listing ---------------------------------------------------------------------------

def test_listing_shows_upcoming_published_events_with_seats_and_my_status(factories, member, member_client, client):
    soon = factories.event(title="周末充电站聚会", capacity=3, companions_allowed=2, points_price=20)
    later = factories.event(title="山路自驾", starts_at=utcnow() + timedelta(days=20))
    draft = factories.event(title="草稿活动", publish=False)
    over = factories.event(title="已取消的活动")
    cancel_event(db.session.merge(over), over.organizer, "场地临时关闭，抱歉")
    db.session.commit()
    _give(member)
    assert member_client.post(f"/events/{soon.id}/signup", data={"companions": "2"}).status_code == 303
    other = factories.user()  # the event is full: they wait
    _give(other)
    signup(db.session.merge(soon), db.session.merge(other), SignupInput())
    db.session.commit()
    english(client)

    page = member_client.get("/events")
    assert page.status_code == 200
    assert _card_ids(page.text) == [soon.id, later.id], "soonest first; drafts and cancelled events hidden"
    card = page.text.split(f'id="event-card-{soon.id}"')[1].split("</article>")[0]
    assert 'data-seats-left="0"' in card and 'data-waitlist="1"' in card
    assert "Full" in card and "1 on the waitlist" in card and "20 points" in card
    assert 'data-my-status="confirmed"' in card
    assert 'data-my-status' not in page.text.split(f'id="event-card-{later.id}"')[1].split("</article>")[0]
    assert assert_no_inline_code(page.text)

    visitor = client.get("/events")
    assert visitor.status_code == 200 and _card_ids(visitor.text) == [soon.id, later.id]
    assert "data-my-status=" not in visitor.text.split('id="event-list"')[1]


def test_listing_filters_by_community_and_month(factories, client, communities):
    ev, other = communities["ev"], next(c for slug, c in communities.items() if slug != "ev")
    next_month = factories.event(title="下个月", community=ev, starts_at=_at_month(1))
    two_months = factories.event(title="两个月后", community=ev, starts_at=_at_month(2))
    elsewhere = factories.event(title="别的社区", community=other, starts_at=_at_month(1, day=16))
    english(client)
    assert _card_ids(client.get("/events").text) == [next_month.id, elsewhere.id, two_months.id]
    assert _card_ids(client.get(f"/events?community={other.slug}").text) == [elsewhere.id]
    month = add_months(shanghai_day().replace(day=1), 1).strftime("%Y-%m")
    assert _card_ids(client.get(f"/events?month={month}").text) == [next_month.id, elsewhere.id]
    assert _card_ids(client.get(f"/events?month={month}&community={ev.slug}").text) == [next_month.id]
    page = client.get(f"/events?month={month}&community={ev.slug}").text
    assert f'<option value="{month}" selected>' in page, "the month select keeps the choice"
    assert page.count("<option value=") == 7, "all upcoming + the next six months"
    # htmx filter change: only the filters and the list come back
    fragment = client.get(f"/events?community={other.slug}", headers=HX)
    assert fragment.text.lstrip().startswith("<div id=\"events-browse\"") and "<html" not in fragment.text
    # nonsense filters are ignored, not errors
    assert _card_ids(client.get("/events?month=2026-13&community=nope").text) == [next_month.id, elsewhere.id,
                                                                                 two_months.id]
    empty = client.get(f"/events?month={add_months(shanghai_day().replace(day=1), 4):%Y-%m}")
    assert empty.status_code == 200 and "No meetups coming up here yet." in empty.text


def test_listing_pages_with_a_cursor_loaded_when_revealed(factories, client, communities):
    organizer = factories.user(role="organizer", community=communities["ev"])
    start = utcnow() + timedelta(days=3)
    events = [factories.event(organizer=organizer, title=f"聚会 {i:02d}", starts_at=start + timedelta(hours=i))
              for i in range(22)]
    first = client.get("/events").text
    assert _card_ids(first) == [e.id for e in events[:20]]
    more = re.search(r'<div class="load-more" hx-get="([^"]+)" hx-trigger="revealed"', first)
    assert more, "the next page loads when the end of the list is revealed"
    url = more.group(1).replace("&amp;", "&")
    second = client.get(url, headers=HX)
    assert _card_ids(second.text) == [e.id for e in events[20:]]
    assert "load-more" not in second.text and "<html" not in second.text
    without_js = client.get(url)  # the "More events" link, followed without htmx: a whole page
    assert without_js.status_code == 200 and "<html" in without_js.text
    assert _card_ids(without_js.text) == [e.id for e in events[20:]]


def test_listing_costs_the_same_queries_for_2_and_15_events(factories, login_as, communities, count_queries):
    viewer = factories.user()
    organizer = factories.user(role="organizer", community=communities["ev"])
    client = login_as(viewer)

    def add(n):
        for i in range(n):
            community = list(communities.values())[i % len(communities)]
            event = factories.event(community=community, organizer=organizer if community.id == communities["ev"].id
                                    else None, title=f"活动 {i}", starts_at=utcnow() + timedelta(days=2 + i),
                                    cover_thumb_key=f"events/{i}.jpg" if i % 2 else None)
            if i % 3 == 0:
                signup(db.session.merge(event), db.session.merge(viewer), SignupInput())
            db.session.commit()

    def queries():
        with count_queries() as counter:
            response = client.get("/events")
            assert response.status_code == 200
        return counter["n"], len(_card_ids(response.text))

    add(2)
    few, shown = queries()
    assert shown == 2
    add(13)
    many, shown = queries()
    assert shown == 15
    assert many == few, (few, many)


# --- an event's page -----------------------------------------------------------------------

def test_event_page_shows_everything_a_member_needs(factories, member_client, client):
    trip = factories.event(title="川西自驾", kind="road_trip", safety_notice=TRIP_NOTICE, points_price=30,
                           attendance_points=40, companions_allowed=1, description="**带好**对讲机",
                           map_url="https://uri.amap.com/marker?position=104.06,30.67")
    page = member_client.get(f"/events/{trip.id}")
    assert page.status_code == 200
    html = page.text
    assert "川西自驾" in html and trip.place in html and trip.address in html
    assert '<strong>带好</strong>' in html, "the sanitized description renders as HTML"
    assert 'href="https://uri.amap.com/marker?position=104.06,30.67" rel="noopener" target="_blank"' in html
    assert trip.organizer.nickname in html
    assert "30 points, charged when your seat is confirmed" in html and "40 points when you check in" in html
    assert "Each member may bring 1 companion" in html and "Cancel before" in html
    assert 'id="signup"' in html and 'name="accept_safety"' in html and TRIP_NOTICE in html
    assert 'name="plate"' in html and 'name="emergency_name"' in html and 'name="emergency_phone"' in html
    assert "/manage" not in html, "no organizer tools for members"
    assert_no_inline_code(html)

    english(client)
    visitor = client.get(f"/events/{trip.id}").text
    assert "Log in to sign up" in visitor and f"/auth/login?next=/events/{trip.id}" in visitor
    assert 'name="plate"' not in visitor


def test_level_priority_note_and_when_signup_opens_for_me(factories, member_client):
    event = factories.event(signup_opens_at=utcnow() + timedelta(days=2), level_priority=True)
    html = member_client.get(f"/events/{event.id}").text
    assert "data-priority" in html and re.search(r"Lv\.\d\+ members can sign up up to \d+ hours early", html)
    button = re.search(r'<button class="button block" type="button" disabled data-opens="([^"]+)">([^<]+)</button>',
                       html)
    assert button and "Signup opens for you on" in button.group(2)
    assert datetime.fromisoformat(button.group(1)) == event.signup_opens_at
    plain = factories.event(level_priority=False)
    assert "data-priority" not in member_client.get(f"/events/{plain.id}").text


def test_suspended_priority_is_explained(factories, member, member_client):
    now = utcnow()
    organizer = factories.user(role="organizer")
    for days in (40, 20):  # two no-shows within 90 days
        past = factories.event(organizer=organizer, publish=False, starts_at=now - timedelta(days=days),
                               signup_opens_at=now - timedelta(days=days + 5),
                               cancel_deadline=now - timedelta(days=days + 1))
        past.status = "completed"
        db.session.add(Registration(event_id=past.id, user_id=member.id, state="confirmed", seq=1,
                                    ticket_token=f"tok-{days}-abcdefghijklmnop", code=f"AB{days}CD"[:6],
                                    no_show=True))
        db.session.commit()
    event = factories.event(signup_opens_at=now + timedelta(hours=10), level_priority=True)
    html = member_client.get(f"/events/{event.id}").text
    assert "data-suspended" in html and "Your early signup is paused until" in html


def test_drafts_are_hidden_from_members_and_shown_to_organizers(factories, member_client, login_as, client,
                                                                communities):
    draft = factories.event(title="还没发布", publish=False)
    assert member_client.get(f"/events/{draft.id}").status_code == 404
    assert client.get(f"/events/{draft.id}").status_code == 404
    assert client.get(f"/events/{draft.id}/calendar.ics").status_code == 404
    assert member_client.post(f"/events/{draft.id}/signup").status_code == 404
    organizer = english(login_as(draft.organizer))
    page = organizer.get(f"/events/{draft.id}")
    assert page.status_code == 200 and 'data-banner="draft"' in page.text
    assert f"/events/{draft.id}/manage" in page.text and f"/events/{draft.id}/checkin" in page.text
    assert "还没发布" not in organizer.get("/events").text, "the listing shows published events only"
    elsewhere = factories.user(role="organizer", community=next(c for s, c in communities.items() if s != "ev"))
    assert login_as(elsewhere).get(f"/events/{draft.id}").status_code == 404


def test_cancelled_event_shows_its_message(factories, client):
    event = factories.event()
    cancel_event(db.session.merge(event), event.organizer, "台风预警，活动取消，改期另行通知")
    db.session.commit()
    html = english(client).get(f"/events/{event.id}").text
    assert 'data-banner="cancelled"' in html and "台风预警，活动取消，改期另行通知" in html
    assert "This event was cancelled: signup is closed." in html and "Log in to sign up" not in html


# --- signup and cancellation through HTTP --------------------------------------------------

def test_signup_with_htmx_swaps_in_the_ticket_and_charges_points(factories, member, member_client):
    event = factories.event(points_price=30, companions_allowed=2)
    _give(member, 100)
    response = member_client.post(f"/events/{event.id}/signup", data={"companions": "1"}, headers=HX)
    assert response.status_code == 200
    html = response.text
    assert html.lstrip().startswith('<section id="signup"') and "<html" not in html
    assert response.headers["HX-Trigger"] == "points-changed"
    (reg,) = _regs(event.id)
    assert (reg.state, reg.companions, reg.points_paid) == ("confirmed", 1, 30)
    assert balance_of(member) == 70
    assert 'data-my-status="confirmed"' in html and "<svg" in html and 'class="qr event-qr-code"' in html
    assert reg.display_code in html and "You and 1 companion" in html
    assert 'data-seats-left>18<' in html, "20 seats, 2 taken by the member and a companion"
    assert f"/events/{event.id}/calendar.ics" in html
    assert 'data-refund="yes"' in html, "cancelling now would refund the points"


def test_signup_without_javascript_redirects_with_a_flash(factories, member_client):
    event = factories.event()
    response = member_client.post(f"/events/{event.id}/signup", data={"companions": "0"})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/events/{event.id}")
    page = member_client.get(f"/events/{event.id}").text
    assert "You&#39;re in! Show this ticket at the venue." in page and 'data-my-status="confirmed"' in page
    assert [r.state for r in _regs(event.id)] == ["confirmed"]


def test_full_event_puts_the_member_on_the_waitlist_with_a_position(factories, member_client, login_as):
    event = factories.event(capacity=1, companions_allowed=0)
    first, second = factories.user(), factories.user()
    assert login_as(first).post(f"/events/{event.id}/signup", headers=HX).status_code == 200
    assert login_as(second).post(f"/events/{event.id}/signup", headers=HX).status_code == 200
    page = member_client.get(f"/events/{event.id}").text
    assert "Join the waitlist" in page
    response = member_client.post(f"/events/{event.id}/signup", headers=HX)
    assert response.status_code == 200 and "HX-Trigger" not in response.headers
    assert 'data-my-status="waitlisted"' in response.text and 'data-waitlist-position="2"' in response.text
    assert "number 2 on the waitlist" in response.text and "event-qr-code" not in response.text
    assert [r.state for r in _regs(event.id)] == ["confirmed", "waitlisted", "waitlisted"]


def test_cancel_refunds_and_promotes_the_next_member(factories, member, member_client, login_as):
    event = factories.event(capacity=1, companions_allowed=0, points_price=40)
    waiting = factories.user()
    _give(member, 100)
    _give(waiting, 100)
    member_client.post(f"/events/{event.id}/signup", headers=HX)
    login_as(waiting).post(f"/events/{event.id}/signup", headers=HX)
    assert balance_of(member) == 60 and balance_of(waiting) == 100
    response = member_client.post(f"/events/{event.id}/cancel", headers=HX)
    assert response.status_code == 200 and response.headers["HX-Trigger"] == "points-changed"
    assert "40 points are back in your account" in response.text
    assert 'data-my-status="none"' in response.text and 'data-signup' in response.text, "the form is back"
    assert "data-seats-left>0<" in response.text, "the freed seat went to the waitlist"
    db.session.expire_all()
    assert balance_of(member) == 100 and balance_of(waiting) == 60
    states = {r.user_id: r.state for r in _regs(event.id)}
    assert states == {member.id: "cancelled", waiting.id: "confirmed"}
    promoted = english(login_as(waiting)).get(f"/events/{event.id}").text
    assert 'data-my-status="confirmed"' in promoted and "data-ticket-code" in promoted


def test_late_cancel_says_points_are_kept(factories, member, member_client):
    now = utcnow()
    event = factories.event(points_price=10, cancel_deadline=now + timedelta(minutes=1))
    _give(member, 100)
    member_client.post(f"/events/{event.id}/signup", headers=HX)
    db.session.execute(db.update(Event).where(Event.id == event.id).values(cancel_deadline=now - timedelta(hours=1)))
    db.session.commit()
    page = member_client.get(f"/events/{event.id}").text
    assert 'data-refund="no"' in page and "are not refunded" in page
    response = member_client.post(f"/events/{event.id}/cancel")
    assert response.status_code == 303
    assert "the points are not refunded" in member_client.get(f"/events/{event.id}").text
    db.session.expire_all()
    assert balance_of(member) == 90


def test_cancel_without_a_signup_is_refused(factories, member_client):
    event = factories.event()
    response = member_client.post(f"/events/{event.id}/cancel", headers=HX)
    assert response.status_code == 422 and "You are not signed up for this event." in response.text


def _refused(client, event, data, message, *, member=None, balance=None):
    before = [(r.id, r.state, r.companions, r.points_paid) for r in _regs(event.id)]
    response = client.post(f"/events/{event.id}/signup", data=data, headers=HX)
    assert response.status_code == 422, response.text
    assert message in response.text
    assert 'role="alert" id="signup-error"' in response.text
    assert [(r.id, r.state, r.companions, r.points_paid) for r in _regs(event.id)] == before, "nothing changed"
    if member is not None:
        assert balance_of(member) == balance
    return response


def test_every_bad_signup_is_refused_with_a_clear_message(factories, member, member_client, login_as):
    now = utcnow()
    not_yet = factories.event(signup_opens_at=now + timedelta(hours=5), level_priority=False)
    _refused(member_client, not_yet, {}, "Signup opens for you on")
    closed = factories.event(starts_at=now + timedelta(hours=3), signup_opens_at=now - timedelta(days=2),
                             signup_closes_at=now - timedelta(minutes=5), cancel_deadline=now - timedelta(hours=1))
    _refused(member_client, closed, {}, "Signup closed on")
    assert "Signup is closed." in member_client.get(f"/events/{closed.id}").text
    gone = factories.event()
    cancel_event(db.session.merge(gone), gone.organizer, "下雨取消，改期再约")
    db.session.commit()
    _refused(member_client, gone, {}, "This event was cancelled.")
    twice = factories.event()
    assert member_client.post(f"/events/{twice.id}/signup", headers=HX).status_code == 200
    _refused(member_client, twice, {}, "You are already signed up for this event.")
    crowded = factories.event(companions_allowed=2)
    _refused(member_client, crowded, {"companions": "3"}, "You can bring at most 2 companions.")
    _refused(member_client, crowded, {"companions": "lots"}, "You can bring at most 2 companions.")
    _refused(member_client, factories.event(companions_allowed=0), {"companions": "1"},
             "This event does not allow companions.")
    priced = factories.event(points_price=150)
    _give(member, 100)
    _refused(member_client, priced, {}, "50 more points needed: this costs 150, you have 100.",
             member=member, balance=100)


@pytest.mark.parametrize("change, message", [
    ({"accept_safety": None}, "Read and accept the safety notice to join this road trip."),
    ({"plate": "ABC123"}, "Enter your licence plate, such as 粤B12345."),
    ({"emergency_name": ""}, "Give an emergency contact&#39;s name and mobile number."),
    ({"emergency_phone": "12345"}, "Give an emergency contact&#39;s name and mobile number."),
])
def test_road_trip_refusals_keep_what_was_typed(factories, member_client, change, message):
    trip = factories.event(kind="road_trip", safety_notice=TRIP_NOTICE, companions_allowed=2)
    data = {**TRIP_OK, "companions": "2", **change}
    data = {k: v for k, v in data.items() if v is not None}
    response = _refused(member_client, trip, data, message)
    html = response.text
    for field in ("plate", "emergency_name", "emergency_phone"):
        assert f'name="{field}" value="{data.get(field, "")}"' in html, field
    assert '<option value="2" selected>' in html, "the companions choice is kept"
    checked = re.search(r'name="accept_safety" value="1" aria-required="true"\s*(checked)?', html)
    assert bool(checked.group(1)) == ("accept_safety" in data)


def test_road_trip_error_without_javascript_rerenders_the_page_with_values(factories, member_client):
    trip = factories.event(kind="road_trip", safety_notice=TRIP_NOTICE)
    response = member_client.post(f"/events/{trip.id}/signup", data={**TRIP_OK, "accept_safety": ""})
    assert response.status_code == 422 and "<html" in response.text
    assert "Read and accept the safety notice" in response.text and 'value="粤B12345"' in response.text
    ok = member_client.post(f"/events/{trip.id}/signup", data={**TRIP_OK, "plate": "粤b 12345"})
    assert ok.status_code == 303
    (reg,) = _regs(trip.id)
    assert (reg.state, reg.plate, reg.emergency_name) == ("confirmed", "粤B12345", "王女士")


def test_signup_needs_login_and_a_csrf_token(factories, client, member_client, csrf_on):
    event = factories.event()
    anonymous = client.post(f"/events/{event.id}/signup")
    assert anonymous.status_code in (302, 400)
    response = member_client.post(f"/events/{event.id}/signup", data={"companions": "0"})
    assert response.status_code == 400
    assert _regs(event.id) == []


def test_signup_redirects_visitors_to_login(factories, client, app):
    event = factories.event()
    response = client.post(f"/events/{event.id}/signup")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    hx = client.post(f"/events/{event.id}/signup", headers=HX)
    assert hx.status_code == 401 and "/auth/login" in hx.headers["HX-Redirect"]


# --- the calendar file ---------------------------------------------------------------------

def test_calendar_file_in_shanghai_time(factories, client):
    start = shanghai_midnight(shanghai_day() + timedelta(days=10)) + timedelta(hours=9, minutes=30)
    event = factories.event(title="滨江夜骑", starts_at=start, description="集合后**统一出发**")
    response = client.get(f"/events/{event.id}/calendar.ics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert response.headers["Content-Disposition"].startswith("attachment; filename=")
    assert ".ics" in response.headers["Content-Disposition"]
    cal = Calendar.from_ical(response.data)
    assert [tz["TZID"] for tz in cal.walk("VTIMEZONE")] == ["Asia/Shanghai"]
    (vevent,) = cal.walk("VEVENT")
    assert str(vevent["UID"]) == f"event-{event.id}@cheyou"
    assert vevent["DTSTART"].params["TZID"] == "Asia/Shanghai"
    local = vevent.decoded("DTSTART")
    assert (local.hour, local.minute) == (9, 30) and local.utcoffset() == timedelta(hours=8)
    assert local == start and vevent.decoded("DTEND") == event.ends_at
    assert str(vevent["SUMMARY"]) == "滨江夜骑"
    assert str(vevent["LOCATION"]) == f"{event.place}, {event.address}"
    description = str(vevent["DESCRIPTION"])
    assert "集合后统一出发" in description and "<" not in description and f"/events/{event.id}" in description
    assert str(vevent["URL"]).endswith(f"/events/{event.id}")
    assert str(vevent["STATUS"]) == "CONFIRMED"


def test_calendar_file_of_a_cancelled_event_says_so(factories, client):
    event = factories.event()
    cancel_event(db.session.merge(event), event.organizer, "场地维修，改期")
    db.session.commit()
    (vevent,) = Calendar.from_ical(client.get(f"/events/{event.id}/calendar.ics").data).walk("VEVENT")
    assert str(vevent["STATUS"]) == "CANCELLED"


# --- my tickets ----------------------------------------------------------------------------

def test_my_tickets_show_qr_code_position_and_past_outcomes(factories, member, member_client, login_as):
    now = utcnow()
    coming = factories.event(title="即将到来")
    full = factories.event(title="满员活动", capacity=1, companions_allowed=0)
    login_as(factories.user()).post(f"/events/{full.id}/signup")
    member_client.post(f"/events/{coming.id}/signup")
    member_client.post(f"/events/{full.id}/signup")
    called_off = factories.event(title="被取消的")
    member_client.post(f"/events/{called_off.id}/signup")
    cancel_event(db.session.merge(called_off), called_off.organizer, "天气原因取消")
    db.session.commit()
    for title, shows_up in (("参加过的", True), ("错过的", False)):
        past = factories.event(title=title, starts_at=now + timedelta(hours=3),
                               signup_closes_at=now + timedelta(hours=1), cancel_deadline=now + timedelta(hours=1))
        member_client.post(f"/events/{past.id}/signup")
        db.session.execute(db.update(Event).where(Event.id == past.id)
                           .values(starts_at=now - timedelta(hours=5), ends_at=now - timedelta(hours=2),
                                   signup_opens_at=now - timedelta(days=3), signup_closes_at=now - timedelta(hours=6),
                                   cancel_deadline=now - timedelta(hours=6)))
        db.session.commit()
        past = db.session.get(Event, past.id)
        if shows_up:
            (reg,) = _regs(past.id)
            check_in(past, reg.ticket_token, past.organizer)
        complete_event(past, past.organizer)
        db.session.commit()

    response = member_client.get("/me/tickets")
    assert response.status_code == 200
    assert response.headers["X-Cheyou-Offline"] == "keep"
    assert "<body " in response.text and " data-offline-keep>" in response.text, "loaded uncontrolled, it asks"
    html = response.text
    coming_part, past_part = html.split('data-section="coming"')[1].split('data-section="past"')
    (reg,) = [r for r in _regs(coming.id) if r.user_id == member.id]
    ticket = coming_part.split(f'id="ticket-{reg.id}"')[1].split("</li>")[0]
    assert "<svg" in ticket and reg.display_code in ticket and "即将到来" in ticket and coming.place in ticket
    waiting = coming_part.split('data-state="waitlisted"')[1].split("</li>")[0]
    assert 'data-waitlist-position="1"' in waiting and "number 1 on the waitlist" in waiting
    assert "满员活动" in waiting and "event-qr-code" not in waiting
    assert '>被取消的<' not in coming_part
    assert 'data-outcome="cancelled"' in past_part and "被取消的" in past_part
    rows = {title: past_part.split(title)[1].split("</li>")[0] for title in ("参加过的", "错过的")}
    assert 'data-outcome="attended"' in rows["参加过的"] and 'data-outcome="no-show"' in rows["错过的"]
    assert_no_inline_code(html)


def test_my_tickets_cost_the_same_queries_for_1_and_6_tickets(factories, member, member_client, count_queries,
                                                                 login_as):
    def add(n):
        for i in range(n):
            event = factories.event(title=f"活动 {i}", capacity=1, companions_allowed=0)
            if i % 2:
                login_as(factories.user()).post(f"/events/{event.id}/signup")
            member_client.post(f"/events/{event.id}/signup")

    def queries():
        with count_queries() as counter:
            assert member_client.get("/me/tickets").status_code == 200
        return counter["n"]

    add(2)
    few = queries()
    add(5)
    many = queries()
    assert many == few, (few, many)
    assert db.session.scalar(select(func.count()).select_from(Registration)
                             .where(Registration.user_id == member.id)) == 7


def test_my_tickets_is_for_members_only(client):
    response = client.get("/me/tickets")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


def test_my_tickets_empty_state(member_client):
    html = member_client.get("/me/tickets").text
    assert "No tickets yet." in html and "/events" in html


def test_the_event_page_costs_the_same_queries_with_3_or_40_signups(factories, login_as, count_queries):
    """Seats, the waitlist, the member's opening and level are counted, never listed."""
    event = factories.event(capacity=10, points_price=0)
    viewer = factories.user()
    client = login_as(viewer)

    def queries():
        with count_queries() as counter:
            assert client.get(f"/events/{event.id}").status_code == 200
        return counter["n"]

    for _ in range(3):
        signup(db.session.merge(event), factories.user(), SignupInput())
    db.session.commit()
    queries()  # a first visit stores the viewer's points standing (blueprints/points_cache.py)
    few = queries()
    for _ in range(37):
        signup(db.session.merge(event), factories.user(), SignupInput())
    db.session.commit()
    assert queries() == few <= 13


def test_the_home_page_points_to_the_members_next_event(factories, login_as):
    member = factories.user()
    later = factories.event(title="月底的自驾", starts_at=utcnow() + timedelta(days=20))
    soon = factories.event(title="周末的聚会", starts_at=utcnow() + timedelta(days=3))
    full = factories.event(title="满员的课", capacity=1, starts_at=utcnow() + timedelta(days=1))
    signup(db.session.merge(full), factories.user(), SignupInput())
    for event in (later, soon, full):
        signup(db.session.merge(event), db.session.merge(member), SignupInput())
    db.session.commit()
    page = login_as(member).get("/").get_data(as_text=True)
    assert f'data-next-event="{soon.id}"' in page and "周末的聚会" in page, "the soonest confirmed seat, not a waitlist"
    assert 'data-next-event' not in login_as(factories.user()).get("/").get_data(as_text=True)
