"""The states of an event and of a registration, and the one way an event changes state.

Both enums are `str` enums, like `accounts.Role`: the database keeps the plain strings, and
`event.status == "published"` keeps working wherever it is written.

An event's lifecycle is a small state machine: `TRANSITIONS` lists the moves allowed, and
`transition()` is the only code that moves an event (publish, cancel and complete all go
through it): anything else is refused with a DomainError and every move is audited.
"""
from __future__ import annotations

import enum
from datetime import datetime

from models import N_, DomainError
from models.audit import audit
from models.types import utcnow


class EventStatus(str, enum.Enum):
    DRAFT = "draft"
    PUBLISHED = "published"
    CANCELLED = "cancelled"
    COMPLETED = "completed"

    def __str__(self) -> str:  # templates and f-strings show the stored value
        return self.value


class RegistrationState(str, enum.Enum):
    CONFIRMED = "confirmed"
    WAITLISTED = "waitlisted"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


STATUSES = tuple(s.value for s in EventStatus)
REGISTRATION_STATES = tuple(s.value for s in RegistrationState)

# From each status, where an event may go. Cancelled and completed are final.
TRANSITIONS: dict[EventStatus, frozenset[EventStatus]] = {
    EventStatus.DRAFT: frozenset({EventStatus.PUBLISHED, EventStatus.CANCELLED}),
    EventStatus.PUBLISHED: frozenset({EventStatus.CANCELLED, EventStatus.COMPLETED}),
    EventStatus.CANCELLED: frozenset(),
    EventStatus.COMPLETED: frozenset(),
}

# Why a move to a status is refused, in words organizers understand.
_REFUSALS = {
    EventStatus.DRAFT: N_("An event cannot go back to being a draft."),
    EventStatus.PUBLISHED: N_("Only a draft can be published."),
    EventStatus.CANCELLED: N_("This event is already cancelled or completed."),
    EventStatus.COMPLETED: N_("Only a published event can be marked completed."),
}
# The audit action of each move, and the column that records when it happened.
_ACTIONS = {EventStatus.PUBLISHED: "event.publish", EventStatus.CANCELLED: "event.cancel",
            EventStatus.COMPLETED: "event.complete"}
_STAMPS = {EventStatus.PUBLISHED: "published_at", EventStatus.CANCELLED: "cancelled_at",
           EventStatus.COMPLETED: "completed_at"}


def can_move(event, to: EventStatus) -> bool:
    return EventStatus(to) in TRANSITIONS[EventStatus(event.status)]


def check_transition(event, to: EventStatus) -> None:
    """Refuse (DomainError) unless the event may move from its status to TO."""
    if not can_move(event, to):
        raise DomainError(_REFUSALS[EventStatus(to)])


def transition(event, to: EventStatus, actor=None, now: datetime | None = None, **details) -> None:
    """Move EVENT to TO (refused unless `TRANSITIONS` allows it), stamp when, and audit the move
    with DETAILS. Call with the event locked (`lock_event`)."""
    to = EventStatus(to)
    check_transition(event, to)
    now = now or utcnow()
    was = event.status
    event.status, event.updated_at = to.value, now
    setattr(event, _STAMPS[to], now)
    audit(actor, _ACTIONS[to], event, before={"status": str(was)}, after={"status": to.value, **details})
