"""Events (线下活动) and registrations: the two tables, their limits, and who may see or manage an
event. The rules that change them live beside this module: `lifecycle`, `signup`, `checkin`."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, func, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models import N_, db
from models.events.states import REGISTRATION_STATES, STATUSES, EventStatus, RegistrationState
from models.types import UTCDateTime, utcnow

# Kind code -> English msgid (translated when shown).
KINDS = {
    "meetup": N_("Meetup"),
    "road_trip": N_("Road trip"),
    "workshop": N_("Modding workshop"),
    "fair": N_("Car fair"),
}
TITLE_MIN, TITLE_MAX = 2, 60
DESCRIPTION_MAX = 5000
MAX_CAPACITY = 2000
MAX_COMPANIONS = 5
MAX_PRICE = 100_000
MAX_ATTENDANCE_POINTS = 1000
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
CODE_LENGTH = 6


def _quoted(values) -> str:
    return ",".join(f"'{v}'" for v in values)


class Event(db.Model):
    __tablename__ = "events"
    __table_args__ = (
        Index("uq_events_organizer_id_create_nonce", "organizer_id", "create_nonce", unique=True),
        CheckConstraint(f"status IN ({_quoted(STATUSES)})", name="known_status"),
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
    status: Mapped[str] = mapped_column(String(10), nullable=False, default=EventStatus.DRAFT.value)
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
        return self.status != EventStatus.DRAFT or can_manage(viewer, self)

    @classmethod
    def with_cover(cls, key: str) -> Event | None:
        """The event whose cover (photo or thumbnail) is stored under KEY: one query on the indexed keys."""
        return db.session.scalar(select(cls).where(or_(cls.cover_key == key, cls.cover_thumb_key == key)).limit(1))

    def has_started(self, now: datetime | None = None) -> bool:
        return (now or utcnow()) >= self.starts_at

    def seats_taken(self) -> int:
        return db.session.scalar(
            select(func.coalesce(func.sum(1 + Registration.companions), 0)).where(
                Registration.event_id == self.id, Registration.state == RegistrationState.CONFIRMED
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
        CheckConstraint(f"state IN ({_quoted(REGISTRATION_STATES)})", name="known_state"),
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
        if self.state != RegistrationState.WAITLISTED:
            return None
        return 1 + db.session.scalar(
            select(func.count()).select_from(Registration).where(
                Registration.event_id == self.event_id, Registration.state == RegistrationState.WAITLISTED,
                Registration.seq < self.seq,
            )
        )


def can_manage(user, event: Event) -> bool:
    """Organizers of the event's community and admins manage it (and check people in)."""
    return bool(user is not None and getattr(user, "is_authenticated", False)
                and user.has_role("organizer", community=event.community_id))


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
