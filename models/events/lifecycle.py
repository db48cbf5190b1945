"""Organizers' side of an event: create and edit, then publish, cancel or complete it (each
move through the state machine of `states`), and the jobs that settle a cancelled event and
pay a completed one's attendance."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from models import N_, DomainError, db
from models.audit import audit
from models.content_filter import refuse_blocked
from models.events.form_input import EventInput, check_map_url, default_map_url, validate_event
from models.events.model import Event, Registration, lock_event
from models.events.signups import promote_waitlisted, refund_seat, registrations_in
from models.events.states import EventStatus, RegistrationState, check_transition, transition
from models.loyalty.ledger import award
from models.markup import render_markdown
from models.nonces import AlreadySubmitted, first_submission
from models.notifications import notify
from models.outbox import enqueue
from models.referrals import qualify_referral
from models.types import utcnow


def save_event(actor, data: EventInput, event: Event | None = None, now: datetime | None = None,
               nonce: str | None = None) -> Event:
    """Create or edit an event (flushes only); refuses to drop capacity below the confirmed seats.
    Raising capacity promotes waitlisted members into the new seats. A new event from the form
    carries its one-time NONCE: a repeat raises `AlreadySubmitted` with the first draft."""

    now = now or utcnow()
    if event is None and nonce is not None:
        first = first_submission(actor, nonce, Event.create_nonce, Event.organizer_id)
        if first is not None:
            raise AlreadySubmitted(first)
    validate_event(data)
    if not actor.has_role("organizer", community=data.community):
        raise DomainError(N_("You can only create events in communities you organize."))
    refuse_blocked(data.title, data.description, data.safety_notice or "")
    if event is not None and event.status in (EventStatus.CANCELLED, EventStatus.COMPLETED):
        raise DomainError(N_("A cancelled or completed event can no longer be edited."))
    before = None
    if event is None:
        event = Event(organizer_id=actor.id, created_at=now, signup_seq=0, create_nonce=nonce)
    else:
        lock_event(event)
        taken = event.seats_taken()
        if data.capacity < taken:
            raise DomainError(N_("%(taken)s seats are already confirmed: capacity cannot go below that."),
                              taken=taken)
        before = {"capacity": event.capacity, "starts_at": event.starts_at.isoformat(),
                  "points_price": event.points_price}
    event.community_id = data.community.id
    event.kind = data.kind
    event.title = data.title.strip()
    event.description = (data.description or "").strip()
    event.description_html = render_markdown(event.description)
    event.starts_at, event.ends_at = data.starts_at, data.ends_at
    event.place, event.address = data.place.strip(), data.address.strip()
    event.map_url = check_map_url(data.map_url) if (data.map_url or "").strip() else default_map_url(event.address)
    event.capacity = data.capacity
    event.companions_allowed = data.companions_allowed
    event.signup_opens_at, event.signup_closes_at = data.signup_opens_at, data.signup_closes_at
    event.cancel_deadline = data.cancel_deadline
    event.points_price, event.attendance_points = data.points_price, data.attendance_points
    event.level_priority = data.level_priority
    event.safety_notice = (data.safety_notice or "").strip() or None if data.kind == "road_trip" else None
    if data.cover_key:
        event.cover_key, event.cover_thumb_key = data.cover_key, data.cover_thumb_key
    event.updated_at = now
    db.session.add(event)
    db.session.flush()
    if before is not None:
        audit(actor, "event.edit", event, before=before,
              after={"capacity": event.capacity, "starts_at": event.starts_at.isoformat(),
                     "points_price": event.points_price})
        if event.status == EventStatus.PUBLISHED:
            promote_waitlisted(event, now)
    return event


def publish_event(event: Event, actor, now: datetime | None = None) -> Event:
    now = now or utcnow()
    lock_event(event)
    check_transition(event, EventStatus.PUBLISHED)
    if event.starts_at <= now:
        raise DomainError(N_("This event's start is in the past: change the date before publishing."))
    transition(event, EventStatus.PUBLISHED, actor, now)
    return event


def cancel_event(event: Event, actor, message: str, now: datetime | None = None) -> int:
    """Cancel the event: every signup ends with it, and a job then refunds and tells everyone
    (hundreds of ledger postings and messages do not belong in the organizer's request).
    Returns how many will be told."""

    now = now or utcnow()
    message = (message or "").strip()
    if not 5 <= len(message) <= 500:
        raise DomainError(N_("Tell members why the event is cancelled (5 to 500 characters)."))
    lock_event(event)
    transition(event, EventStatus.CANCELLED, actor, now, message=message)
    event.cancel_message = message
    # The signups end with the event, at the same instant: `settle_cancelled_event` finds them by it.
    ended = registrations_in(event, RegistrationState.CONFIRMED, RegistrationState.WAITLISTED)
    for reg in ended:
        reg.state, reg.cancelled_at = RegistrationState.CANCELLED.value, now
    enqueue("services.tasks.settle_cancelled_event", event.id)
    return len(ended)


def settle_cancelled_event(event: Event, now: datetime | None = None) -> None:
    """Refund and tell everyone whose signup ended with the cancelled event; a rerun refunds and
    tells no one twice (the refund and the message are keyed)."""

    ended = db.session.scalars(
        select(Registration).where(Registration.event_id == event.id, Registration.state == RegistrationState.CANCELLED,
                                   Registration.cancelled_at == event.cancelled_at)
        .options(joinedload(Registration.user), joinedload(Registration.event)).order_by(Registration.seq)
    ).all()
    for reg in ended:
        refunded = refund_seat(reg, now or utcnow())
        # Only those who paid hear about a refund (a free event's members have nothing back).
        params = {"title": event.title, "message": event.cancel_message}
        if refunded:
            notify(reg.user, "event_cancelled_refunded", params | {"points": refunded},
                   link=f"/events/{event.id}", dedupe_key=f"event-cancelled:{event.id}")
        else:
            notify(reg.user, "event_cancelled", params, link=f"/events/{event.id}",
                   dedupe_key=f"event-cancelled:{event.id}")


def complete_event(event: Event, actor=None, now: datetime | None = None) -> tuple[int, int]:
    """Close the event: check-ins become attendance, the other confirmed seats no-shows.
    Returns (attended, no-shows). The rewards are paid by a job after the commit: at a car
    fair that is hundreds of ledger postings, which do not belong in the organizer's request."""

    now = now or utcnow()
    lock_event(event)
    check_transition(event, EventStatus.COMPLETED)
    if now < event.starts_at:
        raise DomainError(N_("An event can be marked completed once it has started."))
    attended = no_shows = 0
    for reg in registrations_in(event, RegistrationState.CONFIRMED):
        if reg.checked_in_at is not None:
            attended += 1
        else:
            reg.no_show = True
            no_shows += 1
    transition(event, EventStatus.COMPLETED, actor, now, attended=attended, no_shows=no_shows)
    enqueue("services.tasks.pay_event_attendance", event.id)
    return attended, no_shows


def pay_attendances(event: Event, now: datetime | None = None) -> int:
    """Pay every checked-in member of a completed event; a rerun pays no one twice (`award` is
    keyed per member and event). Returns how many were checked in."""
    regs = db.session.scalars(
        select(Registration).where(Registration.event_id == event.id, Registration.state == RegistrationState.CONFIRMED,
                                   Registration.checked_in_at.is_not(None))
        .options(joinedload(Registration.user), joinedload(Registration.event))
    ).all()
    for reg in regs:
        pay_attendance(reg, now)
    return len(regs)


def pay_attendance(reg: Registration, now: datetime | None = None) -> None:
    """The event's attendance reward (once), and a first attended event qualifies a referral."""

    if reg.event.attendance_points > 0:
        award(reg.user, "event_attended", cause=reg, key=f"event-attended:{reg.event_id}",
              points=reg.event.attendance_points, now=now)
    qualify_referral(reg.user, cause=reg)
