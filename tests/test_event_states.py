"""The event lifecycle as a state machine, and `signup_window`: the event page and the signup
rule give one answer at the window's edges."""
from __future__ import annotations

import itertools
from datetime import timedelta

import pytest
from sqlalchemy import select

from models import AuditEntry, DomainError, db
from models.events import (
    TRANSITIONS, Event, EventStatus, Registration, cancel_event, complete_event, publish_event, signup_window,
    transition,
)
from models.loyalty import award
from models.types import utcnow

HX = {"HX-Request": "true"}
PAIRS = list(itertools.product(EventStatus, EventStatus))


def _event_in(factories, status: EventStatus) -> Event:
    event = factories.event(publish=status is not EventStatus.DRAFT)
    if status in (EventStatus.CANCELLED, EventStatus.COMPLETED):
        event.status = status.value  # set up directly: only the move under test goes through the machine
        db.session.commit()
    return event


def _audits(event: Event) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(
        AuditEntry.target_type == "events", AuditEntry.target_id == str(event.id)).order_by(AuditEntry.id)))


def test_the_transition_table_is_the_lifecycle():
    assert {(a.value, b.value) for a, targets in TRANSITIONS.items() for b in targets} == {
        ("draft", "published"), ("draft", "cancelled"), ("published", "cancelled"), ("published", "completed"),
    }
    # Stored strings and comparisons with them keep working.
    assert EventStatus.PUBLISHED == "published" and str(EventStatus.PUBLISHED) == "published"


@pytest.mark.parametrize("start, to", PAIRS, ids=[f"{a.value}->{b.value}" for a, b in PAIRS])
def test_every_move_is_allowed_and_audited_or_refused(factories, start, to):
    event = _event_in(factories, start)
    organizer = event.organizer
    before = len(_audits(event))
    allowed = to in TRANSITIONS[start]
    if allowed:
        transition(event, to, organizer)
        db.session.commit()
        assert db.session.get(Event, event.id).status == to.value
        entries = _audits(event)
        assert len(entries) == before + 1
        entry = entries[-1]
        assert (entry.action, entry.actor_id, entry.before, entry.after) == (
            {"published": "event.publish", "cancelled": "event.cancel", "completed": "event.complete"}[to.value],
            organizer.id, {"status": start.value}, {"status": to.value},
        )
        assert getattr(event, f"{to.value}_at") is not None
    else:
        with pytest.raises(DomainError):
            transition(event, to, organizer)
        db.session.rollback()
        assert db.session.get(Event, event.id).status == start.value, "a refused move changes nothing"
        assert len(_audits(event)) == before, "and leaves no audit entry"


def test_the_organizer_actions_go_through_the_machine(factories):
    published, draft = factories.event(), factories.event(publish=False)
    with pytest.raises(DomainError, match="Only a draft can be published"):
        publish_event(published, published.organizer)
    db.session.rollback()
    with pytest.raises(DomainError, match="Only a published event can be marked completed"):
        complete_event(db.session.get(Event, draft.id), draft.organizer, now=draft.starts_at)
    db.session.rollback()
    cancel_event(db.session.get(Event, draft.id), draft.organizer, "场地临时关闭，抱歉。")
    db.session.commit()
    with pytest.raises(DomainError, match="already cancelled or completed"):
        cancel_event(db.session.get(Event, draft.id), draft.organizer, "再取消一次试试看")
    db.session.rollback()
    assert [e.action for e in _audits(draft)] == ["event.cancel"]


# --- signup_window: the page and the rule agree ----------------------------------------------

def _vip(factories):
    """A member at Lv.4: 48 hours of early signup."""
    member = factories.user()
    for i in range(50):
        award(member, "event_attended", key=f"growth-{i}", points=0, now=utcnow() - timedelta(days=1))
    db.session.commit()
    return member


def _page_says(client, event) -> str:
    html = client.get(f"/events/{event.id}").get_data(as_text=True)
    if 'class="event-signup-form"' in html:
        return "open"
    if "data-opens=" in html:
        return "not_yet"
    assert "Signup is closed." in html or "taken place" in html, html
    return "closed"


def _rule_says(client, event) -> str:
    response = client.post(f"/events/{event.id}/signup", headers=HX)
    text = response.get_data(as_text=True)
    if response.status_code == 200:
        assert 'data-my-status="confirmed"' in text
        return "open"
    assert response.status_code == 422, text
    if "Signup opens for you on" in text:
        return "not_yet"
    assert "Signup closed on" in text or "This event has already taken place." in text, text
    return "closed"


@pytest.fixture
def clock(monkeypatch):
    """Sets the time `signup_window` and `signup` read (the page and the rule alike)."""
    def set_to(moment):
        monkeypatch.setattr("models.events.signups.utcnow", lambda: moment)
    return set_to


def test_the_page_and_the_rule_agree_at_the_edges_of_the_window(factories, login_as, clock):
    now = utcnow()
    event = factories.event(signup_opens_at=now + timedelta(days=3), level_priority=True)
    opens, closes, starts = event.signup_opens_at, event.signup_closes_at, event.starts_at
    vip, newcomer = _vip(factories), factories.user()
    assert signup_window(event, vip, opens - timedelta(hours=48)).opens == opens - timedelta(hours=48)
    clients = {}

    def both(member, moment):
        clock(moment)
        client = clients.setdefault(member.id, login_as(member))
        client.set_cookie("lang", "en")
        page = _page_says(client, event)
        assert page == signup_window(db.session.get(Event, event.id), member, moment).state.value
        return page, _rule_says(client, event)

    one_tick = timedelta(microseconds=1)
    # Just before the VIP's level opens signup for them, then at that instant.
    assert both(vip, opens - timedelta(hours=48) - one_tick) == ("not_yet", "not_yet")
    assert both(newcomer, opens - timedelta(hours=48)) == ("not_yet", "not_yet"), "no early signup at Lv.1"
    assert both(vip, opens - timedelta(hours=48)) == ("open", "open")
    # The deadline: open until the instant it passes.
    assert both(factories.user(), closes - one_tick) == ("open", "open")
    assert both(factories.user(), closes) == ("closed", "closed")
    # After the start, closed for everyone, early or not.
    assert both(factories.user(), starts + timedelta(minutes=1)) == ("closed", "closed")
    seats = db.session.scalars(select(Registration).where(Registration.event_id == event.id)).all()
    assert len(seats) == 2 and {r.state for r in seats} == {"confirmed"}, "only the two open answers signed up"


def test_refundable_follows_the_cancellation_deadline(factories):
    event = factories.event(points_price=10)
    assert signup_window(event, None, event.cancel_deadline - timedelta(microseconds=1)).refundable
    assert not signup_window(event, None, event.cancel_deadline).refundable
