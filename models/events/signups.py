"""Members' side of an event: when signup opens for them (`signup_window`, the one answer the
rule and the event page share), signup, the waitlist and its promotions, cancellation.

Every change to an event's registrations starts by locking the event's row (a signup with
`UPDATE events SET signup_seq = signup_seq + 1 … RETURNING`, whose number is its arrival order;
the rest with `SELECT … FOR UPDATE`): on PostgreSQL that row lock serialises signups,
cancellations and promotions of one event; SQLite's `BEGIN IMMEDIATE` already serialises every
writer. Seats are then counted from the confirmed registrations inside the same transaction, so
capacity is never exceeded, and `(event_id, user_id)` is unique, so no one is registered twice.

Points go through the ledger's `spend`/`refund` (charged when a seat is confirmed, refunded on a
timely cancellation or when the event is cancelled); priority hours come from `level_of()`.
"""
from __future__ import annotations

import enum
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from models import N_, DomainError, db
from models.events.model import CODE_ALPHABET, CODE_LENGTH, Event, Registration, lock_event, next_arrival
from models.events.states import EventStatus, RegistrationState
from models.loyalty.ledger import NotEnoughPoints, expire_due, level_of, lock_member, refund, require_balance, spend
from models.notifications import notify
from models.types import SHANGHAI, utcnow

# Repeated no-shows suspend level priority: 2 within 90 days cost it for the next 90 days.
NO_SHOW_LIMIT = 2
NO_SHOW_WINDOW = timedelta(days=90)
SUSPENSION = timedelta(days=90)
PLATE_RE = re.compile(r"^[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼][A-Z][A-Z0-9]{5,6}$")
PHONE_RE = re.compile(r"^1[3-9]\d{9}$")

CONFIRMED, WAITLISTED, CANCELLED = RegistrationState.CONFIRMED, RegistrationState.WAITLISTED, RegistrationState.CANCELLED


# --- when signup opens, for whom -----------------------------------------------------------

def priority_suspended_until(member, now: datetime | None = None) -> datetime | None:
    """When a member's suspended level priority comes back, or None when it is not suspended."""
    now = now or utcnow()
    times = db.session.scalars(
        select(Event.ends_at).join(Registration, Registration.event_id == Event.id).where(
            Registration.user_id == member.id, Registration.no_show.is_(True),
            Event.ends_at > now - NO_SHOW_WINDOW - SUSPENSION,
        ).order_by(Event.ends_at)
    ).all()
    until = None
    for earlier, later in pairwise(times):
        if later - earlier <= NO_SHOW_WINDOW:
            until = later + SUSPENSION
    return until if until is not None and until > now else None


@dataclass(frozen=True)
class Opening:
    """When signup opens for one member, and why (a level's priority, or its suspension)."""
    at: datetime
    priority_hours: int
    suspended_until: datetime | None


def opening_for(event: Event, member, now: datetime | None = None) -> Opening:
    """When signup opens for MEMBER: the general opening, earlier by their level's priority hours
    unless the event does not use priority or repeated no-shows suspended it."""

    if not event.level_priority or member is None or not getattr(member, "is_authenticated", False):
        return Opening(event.signup_opens_at, 0, None)
    suspended = priority_suspended_until(member, now)
    hours = 0 if suspended is not None else level_of(member, now).priority_hours
    return Opening(event.signup_opens_at - timedelta(hours=hours), hours, suspended)


def opens_for(event: Event, member, now: datetime | None = None) -> datetime:
    return opening_for(event, member, now).at


class WindowState(str, enum.Enum):
    CLOSED = "closed"  # cancelled, over, not published, or past the signup deadline
    NOT_YET = "not_yet"  # opens later for this member (`opens`)
    OPEN = "open"


@dataclass(frozen=True)
class SignupWindow:
    """Whether MEMBER may sign up now, and when free cancellation ends: what the signup rule
    enforces and what the event page shows, computed once."""
    state: WindowState
    opens: datetime  # for this member: earlier by their level's priority hours
    priority_hours: int
    suspended_until: datetime | None  # repeated no-shows paused their priority until then
    started: bool
    refundable: bool  # a cancellation now gets the points price back
    refusal: tuple[str, dict] | None  # why it is not open: a msgid and its parameters

    @property
    def is_open(self) -> bool:
        return self.state is WindowState.OPEN

    @property
    def closed(self) -> bool:
        return self.state is WindowState.CLOSED

    @property
    def not_yet(self) -> bool:
        return self.state is WindowState.NOT_YET

    def refuse_unless_open(self) -> None:
        if self.refusal is not None:
            message, params = self.refusal
            raise DomainError(message, **params)


def _when(moment: datetime) -> str:
    """A time in messages: Shanghai wall-clock time, the same in both languages."""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def signup_window(event: Event, member, now: datetime | None = None) -> SignupWindow:
    """Closed (and why), not yet (opens at …) or open, for MEMBER at NOW; and refundable."""
    now = now or utcnow()
    opening = opening_for(event, member, now)
    started = now >= event.starts_at
    if event.status == EventStatus.CANCELLED:
        state, refusal = WindowState.CLOSED, (N_("This event was cancelled."), {})
    elif event.status == EventStatus.COMPLETED or started:
        state, refusal = WindowState.CLOSED, (N_("This event has already taken place."), {})
    elif event.status != EventStatus.PUBLISHED:
        state, refusal = WindowState.CLOSED, (N_("This event is not open for signup."), {})
    elif now >= event.signup_closes_at:
        state, refusal = WindowState.CLOSED, (N_("Signup closed on %(when)s."), {"when": _when(event.signup_closes_at)})
    elif now < opening.at:
        state, refusal = WindowState.NOT_YET, (N_("Signup opens for you on %(when)s."), {"when": _when(opening.at)})
    else:
        state, refusal = WindowState.OPEN, None
    return SignupWindow(state, opening.at, opening.priority_hours, opening.suspended_until, started,
                        refundable=now < event.cancel_deadline, refusal=refusal)


# --- signup --------------------------------------------------------------------------------

@dataclass
class SignupInput:
    companions: int = 0
    accept_safety: bool = False
    plate: str = ""
    emergency_name: str = ""
    emergency_phone: str = ""


def normalise_plate(value: str) -> str:
    return re.sub(r"[\s·.\-]", "", value or "").upper()



def _check_details(event: Event, data: SignupInput) -> dict:
    if not 0 <= data.companions <= event.companions_allowed:
        if event.companions_allowed == 0:
            raise DomainError(N_("This event does not allow companions."))
        raise DomainError(N_("You can bring at most %(max)s companions."), max=event.companions_allowed)
    if not event.is_road_trip:
        return {"plate": None, "emergency_name": None, "emergency_phone": None}
    if not data.accept_safety:
        raise DomainError(N_("Read and accept the safety notice to join this road trip."))
    plate = normalise_plate(data.plate)
    if not PLATE_RE.match(plate):
        raise DomainError(N_("Enter your licence plate, such as 粤B12345."))
    name = (data.emergency_name or "").strip()
    phone = re.sub(r"[\s-]", "", data.emergency_phone or "").removeprefix("+86")
    if not 1 <= len(name) <= 40 or not PHONE_RE.match(phone):
        raise DomainError(N_("Give an emergency contact's name and mobile number."))
    return {"plate": plate, "emergency_name": name, "emergency_phone": phone}


def _new_code(event: Event) -> str:
    taken = set(db.session.scalars(select(Registration.code).where(Registration.event_id == event.id)))
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if code not in taken:
            return code


def signup(event: Event, member, data: SignupInput, now: datetime | None = None) -> Registration:
    """Register MEMBER: confirmed (and charged) while seats remain, else waitlisted in arrival order."""

    now = now or utcnow()
    seq = next_arrival(event)
    # Then the member (always in this order: event, member). Taken before the registration row is
    # written, whose foreign key share-locks the member: two of one member's signups would
    # otherwise each hold that share lock while waiting for the other's `spend` lock (deadlock).
    lock_member(member)
    signup_window(event, member, now).refuse_unless_open()
    reg = event.registration_of(member)
    if reg is not None and reg.state == CONFIRMED:
        raise DomainError(N_("You are already signed up for this event."))
    if reg is not None and reg.state == WAITLISTED:
        raise DomainError(N_("You are already on the waitlist for this event."))
    details = _check_details(event, data)
    if event.points_price:
        # Refused before a waitlist place is taken, in the words of every other shortfall.
        expire_due(member, now)
        require_balance(member, event.points_price, now)
    token, code = secrets.token_urlsafe(18), _new_code(event)
    if reg is None:
        reg = Registration(event_id=event.id, user_id=member.id, created_at=now)
    reg.seq, reg.companions, reg.cancelled_at, reg.confirmed_at = seq, data.companions, None, None
    reg.ticket_token, reg.code = token, code
    reg.checked_in_at = reg.checked_in_by_id = None
    reg.points_paid, reg.no_show = 0, False
    reg.safety_accepted_at = now if event.is_road_trip else None
    for name, value in details.items():
        setattr(reg, name, value)
    reg.state = WAITLISTED.value
    db.session.add(reg)
    db.session.flush()
    if event.seats_taken() + reg.seats <= event.capacity:
        _confirm(reg, now)
        db.session.flush()
    _tell_signed_up(reg)
    return reg


def _tell_signed_up(reg: Registration) -> None:
    """An inbox notice with the ticket's link, confirmed or waitlisted (one per signup: `seq`)."""

    event, link = reg.event, f"/me/tickets#ticket-{reg.id}"
    if reg.state == CONFIRMED:
        notify(reg.user, "event_signed_up", {"title": event.title}, link=link,
               dedupe_key=f"event-signup:{event.id}:{reg.seq}")
    else:
        notify(reg.user, "event_waitlisted", {"title": event.title, "position": reg.waitlist_position()},
               link=link, dedupe_key=f"event-waitlist:{event.id}:{reg.seq}")


def _confirm(reg: Registration, now: datetime) -> None:
    """Give REG its seat, charging the points price first (NotEnoughPoints leaves it as it was)."""

    price = reg.event.points_price
    if price:
        spend(reg.user, price, cause=reg, key=f"event-fee:{reg.event_id}:{reg.seq}", reason=N_("Event signup"), now=now)
    reg.points_paid = price
    reg.state, reg.confirmed_at = CONFIRMED.value, now


def refund_seat(reg: Registration, now: datetime) -> int:
    """Give back the points paid for REG's seat (keyed: once per signup). Returns how many."""

    if not reg.points_paid:
        return 0
    paid = reg.points_paid
    refund(reg.user, paid, cause=reg, key=f"event-refund:{reg.event_id}:{reg.seq}", reason=N_("Event signup refunded"),
           now=now)
    reg.points_paid = 0
    return paid


@dataclass
class Cancellation:
    registration: Registration
    refunded: int
    late: bool  # after the cancellation deadline, with a points price paid: it is kept


def cancel_registration(event: Event, member, now: datetime | None = None) -> Cancellation:
    """MEMBER gives up their place: refunded before the deadline; the freed seats go to the waitlist."""
    now = now or utcnow()
    lock_event(event)
    reg = event.registration_of(member)
    if reg is None or reg.state == CANCELLED:
        raise DomainError(N_("You are not signed up for this event."))
    if event.status != EventStatus.PUBLISHED or now >= event.starts_at:
        raise DomainError(N_("This event has started or ended: the signup can no longer be cancelled."))
    was_confirmed = reg.state == CONFIRMED
    late = was_confirmed and bool(reg.points_paid) and now >= event.cancel_deadline  # only a price can be kept
    refunded = refund_seat(reg, now) if was_confirmed and not late else 0
    reg.state, reg.cancelled_at = CANCELLED.value, now
    db.session.flush()
    if was_confirmed:
        promote_waitlisted(event, now)
    return Cancellation(reg, refunded, late)


def promote_waitlisted(event: Event, now: datetime | None = None) -> list[Registration]:
    """Fill free seats from the waitlist in arrival order, skipping whoever does not fit; a member
    who can no longer pay the points price is skipped and told. Call with the event locked."""

    now = now or utcnow()
    if event.status != EventStatus.PUBLISHED or now >= event.starts_at:
        return []
    free = event.capacity - event.seats_taken()
    promoted = []
    for reg in registrations_in(event, WAITLISTED):
        if free <= 0:
            break
        if reg.seats > free:
            continue
        try:
            with db.session.begin_nested():
                _confirm(reg, now)
        except NotEnoughPoints:
            db.session.refresh(reg)
            notify(reg.user, "event_promotion_skipped", {"title": event.title, "points": event.points_price},
                   link=f"/events/{event.id}", dedupe_key=f"event-skipped:{event.id}:{reg.seq}")
            continue
        free -= reg.seats
        promoted.append(reg)
        notify(reg.user, "event_promoted", {"title": event.title}, link=f"/events/{event.id}",
               dedupe_key=f"event-promoted:{event.id}:{reg.seq}")
    db.session.flush()
    return promoted


def registrations_in(event: Event, *states: str) -> list[Registration]:
    return list(db.session.scalars(
        select(Registration).where(Registration.event_id == event.id, Registration.state.in_(states))
        .options(joinedload(Registration.user)).order_by(Registration.seq)
    ))
