"""Organizer pages for events: who may use them, the event form (Shanghai times, defaults, cover,
every refusal keeping what was typed), publish / cancel / complete, "My events" with fill and
attendance rates in a constant number of queries, the roster and its CSV export."""
from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from models import Notification, db
from models.events import Event, Registration, SignupInput, check_in, signup
from models.loyalty import EarningRule
from models.nonces import new_nonce
from models.loyalty import award, balance_of
from models.types import SHANGHAI, utcnow
from services.storage import get_storage
from tests.html import Tags, assert_no_inline_code

TITLE = "周六清晨咖啡聚会"


@pytest.fixture
def ev(communities):
    return communities["ev"]


@pytest.fixture
def organizer(factories, ev):
    return factories.user(nickname="组织者老王", role="organizer", community=ev)


@pytest.fixture
def event(factories, ev, organizer):
    return factories.event(community=ev, organizer=organizer)


def english(client):
    client.post("/lang", data={"lang": "en"})
    return client


def local(moment) -> str:
    """How <input type="datetime-local"> submits MOMENT, in Shanghai time."""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")


def start_in(days=10):
    """A start on a future day at 09:30 Shanghai time."""
    day = (utcnow() + timedelta(days=days)).astimezone(SHANGHAI)
    return day.replace(hour=9, minute=30, second=0, microsecond=0)


def form(community, **overrides):
    start = start_in()
    data = {
        "community": community.id, "kind": "meetup", "title": TITLE, "description": "带上你的**车**和好奇心。",
        "starts_at": local(start), "ends_at": local(start + timedelta(hours=3)),
        "signup_opens_at": local(utcnow()), "signup_closes_at": "", "cancel_deadline": "",
        "place": "前滩太古里停车场", "address": "上海市浦东新区东育路 500 号", "map_url": "",
        "capacity": "30", "companions_allowed": "1", "points_price": "0", "attendance_points": "20",
        "level_priority": "y", "safety_notice": "", "nonce": new_nonce(),
    }
    data.update(overrides)
    return data


def value_of(body: str, name: str) -> str | None:
    """The value an <input name=NAME> shows (what the organizer typed or the default)."""
    for tag, attrs in Tags(body).tags:
        if tag == "input" and attrs.get("name") == name:
            return attrs.get("value")
    return None


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (30, 120, 200)).save(out, "JPEG")
    return out.getvalue()


def stored_files(app) -> set[Path]:
    root = Path(get_storage(app).root)
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def events_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Event))


def join(event, member, now=None, **kw):
    reg = signup(db.session.merge(event), db.session.merge(member), SignupInput(**kw), now=now)
    db.session.commit()
    return reg


# --- access -------------------------------------------------------------------------------

PAGES = ["/events/{id}/edit", "/events/{id}/manage", "/events/{id}/roster", "/events/{id}/roster.csv"]
ACTIONS = [("/events/{id}/publish", {}), ("/events/{id}/complete", {}),
           ("/events/{id}/cancel-event", {"message": "天气原因，活动取消。"}), ("/events/{id}/edit", None)]


def test_members_and_organizers_of_another_community_are_refused(login_as, factories, communities, event):
    draft = factories.event(community=communities["ev"], organizer=event.organizer, publish=False, title="草稿活动")
    member = login_as(factories.user())
    stranger = login_as(factories.user(role="organizer", community=communities["women"]))
    for path in ["/events/manage", "/events/new"] + [p.format(id=event.id) for p in PAGES]:
        assert member.get(path).status_code == 403, path
    for path in [p.format(id=event.id) for p in PAGES]:
        assert stranger.get(path).status_code == 403, path
    for path, data in ACTIONS:
        for target in (event, draft):
            url = path.format(id=target.id)
            assert member.post(url, data=data or form(communities["ev"])).status_code == 403, url
            assert stranger.post(url, data=data or form(communities["ev"])).status_code == 403, url
    # Their own list does not show another community's events; nothing changed.
    assert "周末充电站聚会" not in stranger.get("/events/manage").get_data(as_text=True)
    assert db.session.get(Event, event.id).status == "published"
    assert db.session.get(Event, draft.id).status == "draft"


def test_visitors_are_sent_to_log_in(client, event):
    for path in ["/events/manage", "/events/new"] + [p.format(id=event.id) for p in PAGES]:
        response = client.get(path)
        assert response.status_code == 302 and "/auth/login" in response.headers["Location"], path
    response = client.post(f"/events/{event.id}/cancel-event", data={"message": "天气原因，活动取消。"})
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    assert db.session.get(Event, event.id).status == "published"


@pytest.mark.parametrize("who", ["organizer", "admin"])
def test_the_communitys_organizer_and_admins_open_every_page(login_as, factories, event, organizer, who):
    user = organizer if who == "organizer" else factories.user(role="admin")
    client = login_as(user)
    for path in ["/events/manage", "/events/new"] + [p.format(id=event.id) for p in PAGES]:
        response = client.get(path)
        assert response.status_code == 200, path
        if response.mimetype == "text/html":
            assert_no_inline_code(response.get_data(as_text=True))
    assert "周末充电站聚会" in client.get("/events/manage").get_data(as_text=True)


# --- the form -----------------------------------------------------------------------------

def test_new_form_offers_only_my_communities_and_sensible_defaults(login_as, factories, communities, organizer):
    body = login_as(organizer).get("/events/new").get_data(as_text=True)
    assert f'<option selected value="{communities["ev"].id}">' in body
    assert f'value="{communities["women"].id}"' not in body
    assert 'type="datetime-local"' in body
    assert value_of(body, "attendance_points") == str(EarningRule.get("event_attended").points)
    assert value_of(body, "signup_opens_at")[:13] == local(utcnow())[:13]  # now, in Shanghai time
    assert value_of(body, "signup_closes_at") == "" and value_of(body, "capacity") == ""
    admin_body = login_as(factories.user(role="admin")).get("/events/new").get_data(as_text=True)
    assert all(f'value="{c.id}"' in admin_body for c in communities.values())


def test_creating_an_event_saves_a_draft_in_shanghai_time_with_a_cover(app, login_as, organizer, ev):
    client = login_as(organizer)
    data = form(ev)
    data["cover"] = (io.BytesIO(jpeg()), "cover.jpg")
    response = client.post("/events/new", data=data, content_type="multipart/form-data")
    assert response.status_code == 302
    event = db.session.scalar(select(Event))
    assert response.headers["Location"] == f"/events/{event.id}/manage"
    start = start_in()
    assert event.status == "draft" and event.title == TITLE and event.organizer_id == organizer.id
    assert event.starts_at == start and event.starts_at.astimezone(SHANGHAI).hour == 9
    assert event.signup_closes_at == start - timedelta(hours=2)
    assert event.cancel_deadline == start - timedelta(hours=24)
    assert event.map_url.startswith("https://uri.amap.com/search?keyword=")
    assert event.capacity == 30 and event.companions_allowed == 1 and event.attendance_points == 20
    assert event.level_priority is True and "<strong>车</strong>" in event.description_html
    assert event.cover_key and client.get(f"/media/{event.cover_key}").mimetype == "image/jpeg"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert TITLE in page and "09:30" in page


def test_editing_keeps_the_values_and_applies_changes(login_as, organizer, event, ev):
    client = login_as(organizer)
    body = client.get(f"/events/{event.id}/edit").get_data(as_text=True)
    assert value_of(body, "starts_at") == local(event.starts_at) and value_of(body, "map_url") == ""
    data = form(ev, title="改名后的聚会", capacity="25", starts_at=local(event.starts_at),
                ends_at=local(event.ends_at), signup_opens_at=local(event.signup_opens_at),
                map_url="https://surl.amap.com/abc123")
    assert client.post(f"/events/{event.id}/edit", data=data).status_code == 302
    saved = db.session.get(Event, event.id)
    assert (saved.title, saved.capacity, saved.map_url) == ("改名后的聚会", 25, "https://surl.amap.com/abc123")
    assert saved.status == "published"


@pytest.mark.parametrize("overrides, message", [
    # Times relative to the form's start are computed when the test runs, not when it is
    # collected: a run that crosses Shanghai midnight moves the start to the next day.
    ({"ends_at": lambda: local(start_in() - timedelta(hours=1))}, "The end must be after the start."),
    ({"capacity": "0"}, "Capacity is between 1 and 2000 people."),
    ({"capacity": "-5"}, "Capacity is between 1 and 2000 people."),
    ({"map_url": "https://maps.google.com/?q=shanghai"}, "Use an Amap (高德) or Baidu map link"),
    ({"map_url": "http://amap.com/x"}, "Use an Amap (高德) or Baidu map link"),
    ({"signup_closes_at": lambda: local(start_in() + timedelta(hours=1))}, "Signup must close before the event starts."),
    ({"starts_at": ""}, "Fill in every date and time."),
    ({"kind": "road_trip"}, "A road trip needs a safety notice"),
    ({"companions_allowed": "6"}, "Each member may bring 0 to 5 companions."),
])
def test_bad_input_saves_nothing_and_keeps_what_was_typed(app, login_as, organizer, ev, overrides, message):
    client = english(login_as(organizer))
    before = stored_files(app)
    overrides = {name: value() if callable(value) else value for name, value in overrides.items()}
    data = form(ev, **overrides)
    data["cover"] = (io.BytesIO(jpeg()), "cover.jpg")
    response = client.post("/events/new", data=data, content_type="multipart/form-data")
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert message in body
    assert value_of(body, "title") == TITLE and value_of(body, "place") == "前滩太古里停车场"
    for name, typed in overrides.items():
        if name != "kind":
            assert value_of(body, name) == typed
    assert events_count() == 0
    assert stored_files(app) == before, "a cover stored before the refusal is removed again"


def test_a_file_that_is_not_a_photo_is_refused(app, login_as, organizer, ev):
    data = form(ev)
    data["cover"] = (io.BytesIO(b"not a photo at all"), "cover.jpg")
    response = english(login_as(organizer)).post("/events/new", data=data, content_type="multipart/form-data")
    assert response.status_code == 422 and "not a photo we can use" in response.get_data(as_text=True)
    assert events_count() == 0


def test_the_new_event_form_sent_twice_makes_one_draft(app, login_as, organizer, ev):
    client = login_as(organizer)
    data = form(ev)
    first = client.post("/events/new", data={**data, "cover": (io.BytesIO(jpeg()), "cover.jpg")},
                        content_type="multipart/form-data")
    files_after_first = stored_files(app)
    again = client.post("/events/new", data={**data, "cover": (io.BytesIO(jpeg()), "cover.jpg")},
                        content_type="multipart/form-data")
    assert first.status_code == again.status_code == 302
    assert first.headers["Location"] == again.headers["Location"]
    assert events_count() == 1
    assert stored_files(app) == files_after_first, "the repeat's cover is not kept"


def test_a_new_event_form_without_its_nonce_is_refused_and_keeps_what_was_typed(login_as, organizer, ev):
    data = form(ev)
    del data["nonce"]
    response = english(login_as(organizer)).post("/events/new", data=data)
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and "This form has expired" in body
    assert value_of(body, "title") == TITLE
    assert value_of(body, "nonce"), "a fresh nonce: sending again now works"
    assert events_count() == 0


def test_an_organizer_cannot_create_in_a_community_they_do_not_organize(login_as, organizer, communities):
    response = login_as(organizer).post("/events/new", data=form(communities["women"]))
    assert response.status_code == 422 and events_count() == 0


def test_capacity_cannot_drop_below_the_confirmed_seats(login_as, factories, organizer, ev):
    event = factories.event(community=ev, organizer=organizer, capacity=5)
    for _ in range(3):
        join(event, factories.user())
    client = english(login_as(organizer))
    data = form(ev, title="想缩小的活动", capacity="2", starts_at=local(event.starts_at), ends_at=local(event.ends_at),
                signup_opens_at=local(event.signup_opens_at))
    response = client.post(f"/events/{event.id}/edit", data=data)
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "3 seats are already confirmed: capacity cannot go below that." in body
    assert value_of(body, "title") == "想缩小的活动" and value_of(body, "capacity") == "2"
    saved = db.session.get(Event, event.id)
    assert saved.capacity == 5 and saved.title != "想缩小的活动"


# --- publish, cancel, complete ------------------------------------------------------------

def test_publish_a_draft(login_as, factories, organizer, ev):
    draft = factories.event(community=ev, organizer=organizer, publish=False)
    client = english(login_as(organizer))
    page = client.get(f"/events/{draft.id}/manage").get_data(as_text=True)
    assert f'action="/events/{draft.id}/publish"' in page
    response = client.post(f"/events/{draft.id}/publish")
    assert response.status_code == 302 and response.headers["Location"] == f"/events/{draft.id}/manage"
    assert db.session.get(Event, draft.id).status == "published"
    again = client.post(f"/events/{draft.id}/publish")
    assert again.status_code == 422 and "Only a draft can be published." in again.get_data(as_text=True)


def test_cancelling_the_event_notifies_and_refunds_everyone(login_as, factories, organizer, ev):
    event = factories.event(community=ev, organizer=organizer, capacity=1, points_price=30)
    payer, waiting = factories.user(), factories.user()
    for member in (payer, waiting):
        award(member, "referral", key="x", points=100)
    db.session.commit()
    join(event, payer)
    join(event, waiting)  # waitlisted: not charged
    assert balance_of(payer) == 70 and balance_of(waiting) == 100
    client = english(login_as(organizer))
    page = client.get(f"/events/{event.id}/manage").get_data(as_text=True)
    assert "This cannot be undone" in page and f'action="/events/{event.id}/cancel-event"' in page

    too_short = client.post(f"/events/{event.id}/cancel-event", data={"message": "不"})
    assert too_short.status_code == 422 and "Tell members why" in too_short.get_data(as_text=True)
    assert db.session.get(Event, event.id).status == "published" and balance_of(payer) == 70

    response = client.post(f"/events/{event.id}/cancel-event", data={"message": "台风预警，活动取消，抱歉！"})
    assert response.status_code == 302
    assert "2 members were told and refunded" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert db.session.get(Event, event.id).status == "cancelled"
    assert balance_of(payer) == 100 and balance_of(waiting) == 100
    for member, kind in ((payer, "event_cancelled_refunded"), (waiting, "event_cancelled")):
        notes = db.session.scalars(select(Notification).where(Notification.user_id == member.id,
                                                              Notification.kind.like("event_cancelled%"))).all()
        assert [note.kind for note in notes] == [kind]
    assert set(db.session.scalars(select(Registration.state))) == {"cancelled"}


def complete_setup(factories, organizer, ev):
    """A published event with two confirmed members; it started an hour ago; one checked in."""
    event = factories.event(community=ev, organizer=organizer, attendance_points=40)
    came, missed = factories.user(), factories.user()
    reg = join(event, came)
    join(event, missed)
    event = db.session.get(Event, event.id)
    now = utcnow()
    event.starts_at, event.ends_at = now - timedelta(hours=1), now + timedelta(hours=2)
    event.signup_closes_at = event.cancel_deadline = now - timedelta(hours=2)
    db.session.commit()
    check_in(event, reg.code, organizer)
    db.session.commit()
    return event, came, missed


def test_complete_pays_attendance_and_counts_no_shows(login_as, factories, organizer, ev):
    event, came, missed = complete_setup(factories, organizer, ev)
    client = english(login_as(organizer))
    assert f'action="/events/{event.id}/complete"' in client.get(f"/events/{event.id}/manage").get_data(as_text=True)
    response = client.post(f"/events/{event.id}/complete")
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Event completed: 1 attended, 1 did not show up." in page
    assert 'id="stat-attendance"><strong>50%' in page
    assert db.session.get(Event, event.id).status == "completed"
    assert balance_of(came) >= 40 and balance_of(missed) == 0
    regs = {r.user_id: r for r in db.session.scalars(select(Registration))}
    assert regs[missed.id].no_show and not regs[came.id].no_show
    paid = balance_of(came)
    again = client.post(f"/events/{event.id}/complete")
    assert again.status_code == 422 and balance_of(came) == paid, "the reward is paid once"


def test_an_event_cannot_be_completed_before_it_starts(login_as, event, organizer):
    client = english(login_as(organizer))
    assert f"/events/{event.id}/complete" not in client.get(f"/events/{event.id}/manage").get_data(as_text=True)
    response = client.post(f"/events/{event.id}/complete")
    assert response.status_code == 422 and "once it has started" in response.get_data(as_text=True)
    assert db.session.get(Event, event.id).status == "published"


# --- my events ----------------------------------------------------------------------------

def test_my_events_shows_fill_and_attendance_rates(login_as, factories, organizer, ev):
    upcoming = factories.event(community=ev, organizer=organizer, capacity=4, title="半满的活动")
    join(upcoming, factories.user())
    join(upcoming, factories.user())
    done, _came, _missed = complete_setup(factories, organizer, ev)
    client = login_as(organizer)
    assert client.post(f"/events/{done.id}/complete").status_code == 302
    body = client.get("/events/manage").get_data(as_text=True)
    assert_no_inline_code(body)
    assert f'id="event-{upcoming.id}"' in body and 'data-fill-percent="50"' in body
    assert '<meter min="0" max="4" value="2"' in body
    assert f'id="event-{done.id}"' in body and 'data-attendance-percent="50"' in body
    assert 'href="/events/new"' in body
    assert f'href="/events/{done.id}/checkin"' in body and f'href="/events/{upcoming.id}/roster"' in body
    shanghai = upcoming.starts_at.astimezone(SHANGHAI).strftime("%H:%M")
    assert shanghai in body


def test_my_events_costs_the_same_queries_however_many_events(login_as, factories, organizer, ev, count_queries):
    client = login_as(organizer)
    first = factories.event(community=ev, organizer=organizer)
    join(first, factories.user())

    def queries():
        with count_queries() as counter:
            assert client.get("/events/manage").status_code == 200
        return counter["n"]

    few = queries()
    for i in range(6):
        more = factories.event(community=ev, title=f"更多活动 {i}")  # each by another organizer of ev
        join(more, factories.user())
    assert queries() == few


# --- roster and CSV -----------------------------------------------------------------------

@pytest.fixture
def road_trip(factories, organizer, ev):
    return factories.event(community=ev, organizer=organizer, kind="road_trip", capacity=1,
                           safety_notice="全程限速 100，服从领队安排，注意保持车距。")


def trip_signup(event, member, plate="粤B12345"):
    return join(event, member, accept_safety=True, plate=plate, emergency_name="紧急联系人",
                emergency_phone="13900001234")


def read_csv(response) -> list[list[str]]:
    raw = response.get_data()
    assert raw.startswith(b"\xef\xbb\xbf"), "UTF-8 BOM for Excel"
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))


def test_roster_page_masks_phones_and_shows_check_in_times(login_as, factories, organizer, road_trip):
    first = factories.user(login="13812345678", nickname="先到的")
    second = factories.user(login="13700007777", nickname="候补的")
    reg = trip_signup(road_trip, first)
    trip_signup(road_trip, second, plate="沪A88888")
    check_in(db.session.get(Event, road_trip.id), reg.code, organizer)
    db.session.commit()
    scanned = db.session.get(Registration, reg.id).checked_in_at.astimezone(SHANGHAI).strftime("%H:%M")
    body = login_as(organizer).get(f"/events/{road_trip.id}/roster").get_data(as_text=True)
    assert "138****5678" in body and "13812345678" not in body
    assert body.index("先到的") < body.index("候补的")  # confirmed first, then the waitlist
    assert f"✓ {scanned}" in body
    assert "粤B12345" in body and "紧急联系人" in body and "tel:13900001234" in body


def test_roster_csv_for_a_road_trip(login_as, factories, organizer, road_trip):
    attacker = factories.user(login="13812345678", nickname='=HYPERLINK("http://evil.example","点我")')
    trip_signup(road_trip, attacker)
    trip_signup(road_trip, factories.user(login="13700007777", nickname="候补的"), plate="沪A88888")
    response = english(login_as(organizer)).get(f"/events/{road_trip.id}/roster.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == f'attachment; filename="event-{road_trip.id}-roster.csv"'
    rows = read_csv(response)
    header = rows[0]
    assert header[:4] == ["Status", "No.", "Nickname", "Mobile"]
    assert header[-3:] == ["Plate", "Emergency contact", "Emergency phone"]
    first = dict(zip(header, rows[1]))
    assert first["Nickname"].startswith("'=HYPERLINK")
    assert first["Mobile"] == "138****5678" and "13812345678" not in response.get_data(as_text=True)
    assert first["Plate"] == "粤B12345" and first["Emergency phone"] == "139****1234"
    assert "13900001234" not in response.get_data(as_text=True), "no phone number leaves the app whole"
    assert first["Status"] == "Confirmed" and first["No."] == "1"
    second = dict(zip(header, rows[2]))
    assert second["Status"] == "Waitlist" and second["No."] == "1" and second["Plate"] == "沪A88888"


def test_roster_csv_of_a_meetup_has_no_plates_or_emergency_contacts(login_as, factories, organizer, event):
    join(event, factories.user(login="13812345678", nickname="-1+2"), companions=1)
    chinese = login_as(organizer).get(f"/events/{event.id}/roster.csv")
    rows = read_csv(chinese)
    assert "昵称" in rows[0]  # the header in the viewer's language (Chinese by default)
    assert len(rows[0]) == len(rows[1]) == 9
    assert "'-1+2" in rows[1] and "138****5678" in rows[1]
    assert not any("1390000" in cell for cell in rows[1])


def test_a_cancelled_event_can_no_longer_be_edited(login_as, organizer, event, ev):
    client = english(login_as(organizer))
    assert client.post(f"/events/{event.id}/cancel-event", data={"message": "场地临时维修，活动取消。"}).status_code == 302
    page = client.get(f"/events/{event.id}/edit").get_data(as_text=True)
    assert 'id="event-closed-notice"' in page and 'type="submit" class="button primary' not in page
    data = form(ev, title="取消后还想改", starts_at=local(event.starts_at), ends_at=local(event.ends_at),
                signup_opens_at=local(event.signup_opens_at))
    response = client.post(f"/events/{event.id}/edit", data=data)
    assert response.status_code == 422 and "can no longer be edited" in response.get_data(as_text=True)
    assert db.session.get(Event, event.id).title == "周末充电站聚会"


def test_organizers_find_their_events_from_me_and_the_listing(factories, login_as, communities):
    organizer = factories.user(role="organizer", community=communities["ev"])
    member = factories.user()
    for user, expected in ((organizer, True), (member, False)):
        client = login_as(user)
        for page in ("/me", "/events"):
            assert ('href="/events/manage"' in client.get(page).get_data(as_text=True)) is expected, (user, page)
