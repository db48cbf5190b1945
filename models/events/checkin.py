"""Venue check-in: what a scanned QR or a typed code stands for, and checking it in once.

Replays are harmless and the earliest scan wins, so a phone that was offline can send its
queue hours later; a check-in that arrives after the event was closed still pays attendance.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import joinedload

from models import N_, DomainError, db
from models.events.lifecycle import pay_attendance
from models.events.model import CODE_ALPHABET, CODE_LENGTH, Event, Registration
from models.events.states import EventStatus, RegistrationState
from models.types import utcnow

# A device's clock may be off; a scan time is kept only within this margin of the event.
SCAN_MARGIN = timedelta(hours=12)


@dataclass
class CheckIn:
    registration: Registration
    first: bool  # False: it had been checked in already (checked_in_at is the earliest scan)


def parse_ticket(text: str) -> tuple[str, str] | None:
    """What a scanned QR (its URL or bare token) or a typed short code carries:
    ("code", "7KX2QD") or ("token", "…"), or None when it cannot be a ticket."""
    text = (text or "").strip()
    if "/t/" in text:
        text = text.rsplit("/t/", 1)[1].split("?", 1)[0].split("#", 1)[0]
    # Typed codes forgive case, spaces, dashes and the letters people mistake for digits.
    code = re.sub(r"[\s-]", "", text).upper().translate(str.maketrans("OIL", "011"))
    if len(code) == CODE_LENGTH and all(c in CODE_ALPHABET for c in code):
        return "code", code
    if re.fullmatch(r"[A-Za-z0-9_-]{16,40}", text):
        return "token", text
    return None


def find_ticket(event: Event, text: str) -> Registration | None:
    """The registration TEXT stands for: a code within EVENT, a token in any event."""
    parsed = parse_ticket(text)
    if parsed is None:
        return None
    kind, value = parsed
    if kind == "code":
        where = and_(Registration.event_id == event.id, Registration.code == value)
    else:
        where = Registration.ticket_token == value
    return db.session.scalar(select(Registration).where(where).options(joinedload(Registration.user)))


def check_in(event: Event, text: str, staff, scanned_at: datetime | None = None,
             now: datetime | None = None) -> CheckIn:
    """Check a ticket in at EVENT. Replays are harmless and the earliest scan time is kept."""
    now = now or utcnow()
    found = find_ticket(event, text)
    if found is None:
        raise DomainError(N_("No ticket matches this code. Check it and try again."))
    if found.event_id != event.id:
        raise DomainError(N_("This ticket is for another event: %(title)s."), title=found.event.title)
    if event.status not in (EventStatus.PUBLISHED, EventStatus.COMPLETED):
        raise DomainError(N_("This event is not open for check-in."))
    if found.state != RegistrationState.CONFIRMED:
        raise DomainError(N_("This ticket is not valid: the signup was cancelled or is still on the waitlist."))
    # Trust the device's clock only within reason: never in the future, never long before the event.
    scanned = min(max(scanned_at or now, event.starts_at - SCAN_MARGIN), now)
    # Lock the registration before reading its scan time, so of two phones syncing the same
    # ticket at once only one is told it checked the member in.
    previous = db.session.scalar(
        select(Registration.checked_in_at).where(Registration.id == found.id).with_for_update()
    )
    db.session.execute(
        update(Registration).where(
            Registration.id == found.id,
            or_(Registration.checked_in_at.is_(None), Registration.checked_in_at > scanned),
        ).values(checked_in_at=scanned, checked_in_by_id=staff.id, no_show=False)
    )
    db.session.refresh(found)
    if event.status == EventStatus.COMPLETED:  # a sync that arrives after the event was closed still counts
        pay_attendance(found, now)
    return CheckIn(found, first=previous is None)
