"""Venue check-in over HTTP: the organizer's page, the roster the phone keeps offline, the sync of
queued scans (idempotent, earliest scan kept, no expiring CSRF token but a session-bound key),
the ticket's landing page and the plain-form fallback."""
from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone

import pytest

from blueprints.events.checkin import SYNC_BATCH_MAX, checkin_key
from models import db
from models.accounts import User
from models.events import Registration, SignupInput, cancel_registration, signup
from models.types import utcnow
from tests.factories import PASSWORD
from tests.html import assert_no_inline_code


def english(client):
    client.set_cookie("lang", "en")
    return client


def text(response) -> str:
    return response.get_data(as_text=True)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def soon_event(factories, **kw):
    """A published meetup starting in three hours (scan times from the last hours are kept)."""
    return factories.event(starts_at=utcnow() + timedelta(hours=3), **kw)


def sign_up(event, member, companions=0) -> Registration:
    reg = signup(db.session.merge(event), db.session.merge(member), SignupInput(companions=companions))
    db.session.commit()
    return reg


def reg_of(reg_id) -> Registration:
    db.session.expire_all()
    return db.session.get(Registration, reg_id)


def key_for(app, event, user) -> str:
    with app.test_request_context():
        return checkin_key(event.id, db.session.get(User, user.id))


def sync(client, event, items, key, **headers):
    return client.post(f"/events/{event.id}/checkin/sync", json={"checkins": items},
                       headers={"X-Checkin-Key": key, **headers})


@pytest.fixture
def venue(app, factories, login_as):
    """An event starting soon, its organizer (signed in, with the sync key) and two signed-up members."""
    event = soon_event(factories, title="滨江夜骑")
    organizer = event.organizer
    alice = sign_up(event, factories.user(nickname="电车阿丽"), companions=2)
    bob = sign_up(event, factories.user(nickname="老王"))
    client = login_as(organizer)
    return event, organizer, client, key_for(app, event, organizer), alice, bob


# --- who may check people in ------------------------------------------------------------------

def test_only_organizers_of_the_community_open_the_checkin_page(app, factories, login_as, venue):
    event, organizer, client, key, alice, _bob = venue
    member = factories.user()
    elsewhere = factories.user(role="organizer", community=factories.communities()["women"])
    for user in (member, elsewhere):
        other = login_as(user)
        assert other.get(f"/events/{event.id}/checkin").status_code == 403
        roster = other.get(f"/events/{event.id}/checkin/roster", headers={"Accept": "application/json"})
        assert roster.status_code == 403 and "registrations" not in roster.get_json()
        their_key = key_for(app, event, user)
        refused = sync(other, event, [{"ticket": alice.code, "id": "a"}], their_key)
        assert refused.status_code == 403
    assert reg_of(alice.id).checked_in_at is None
    assert client.get(f"/events/{event.id}/checkin").status_code == 200
    admin = login_as(factories.user(role="admin"))
    assert admin.get(f"/events/{event.id}/checkin").status_code == 200


def test_visitors_are_sent_to_log_in_and_the_sync_gets_401(client, venue):
    event, *_ = venue
    for url in (f"/events/{event.id}/checkin", f"/events/{event.id}/checkin/roster"):
        page = client.get(url)
        assert page.status_code == 302 and "/auth/login" in page.headers["Location"], url
    assert client.post(f"/events/{event.id}/checkin/sync", json={"checkins": []}).status_code == 401
    assert client.get(f"/events/{event.id + 999}/checkin").status_code == 302


def test_checkin_page_shows_counters_key_and_urls_and_is_kept_offline(venue):
    event, organizer, client, key, alice, bob = venue
    sync(client, event, [{"ticket": bob.code, "id": "x"}], key)
    response = client.get(f"/events/{event.id}/checkin")
    assert response.status_code == 200
    assert response.headers["X-Cheyou-Offline"] == "keep"
    assert " data-offline-keep>" in response.text, "loaded uncontrolled, the page asks to be kept"
    assert response.headers["Cache-Control"] == "private, no-store", "no HTTP cache keeps it"
    body = text(response)
    assert_no_inline_code(body)
    assert "滨江夜骑" in body
    assert re.search(r'data-checkin-count>1<', body) and re.search(r'data-checkin-total>2<', body)
    assert f'data-checkin-key="{key}"' in body
    assert f'data-roster-url="/events/{event.id}/checkin/roster"' in body
    assert f'data-sync-url="/events/{event.id}/checkin/sync"' in body
    assert "vendor/jsQR.js?v=" in body and "js/checkin.js?v=" in body
    assert alice.ticket_token not in body, "no raw ticket token on the page"


def test_page_does_not_exist_for_an_unknown_event(venue):
    event, organizer, client, *_ = venue
    assert client.get(f"/events/{event.id + 999}/checkin").status_code == 404


# --- the roster the phone keeps -----------------------------------------------------------------

def test_roster_lists_confirmed_tickets_with_token_hashes_only(factories, venue):
    event, organizer, client, key, alice, bob = venue
    gone = sign_up(event, factories.user(nickname="取消了"))
    cancel_registration(db.session.merge(event), db.session.get(User, gone.user_id))
    db.session.commit()
    sync(client, event, [{"ticket": alice.code, "id": "1", "scanned_at": iso(utcnow() - timedelta(minutes=3))}], key)
    response = client.get(f"/events/{event.id}/checkin/roster")
    assert response.status_code == 200
    assert "no-store" in response.headers["Cache-Control"]
    data = response.get_json()
    assert data["confirmed"] == 2 and data["checked_in"] == 1
    rows = {row["nickname"]: row for row in data["registrations"]}
    assert set(rows) == {"电车阿丽", "老王"}, "cancelled signups are not on the door list"
    a = rows["电车阿丽"]
    assert a["code"] == alice.code and a["companions"] == 2
    assert a["token_sha256"] == hashlib.sha256(alice.ticket_token.encode()).hexdigest()
    checked = datetime.fromisoformat(a["checked_in_at"].replace("Z", "+00:00"))
    assert abs(checked - reg_of(alice.id).checked_in_at) < timedelta(seconds=1)
    assert rows["老王"]["checked_in_at"] is None
    assert alice.ticket_token not in text(response) and bob.ticket_token not in text(response)


# --- sync ---------------------------------------------------------------------------------------

def test_sync_checks_in_with_the_device_scan_time(venue):
    event, organizer, client, key, alice, bob = venue
    scanned = utcnow().replace(microsecond=0) - timedelta(minutes=42)
    response = sync(client, event, [{"ticket": f"http://localhost/events/t/{alice.ticket_token}",
                                     "scanned_at": iso(scanned), "id": "u1"}], key)
    assert response.status_code == 200
    data = response.get_json()
    (result,) = data["results"]
    assert result["id"] == "u1" and result["status"] == "ok"
    assert result["nickname"] == "电车阿丽" and result["companions"] == 2
    assert data["checked_in"] == 1 and data["confirmed"] == 2
    reg = reg_of(alice.id)
    assert reg.checked_in_at == scanned and reg.checked_in_by_id == organizer.id


def test_replaying_a_sync_is_harmless(venue):
    event, organizer, client, key, alice, bob = venue
    scanned = utcnow().replace(microsecond=0) - timedelta(minutes=10)
    item = {"ticket": alice.code, "scanned_at": iso(scanned), "id": "same"}
    first = sync(client, event, [item], key).get_json()
    again = sync(client, event, [item, item], key).get_json()
    assert first["results"][0]["status"] == "ok"
    assert [r["status"] for r in again["results"]] == ["already", "already"]
    assert again["checked_in"] == 1
    assert reg_of(alice.id).checked_in_at == scanned


def test_an_earlier_scan_arriving_later_wins(venue):
    event, organizer, client, key, alice, bob = venue
    now = utcnow().replace(microsecond=0)
    later, earlier = now - timedelta(minutes=5), now - timedelta(minutes=50)
    sync(client, event, [{"ticket": alice.code, "scanned_at": iso(later), "id": "phone-a"}], key)
    answer = sync(client, event, [{"ticket": alice.ticket_token, "scanned_at": iso(earlier), "id": "phone-b"}],
                  key).get_json()["results"][0]
    assert answer["status"] == "already"
    assert reg_of(alice.id).checked_in_at == earlier
    assert answer["checked_in_at"] == iso(earlier)
    # The other way round: a later scan never moves the time.
    sync(client, event, [{"ticket": alice.code, "scanned_at": iso(later), "id": "phone-c"}], key)
    assert reg_of(alice.id).checked_in_at == earlier


def test_forged_and_foreign_tickets_are_refused_and_the_others_kept(factories, venue):
    event, organizer, client, key, alice, bob = venue
    other = soon_event(factories, title="改装体验营", organizer=organizer)
    stranger = sign_up(other, factories.user())
    client = english(client)
    items = [
        {"ticket": alice.code, "id": "good-1"},
        {"ticket": "ZZZZZZ", "id": "forged-code"},
        {"ticket": "x" * 24, "id": "forged-token"},
        {"ticket": f"https://cheyou.example/events/t/{stranger.ticket_token}", "id": "foreign"},
        {"ticket": bob.ticket_token, "id": "good-2"},
        {"ticket": 12, "id": "junk"},
    ]
    response = sync(client, event, items, key)
    assert response.status_code == 200
    results = {r["id"]: r for r in response.get_json()["results"]}
    assert results["good-1"]["status"] == "ok" and results["good-2"]["status"] == "ok"
    for name in ("forged-code", "forged-token", "junk"):
        assert results[name]["status"] == "refused"
        assert results[name]["message"] == "No ticket matches this code. Check it and try again."
    assert results["foreign"]["status"] == "refused"
    assert results["foreign"]["message"] == "This ticket is for another event: 改装体验营."
    assert reg_of(alice.id).checked_in_at and reg_of(bob.id).checked_in_at
    assert reg_of(stranger.id).checked_in_at is None


def test_cancelled_and_waitlisted_tickets_are_refused(factories, login_as, app):
    event = soon_event(factories, capacity=1)
    client = english(login_as(event.organizer))
    key = key_for(app, event, event.organizer)
    seated = sign_up(event, factories.user())
    waiting = sign_up(event, factories.user())
    assert waiting.state == "waitlisted"
    response = sync(client, event, [{"ticket": waiting.code, "id": "w"}], key).get_json()
    assert response["results"][0]["status"] == "refused"
    assert "waitlist" in response["results"][0]["message"]
    cancel_registration(db.session.merge(event), db.session.get(User, seated.user_id))
    db.session.commit()
    assert reg_of(waiting.id).state == "confirmed", "promoted"
    old_ticket = sync(client, event, [{"ticket": seated.ticket_token, "id": "c"}], key).get_json()
    assert old_ticket["results"][0]["status"] == "refused"
    assert reg_of(seated.id).checked_in_at is None


def test_typed_codes_forgive_dashes_case_and_spaces(venue):
    event, organizer, client, key, alice, bob = venue
    typed = f" {alice.display_code.lower()} "
    assert "-" in typed
    result = sync(client, event, [{"ticket": typed, "id": "t"}], key).get_json()["results"][0]
    assert result["status"] == "ok" and result["code"] == alice.display_code
    assert reg_of(alice.id).checked_in_at is not None


def test_sync_needs_the_right_checkin_key(venue, factories, app):
    event, organizer, client, key, alice, bob = venue
    item = [{"ticket": alice.code, "id": "k"}]
    assert client.post(f"/events/{event.id}/checkin/sync", json={"checkins": item}).status_code == 403
    assert sync(client, event, item, "0" * 64).status_code == 403
    assert sync(client, event, item, "ключ-钥匙".encode().decode("latin-1")).status_code == 403
    other_event = soon_event(factories, organizer=organizer)
    assert sync(client, event, item, key_for(app, other_event, organizer)).status_code == 403, "keys are per event"
    assert reg_of(alice.id).checked_in_at is None
    assert sync(client, event, item, key).status_code == 200


def test_the_key_dies_when_the_organizer_changes_password(venue, login_as, app):
    event, organizer, client, key, alice, bob = venue
    client.post("/auth/password", data={"current": PASSWORD, "password": "N3w-passw0rd-x"})
    db.session.expire_all()
    fresh = login_as(db.session.get(User, organizer.id))
    item = [{"ticket": alice.code, "id": "p"}]
    response = sync(fresh, event, item, key)
    assert response.status_code == 403, "a key from before the password change is refused"
    assert reg_of(alice.id).checked_in_at is None
    assert sync(fresh, event, item, key_for(app, event, organizer)).status_code == 200


def test_sync_needs_json(venue):
    event, organizer, client, key, alice, bob = venue
    response = client.post(f"/events/{event.id}/checkin/sync", data={"checkins": alice.code},
                           headers={"X-Checkin-Key": key})
    assert response.status_code == 415
    wrong_shape = client.post(f"/events/{event.id}/checkin/sync", json={"nope": []}, headers={"X-Checkin-Key": key})
    assert wrong_shape.status_code == 400
    assert reg_of(alice.id).checked_in_at is None


def test_sync_limits_the_batch_size(venue):
    event, organizer, client, key, alice, bob = venue
    items = [{"ticket": alice.code, "id": str(n)} for n in range(SYNC_BATCH_MAX + 1)]
    assert sync(client, event, items, key).status_code == 413
    assert reg_of(alice.id).checked_in_at is None


def test_sync_needs_no_csrf_token_even_with_csrf_on(venue, csrf_on):
    event, organizer, client, key, alice, bob = venue
    form = client.post(f"/events/{event.id}/checkin", data={"code": alice.code})
    assert form.status_code == 400, "the plain form is CSRF-protected"
    assert reg_of(alice.id).checked_in_at is None
    response = sync(client, event, [{"ticket": alice.code, "id": "late"}], key)
    assert response.status_code == 200
    assert response.get_json()["results"][0]["status"] == "ok"
    assert reg_of(alice.id).checked_in_at is not None


def test_a_scan_time_in_the_future_is_not_trusted(venue):
    event, organizer, client, key, alice, bob = venue
    before = utcnow()
    sync(client, event, [{"ticket": alice.code, "id": "f", "scanned_at": iso(utcnow() + timedelta(days=2))}], key)
    sync(client, event, [{"ticket": bob.code, "id": "g", "scanned_at": "yesterday-ish"}], key)
    assert before <= reg_of(alice.id).checked_in_at <= utcnow()
    assert before <= reg_of(bob.id).checked_in_at <= utcnow()


def test_a_cancelled_event_checks_no_one_in(factories, login_as, app):
    event = soon_event(factories)
    member = factories.user()
    reg = sign_up(event, member)
    from models.events import cancel_event
    cancel_event(db.session.merge(event), db.session.merge(event.organizer), "暴雨预警，活动取消")
    db.session.commit()
    client = login_as(event.organizer)
    result = sync(client, event, [{"ticket": reg.ticket_token, "id": "d"}], key_for(app, event, event.organizer))
    assert result.get_json()["results"][0]["status"] == "refused"
    assert reg_of(reg.id).checked_in_at is None


# --- the plain form (no JavaScript) -------------------------------------------------------------

def test_form_fallback_checks_in_and_says_who_it_is(venue, csrf_on):
    event, organizer, client, key, alice, bob = venue
    page = text(client.get(f"/events/{event.id}/checkin"))
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = english(client).post(f"/events/{event.id}/checkin",
                                    data={"code": alice.display_code.lower(), "csrf_token": token})
    assert response.status_code == 200
    body = text(response)
    assert 'data-status="ok"' in body and "电车阿丽" in body and alice.display_code in body
    assert "+2 companions" in body
    assert reg_of(alice.id).checked_in_at is not None
    again = client.post(f"/events/{event.id}/checkin", data={"code": alice.code, "csrf_token": token})
    assert again.status_code == 200
    hhmm = reg_of(alice.id).checked_in_at.astimezone(timezone(timedelta(hours=8))).strftime("%H:%M")
    assert 'data-status="already"' in text(again) and f"Already checked in at {hhmm}" in text(again)


def test_form_fallback_refuses_a_forged_code_with_422(venue):
    event, organizer, client, key, alice, bob = venue
    response = english(client).post(f"/events/{event.id}/checkin", data={"code": "ZZZ-ZZZ"})
    assert response.status_code == 422
    body = text(response)
    assert 'data-status="refused"' in body
    assert "No ticket matches this code." in body


# --- the ticket's landing page (what the QR opens) ----------------------------------------------

def test_the_ticket_link_opens_checkin_for_the_organizer(venue):
    event, organizer, client, key, alice, bob = venue
    response = client.get(f"/events/t/{alice.ticket_token}")
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/events/{event.id}/checkin?ticket={alice.ticket_token}")
    page = text(client.get(response.headers["Location"]))
    assert "data-checkin-preview" in page and "电车阿丽" in page
    assert reg_of(alice.id).checked_in_at is None, "opening the link checks no one in"


def test_the_ticket_link_shows_the_owner_their_ticket(venue, login_as):
    event, organizer, client, key, alice, bob = venue
    owner = login_as(db.session.get(User, alice.user_id))
    response = owner.get(f"/events/t/{alice.ticket_token}")
    assert response.status_code == 200
    assert response.headers["X-Cheyou-Offline"] == "keep"
    assert " data-offline-keep>" in response.text
    body = text(response)
    assert_no_inline_code(body)
    ticket = body.split('id="ticket"')[1].split("</article>")[0]
    assert "滨江夜骑" in ticket and alice.display_code in ticket
    assert "<svg" in ticket and 'class="qr' in ticket, "the QR is on the ticket"


def test_someone_elses_ticket_is_not_found(venue, login_as, factories):
    event, organizer, client, key, alice, bob = venue
    other = login_as(db.session.get(User, bob.user_id))
    assert other.get(f"/events/t/{alice.ticket_token}").status_code == 404
    assert other.get("/events/t/not-a-real-token-at-all").status_code == 404
    elsewhere = login_as(factories.user(role="organizer", community=factories.communities()["women"]))
    assert elsewhere.get(f"/events/t/{alice.ticket_token}").status_code == 404


def test_the_ticket_link_needs_a_login(client, venue):
    event, organizer, _client, key, alice, bob = venue
    response = client.get(f"/events/t/{alice.ticket_token}")
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]



def test_a_waitlisted_owner_sees_no_qr_yet(factories, login_as):
    event = soon_event(factories, capacity=1)
    sign_up(event, factories.user())
    waiting = sign_up(event, factories.user())
    owner = login_as(db.session.get(User, waiting.user_id))
    response = owner.get(f"/events/t/{waiting.ticket_token}")
    assert response.status_code == 200
    body = text(response)
    assert 'data-ticket-state="waitlisted"' in body
    assert "<svg" not in body.split('id="ticket"')[1].split("</article>")[0]
    assert waiting.display_code not in body


def test_a_sync_ten_hours_later_is_accepted_when_the_page_token_has_expired(venue, csrf_on, monkeypatch):
    """A phone that lost signal all afternoon syncs in the evening: the page's CSRF token (8 h)
    has expired by then, the session and the check-in key have not."""
    import itsdangerous.timed

    event, organizer, client, _key, alice, bob = venue
    page = text(client.get(f"/events/{event.id}/checkin"))
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    key = re.search(r'data-checkin-key="([0-9a-f]{64})"', page).group(1)
    scanned = utcnow()
    later = itsdangerous.timed.time.time() + 10 * 3600
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: later)
    form = client.post(f"/events/{event.id}/checkin", data={"code": bob.code, "csrf_token": token})
    assert form.status_code == 400, "the page's CSRF token has expired"
    response = sync(client, event, [{"ticket": alice.code, "scanned_at": iso(scanned), "id": "afternoon"}], key)
    assert response.status_code == 200 and response.get_json()["results"][0]["status"] == "ok"
    assert reg_of(alice.id).checked_in_at == scanned, "the scan time from the phone"
