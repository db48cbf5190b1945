"""Events (线下活动): offline meetups with capacity, a waitlist, level priority, a points price,
QR tickets and venue check-in.

Every change to an event's registrations starts by locking the event's row (a signup with
`UPDATE events SET signup_seq = signup_seq + 1 … RETURNING`, whose number is its arrival order;
the rest with `SELECT … FOR UPDATE`): on PostgreSQL that row lock serialises signups,
cancellations and promotions of one event; SQLite's `BEGIN IMMEDIATE` already serialises every
writer. Seats are then
counted from the confirmed registrations inside the same transaction, so capacity is never
exceeded, and `(event_id, user_id)` is unique, so no one is registered twice.

Points go through the ledger's `spend`/`refund` (charged when a seat is confirmed, refunded on
a timely cancellation or when the event is cancelled); attendance pays `award(…,
"event_attended", …)`; priority hours come from `level_of()`.
"""
from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from urllib.parse import quote, urlsplit

from sqlalchemy import (
    CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, case, func, or_, select, update,
)
from sqlalchemy.orm import Mapped, joinedload, mapped_column, relationship

from models import N_, DomainError, db
from models.markup import render_markdown
from models.types import SHANGHAI, UTCDateTime, shanghai_day, shanghai_midnight, utcnow

# Kind code -> English msgid (translated when shown).
KINDS = {
    "meetup": N_("Meetup"),
    "road_trip": N_("Road trip"),
    "workshop": N_("Modding workshop"),
    "fair": N_("Car fair"),
}
STATUSES = ("draft", "published", "cancelled", "completed")
TITLE_MIN, TITLE_MAX = 2, 60
DESCRIPTION_MAX = 5000
MAX_CAPACITY = 2000
MAX_COMPANIONS = 5
MAX_PRICE = 100_000
MAX_ATTENDANCE_POINTS = 1000
# Repeated no-shows suspend level priority: 2 within 90 days cost it for the next 90 days.
NO_SHOW_LIMIT = 2
NO_SHOW_WINDOW = timedelta(days=90)
SUSPENSION = timedelta(days=90)
# A device's clock may be off; a scan time is kept only within this margin of the event.
SCAN_MARGIN = timedelta(hours=12)
# Maps Chinese phones open (Amap 高德, Baidu 百度): Google Maps does not load in China.
MAP_HOSTS = ("amap.com", "map.baidu.com")
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
CODE_LENGTH = 6
PLATE_RE = re.compile(r"^[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼][A-Z][A-Z0-9]{5,6}$")
PHONE_RE = re.compile(r"^1[3-9]\d{9}$")


class Event(db.Model):
    __tablename__ = "events"
    __table_args__ = (
        Index("uq_events_organizer_id_create_nonce", "organizer_id", "create_nonce", unique=True),
        CheckConstraint("status IN ('draft','published','cancelled','completed')", name="known_status"),
        CheckConstraint("kind IN ('meetup','road_trip','workshop','fair')", name="known_kind"),
        CheckConstraint("capacity > 0", name="capacity_positive"),
        CheckConstraint("companions_allowed BETWEEN 0 AND 5", name="companions_range"),
        CheckConstraint("points_price >= 0 AND attendance_points >= 0", name="points_not_negative"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("signup_closes_at > signup_opens_at", name="signup_window"),
        Index("ix_events_listing", "status", "starts_at", "id"),
        Index("ix_events_community", "community_id", "status", "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id", ondelete="RESTRICT"), nullable=False)
    organizer_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(12), nullable=False, default="meetup")
    title: Mapped[str] = mapped_column(String(TITLE_MAX), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    description_html: Mapped[str] = mapped_column(Text, nullable=False, default="")  # sanitized when saved
    # Indexed: /media finds the event a cover belongs to by its key (a draft's cover is private).
    cover_key: Mapped[str | None] = mapped_column(String(200), index=True)
    cover_thumb_key: Mapped[str | None] = mapped_column(String(200), index=True)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    place: Mapped[str] = mapped_column(String(80), nullable=False)
    address: Mapped[str] = mapped_column(String(200), nullable=False)
    map_url: Mapped[str] = mapped_column(String(500), nullable=False)
    capacity: Mapped[int] = mapped_column(nullable=False)
    companions_allowed: Mapped[int] = mapped_column(nullable=False, default=0)
    signup_opens_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    signup_closes_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    cancel_deadline: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    points_price: Mapped[int] = mapped_column(nullable=False, default=0)
    attendance_points: Mapped[int] = mapped_column(nullable=False, default=0)
    level_priority: Mapped[bool] = mapped_column(nullable=False, default=True)
    safety_notice: Mapped[str | None] = mapped_column(Text)  # road trips: members must accept it
    status: Mapped[str] = mapped_column(String(10), nullable=False, default="draft")
    cancel_message: Mapped[str | None] = mapped_column(String(500))
    # Bumped by every change to the registrations: the row lock that serialises them, and
    # the arrival order of signups.
    signup_seq: Mapped[int] = mapped_column(nullable=False, default=0)
    # The new-event form's one-time nonce: a repeated submission returns the first draft.
    create_nonce: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    community = relationship("Community")
    organizer = relationship("User")

    @property
    def is_road_trip(self) -> bool:
        return self.kind == "road_trip"

    @property
    def kind_label(self) -> str:
        return KINDS.get(self.kind, self.kind)

    def visible_to(self, viewer) -> bool:
        """Drafts are seen only by those who manage the event; everything else is public."""
        return self.status != "draft" or can_manage(viewer, self)

    @classmethod
    def with_cover(cls, key: str) -> Event | None:
        """The event whose cover (photo or thumbnail) is stored under KEY: one query on the indexed keys."""
        return db.session.scalar(select(cls).where(or_(cls.cover_key == key, cls.cover_thumb_key == key)).limit(1))

    def has_started(self, now: datetime | None = None) -> bool:
        return (now or utcnow()) >= self.starts_at

    def signup_open(self, opens: datetime, now: datetime | None = None) -> bool:
        """Whether signup is open now for a member whose signup opens at OPENS."""
        now = now or utcnow()
        return self.status == "published" and opens <= now < self.signup_closes_at and now < self.starts_at

    def seats_taken(self) -> int:
        return db.session.scalar(
            select(func.coalesce(func.sum(1 + Registration.companions), 0)).where(
                Registration.event_id == self.id, Registration.state == "confirmed"
            )
        )

    def registration_of(self, member) -> Registration | None:
        if member is None or not getattr(member, "is_authenticated", False):
            return None
        return db.session.scalar(
            select(Registration).where(Registration.event_id == self.id, Registration.user_id == member.id)
        )


class Registration(db.Model):
    __tablename__ = "event_registrations"
    __table_args__ = (
        UniqueConstraint("event_id", "user_id"),
        UniqueConstraint("event_id", "code"),
        CheckConstraint("state IN ('confirmed','waitlisted','cancelled')", name="known_state"),
        CheckConstraint("companions BETWEEN 0 AND 5", name="companions_range"),
        CheckConstraint("points_paid >= 0", name="paid_not_negative"),
        Index("ix_event_registrations_queue", "event_id", "state", "seq"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="RESTRICT"), nullable=False)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), nullable=False, index=True)
    state: Mapped[str] = mapped_column(String(10), nullable=False)
    companions: Mapped[int] = mapped_column(nullable=False, default=0)
    seq: Mapped[int] = mapped_column(nullable=False)  # arrival order within the event
    # The ticket: an unguessable token (in the QR) and a short code to type.
    ticket_token: Mapped[str] = mapped_column(String(40), nullable=False, unique=True)
    code: Mapped[str] = mapped_column(String(CODE_LENGTH), nullable=False)
    plate: Mapped[str | None] = mapped_column(String(12))
    emergency_name: Mapped[str | None] = mapped_column(String(40))
    emergency_phone: Mapped[str | None] = mapped_column(String(20))
    safety_accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The points price charged for the seat; its ledger keys carry `seq`, new at each signup.
    points_paid: Mapped[int] = mapped_column(nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    checked_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # the earliest scan
    checked_in_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    no_show: Mapped[bool] = mapped_column(nullable=False, default=False)

    event: Mapped[Event] = relationship()
    user = relationship("User", foreign_keys=[user_id])

    @property
    def seats(self) -> int:
        return 1 + self.companions

    @property
    def display_code(self) -> str:
        return f"{self.code[:3]}-{self.code[3:]}"

    def waitlist_position(self) -> int | None:
        if self.state != "waitlisted":
            return None
        return 1 + db.session.scalar(
            select(func.count()).select_from(Registration).where(
                Registration.event_id == self.event_id, Registration.state == "waitlisted",
                Registration.seq < self.seq,
            )
        )


# --- who may do what -----------------------------------------------------------------------

def can_manage(user, event: Event) -> bool:
    """Organizers of the event's community and admins manage it (and check people in)."""
    return bool(user is not None and getattr(user, "is_authenticated", False)
                and user.has_role("organizer", community=event.community_id))


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
    from models.levels import level_of

    if not event.level_priority or member is None or not getattr(member, "is_authenticated", False):
        return Opening(event.signup_opens_at, 0, None)
    suspended = priority_suspended_until(member, now)
    hours = 0 if suspended is not None else level_of(member, now).priority_hours
    return Opening(event.signup_opens_at - timedelta(hours=hours), hours, suspended)


def opens_for(event: Event, member, now: datetime | None = None) -> datetime:
    return opening_for(event, member, now).at


# --- organizers: create, edit, publish, cancel, complete -----------------------------------

@dataclass
class EventInput:
    community: object
    kind: str
    title: str
    description: str
    starts_at: datetime | None
    ends_at: datetime | None
    place: str
    address: str
    map_url: str
    capacity: int | None
    companions_allowed: int
    signup_opens_at: datetime | None
    signup_closes_at: datetime | None
    cancel_deadline: datetime | None
    points_price: int = 0
    attendance_points: int = 0
    level_priority: bool = True
    safety_notice: str = ""
    cover_key: str | None = None
    cover_thumb_key: str | None = None


def default_map_url(address: str) -> str:
    """An Amap search for the address, when the organizer gives no link."""
    return "https://uri.amap.com/search?keyword=" + quote(address)


def check_map_url(url: str) -> str:
    url = (url or "").strip()
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not any(host == h or host.endswith("." + h) for h in MAP_HOSTS):
        raise DomainError(N_("Use an Amap (高德) or Baidu map link starting with https://."))
    return url


def validate_event(data: EventInput) -> None:
    """The rules of a well-formed event, with messages organizers understand."""
    title = (data.title or "").strip()
    if not TITLE_MIN <= len(title) <= TITLE_MAX:
        raise DomainError(N_("A title has %(min)s to %(max)s characters."), min=TITLE_MIN, max=TITLE_MAX)
    if data.kind not in KINDS:
        raise DomainError(N_("Choose a kind of event from the list."))
    if len(data.description or "") > DESCRIPTION_MAX:
        raise DomainError(N_("The description can be at most %(max)s characters."), max=DESCRIPTION_MAX)
    if not all((data.starts_at, data.ends_at, data.signup_opens_at, data.signup_closes_at, data.cancel_deadline)):
        raise DomainError(N_("Fill in every date and time."))
    if data.ends_at <= data.starts_at:
        raise DomainError(N_("The end must be after the start."))
    if data.signup_closes_at <= data.signup_opens_at:
        raise DomainError(N_("Signup must close after it opens."))
    if data.signup_closes_at > data.starts_at:
        raise DomainError(N_("Signup must close before the event starts."))
    if data.cancel_deadline > data.starts_at:
        raise DomainError(N_("The cancellation deadline must be before the event starts."))
    if not (data.place or "").strip() or not (data.address or "").strip():
        raise DomainError(N_("Give the place and its address."))
    if data.capacity is None or not 1 <= data.capacity <= MAX_CAPACITY:
        raise DomainError(N_("Capacity is between 1 and %(max)s people."), max=MAX_CAPACITY)
    if not 0 <= data.companions_allowed <= MAX_COMPANIONS:
        raise DomainError(N_("Each member may bring 0 to %(max)s companions."), max=MAX_COMPANIONS)
    if not 0 <= data.points_price <= MAX_PRICE:
        raise DomainError(N_("The points price is between 0 and %(max)s."), max=MAX_PRICE)
    if not 0 <= data.attendance_points <= MAX_ATTENDANCE_POINTS:
        raise DomainError(N_("The attendance reward is between 0 and %(max)s points."), max=MAX_ATTENDANCE_POINTS)
    if data.kind == "road_trip" and len((data.safety_notice or "").strip()) < 10:
        raise DomainError(N_("A road trip needs a safety notice (at least 10 characters) for members to accept."))


def save_event(actor, data: EventInput, event: Event | None = None, now: datetime | None = None,
               nonce: str | None = None) -> Event:
    """Create or edit an event (flushes only); refuses to drop capacity below the confirmed seats.
    Raising capacity promotes waitlisted members into the new seats. A new event from the form
    carries its one-time NONCE: a repeat raises `AlreadySubmitted` with the first draft."""
    from models.audit import audit
    from models.content_filter import refuse_blocked
    from models.nonces import AlreadySubmitted, check_nonce
    from models.points import lock_member

    now = now or utcnow()
    if event is None and nonce is not None:
        check_nonce(nonce)
        lock_member(actor)  # one submission of a nonce at a time; the others find its draft
        first = db.session.scalar(select(Event).where(Event.organizer_id == actor.id, Event.create_nonce == nonce))
        if first is not None:
            raise AlreadySubmitted(first)
    validate_event(data)
    if not actor.has_role("organizer", community=data.community):
        raise DomainError(N_("You can only create events in communities you organize."))
    refuse_blocked(data.title, data.description, data.safety_notice or "")
    if event is not None and event.status in ("cancelled", "completed"):
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
        if event.status == "published":
            promote_waitlisted(event, now)
    return event


def publish_event(event: Event, actor, now: datetime | None = None) -> Event:
    from models.audit import audit

    now = now or utcnow()
    lock_event(event)
    if event.status != "draft":
        raise DomainError(N_("Only a draft can be published."))
    if event.starts_at <= now:
        raise DomainError(N_("This event's start is in the past: change the date before publishing."))
    event.status, event.published_at, event.updated_at = "published", now, now
    audit(actor, "event.publish", event, before={"status": "draft"}, after={"status": "published"})
    return event


def cancel_event(event: Event, actor, message: str, now: datetime | None = None) -> int:
    """Cancel the event: every signup ends with it, and a job then refunds and tells everyone
    (hundreds of ledger postings and messages do not belong in the organizer's request).
    Returns how many will be told."""
    from models.audit import audit
    from services.jobs import enqueue

    now = now or utcnow()
    message = (message or "").strip()
    if not 5 <= len(message) <= 500:
        raise DomainError(N_("Tell members why the event is cancelled (5 to 500 characters)."))
    lock_event(event)
    if event.status not in ("draft", "published"):
        raise DomainError(N_("This event is already cancelled or completed."))
    was = event.status
    event.status, event.cancelled_at, event.cancel_message, event.updated_at = "cancelled", now, message, now
    ended = _registrations(event, "confirmed", "waitlisted")
    for reg in ended:
        reg.state, reg.cancelled_at = "cancelled", now
    audit(actor, "event.cancel", event, before={"status": was}, after={"status": "cancelled", "message": message})
    enqueue("services.tasks.settle_cancelled_event", event.id)
    return len(ended)


def settle_cancelled_event(event: Event, now: datetime | None = None) -> None:
    """Refund and tell everyone whose signup ended with the cancelled event; a rerun refunds and
    tells no one twice (the refund and the message are keyed)."""
    from models.notifications import notify

    ended = db.session.scalars(
        select(Registration).where(Registration.event_id == event.id, Registration.state == "cancelled",
                                   Registration.cancelled_at == event.cancelled_at)
        .options(joinedload(Registration.user), joinedload(Registration.event)).order_by(Registration.seq)
    ).all()
    for reg in ended:
        refunded = _refund(reg, now or utcnow())
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
    from models.audit import audit
    from services.jobs import enqueue

    now = now or utcnow()
    lock_event(event)
    if event.status != "published":
        raise DomainError(N_("Only a published event can be marked completed."))
    if now < event.starts_at:
        raise DomainError(N_("An event can be marked completed once it has started."))
    event.status, event.completed_at, event.updated_at = "completed", now, now
    attended = no_shows = 0
    for reg in _registrations(event, "confirmed"):
        if reg.checked_in_at is not None:
            attended += 1
        else:
            reg.no_show = True
            no_shows += 1
    audit(actor, "event.complete", event, before={"status": "published"},
          after={"status": "completed", "attended": attended, "no_shows": no_shows})
    enqueue("services.tasks.pay_event_attendance", event.id)
    return attended, no_shows


def pay_attendances(event: Event, now: datetime | None = None) -> int:
    """Pay every checked-in member of a completed event; a rerun pays no one twice (`award` is
    keyed per member and event). Returns how many were checked in."""
    regs = db.session.scalars(
        select(Registration).where(Registration.event_id == event.id, Registration.state == "confirmed",
                                   Registration.checked_in_at.is_not(None))
        .options(joinedload(Registration.user), joinedload(Registration.event))
    ).all()
    for reg in regs:
        pay_attendance(reg, now)
    return len(regs)


def pay_attendance(reg: Registration, now: datetime | None = None) -> None:
    """The event's attendance reward (once), and a first attended event qualifies a referral."""
    from models.points import award
    from models.referrals import qualify_referral

    if reg.event.attendance_points > 0:
        award(reg.user, "event_attended", cause=reg, key=f"event-attended:{reg.event_id}",
              points=reg.event.attendance_points, now=now)
    qualify_referral(reg.user, cause=reg)


# --- members: signup, cancel, the waitlist -------------------------------------------------

@dataclass
class SignupInput:
    companions: int = 0
    accept_safety: bool = False
    plate: str = ""
    emergency_name: str = ""
    emergency_phone: str = ""


def normalise_plate(value: str) -> str:
    return re.sub(r"[\s·.\-]", "", value or "").upper()


def lock_event(event: Event) -> None:
    """Hold the event's row until commit (PostgreSQL; SQLite's BEGIN IMMEDIATE already holds the
    database) and reload it, so status, capacity and seats are read as of the lock."""
    # FOR NO KEY UPDATE, like the signup's UPDATE: registration inserts key-share lock the event.
    db.session.execute(select(Event.id).where(Event.id == event.id).with_for_update(key_share=True))
    db.session.refresh(event)


def next_arrival(event: Event) -> int:
    """Lock the event's row like `lock_event` and return the next arrival number for a signup."""
    seq = db.session.execute(
        update(Event).where(Event.id == event.id).values(signup_seq=Event.signup_seq + 1)
        .returning(Event.signup_seq)
    ).scalar_one()
    db.session.refresh(event)
    return seq


def _when(moment: datetime) -> str:
    """A time in messages: Shanghai wall-clock time, the same in both languages."""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def _refuse_closed(event: Event, member, now: datetime) -> None:
    if event.status == "cancelled":
        raise DomainError(N_("This event was cancelled."))
    if event.status == "completed" or now >= event.starts_at:
        raise DomainError(N_("This event has already taken place."))
    if event.status != "published":
        raise DomainError(N_("This event is not open for signup."))
    if now >= event.signup_closes_at:
        raise DomainError(N_("Signup closed on %(when)s."), when=_when(event.signup_closes_at))
    opens = opens_for(event, member, now)
    if now < opens:
        raise DomainError(N_("Signup opens for you on %(when)s."), when=_when(opens))


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
    from models.points import NotEnoughPoints, balance_of, expire_due, lock_member

    now = now or utcnow()
    seq = next_arrival(event)
    # Then the member (always in this order: event, member). Taken before the registration row is
    # written, whose foreign key share-locks the member: two of one member's signups would
    # otherwise each hold that share lock while waiting for the other's `spend` lock (deadlock).
    lock_member(member)
    _refuse_closed(event, member, now)
    reg = event.registration_of(member)
    if reg is not None and reg.state == "confirmed":
        raise DomainError(N_("You are already signed up for this event."))
    if reg is not None and reg.state == "waitlisted":
        raise DomainError(N_("You are already on the waitlist for this event."))
    details = _check_details(event, data)
    if event.points_price:
        expire_due(member, now)
        if balance_of(member) < event.points_price:
            raise NotEnoughPoints(N_("You need %(points)s points but have %(balance)s."),
                                  points=event.points_price, balance=balance_of(member))
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
    reg.state = "waitlisted"
    db.session.add(reg)
    db.session.flush()
    if event.seats_taken() + reg.seats <= event.capacity:
        _confirm(reg, now)
        db.session.flush()
    _tell_signed_up(reg)
    return reg


def _tell_signed_up(reg: Registration) -> None:
    """An inbox notice with the ticket's link, confirmed or waitlisted (one per signup: `seq`)."""
    from models.notifications import notify

    event, link = reg.event, f"/me/tickets#ticket-{reg.id}"
    if reg.state == "confirmed":
        notify(reg.user, "event_signed_up", {"title": event.title}, link=link,
               dedupe_key=f"event-signup:{event.id}:{reg.seq}")
    else:
        notify(reg.user, "event_waitlisted", {"title": event.title, "position": reg.waitlist_position()},
               link=link, dedupe_key=f"event-waitlist:{event.id}:{reg.seq}")


def _confirm(reg: Registration, now: datetime) -> None:
    """Give REG its seat, charging the points price first (NotEnoughPoints leaves it as it was)."""
    from models.points import spend

    price = reg.event.points_price
    if price:
        spend(reg.user, price, cause=reg, key=f"event-fee:{reg.event_id}:{reg.seq}", reason=N_("Event signup"), now=now)
    reg.points_paid = price
    reg.state, reg.confirmed_at = "confirmed", now


def _refund(reg: Registration, now: datetime) -> int:
    from models.points import refund

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
    if reg is None or reg.state == "cancelled":
        raise DomainError(N_("You are not signed up for this event."))
    if event.status != "published" or now >= event.starts_at:
        raise DomainError(N_("This event has started or ended: the signup can no longer be cancelled."))
    was_confirmed = reg.state == "confirmed"
    late = was_confirmed and bool(reg.points_paid) and now >= event.cancel_deadline  # only a price can be kept
    refunded = _refund(reg, now) if was_confirmed and not late else 0
    reg.state, reg.cancelled_at = "cancelled", now
    db.session.flush()
    if was_confirmed:
        promote_waitlisted(event, now)
    return Cancellation(reg, refunded, late)


def promote_waitlisted(event: Event, now: datetime | None = None) -> list[Registration]:
    """Fill free seats from the waitlist in arrival order, skipping whoever does not fit; a member
    who can no longer pay the points price is skipped and told. Call with the event locked."""
    from models.notifications import notify
    from models.points import NotEnoughPoints

    now = now or utcnow()
    if event.status != "published" or now >= event.starts_at:
        return []
    free = event.capacity - event.seats_taken()
    promoted = []
    for reg in _registrations(event, "waitlisted"):
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


def _registrations(event: Event, *states: str) -> list[Registration]:
    return list(db.session.scalars(
        select(Registration).where(Registration.event_id == event.id, Registration.state.in_(states))
        .options(joinedload(Registration.user)).order_by(Registration.seq)
    ))


def roster(event: Event) -> list[Registration]:
    """Confirmed registrations, then the waitlist, with members in the same query."""
    return list(db.session.scalars(
        select(Registration).where(Registration.event_id == event.id, Registration.state != "cancelled")
        .options(joinedload(Registration.user))
        .order_by(case((Registration.state == "confirmed", 0), else_=1), Registration.seq)
    ))


# --- jobs ----------------------------------------------------------------------------------

def send_reminders(now: datetime | None = None) -> int:
    """Send "tomorrow" reminders for confirmed members of events starting on the next Shanghai day,
    sent from 09:00 Shanghai time the day before; the dedupe key makes a rerun send nothing."""
    from models.notifications import notify

    now = now or utcnow()
    if now.astimezone(SHANGHAI).hour < 9:
        return 0
    tomorrow = shanghai_day(now) + timedelta(days=1)
    start, end = shanghai_midnight(tomorrow), shanghai_midnight(tomorrow + timedelta(days=1))
    regs = db.session.scalars(
        select(Registration).join(Event, Event.id == Registration.event_id).where(
            Event.status == "published", Event.starts_at >= start, Event.starts_at < end,
            Registration.state == "confirmed",
        ).options(joinedload(Registration.event), joinedload(Registration.user))
    ).all()
    for reg in regs:
        notify(reg.user, "event_reminder",
               {"title": reg.event.title, "time": reg.event.starts_at.astimezone(SHANGHAI).strftime("%H:%M"),
                "place": reg.event.place},
               link=f"/events/{reg.event_id}", dedupe_key=f"event-reminder:{reg.event_id}")
    return len(regs)


AUTO_COMPLETE_AFTER = timedelta(hours=6)


def due_for_completion(now: datetime | None = None) -> list[int]:
    """Published events that ended a while ago and nobody closed."""
    now = now or utcnow()
    return list(db.session.scalars(
        select(Event.id).where(Event.status == "published", Event.ends_at <= now - AUTO_COMPLETE_AFTER)
    ))
