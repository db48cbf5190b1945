"""Event listings with their seat counts, each in a constant number of queries: upcoming
events, an organizer's events, an event's roster, a member's tickets and waitlist positions."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import aliased, defer, joinedload

from models import cursors, db
from models.events.model import Event, Registration
from models.events.states import EventStatus, RegistrationState
from models.types import shanghai_midnight, utcnow


@dataclass
class EventCard:
    """An event with its counts: confirmed seats, members waiting, checked-in seats, no-shows."""
    event: Event
    seats_taken: int
    waitlisted: int
    checked_in: int = 0
    no_shows: int = 0

    @property
    def seats_left(self) -> int:
        return max(0, self.event.capacity - self.seats_taken)

    @property
    def fill_percent(self) -> int:
        return min(100, self.seats_taken * 100 // max(self.event.capacity, 1))


def _counts():
    """The counts of an EventCard as subqueries correlated to each event row: each reads only
    that event's registrations (index on event_id, state), so a page of 20 events never
    aggregates the whole registrations table."""
    seats = func.coalesce(func.sum(1 + Registration.companions), 0)
    people = func.count(Registration.id)
    mine = Registration.event_id == Event.id
    confirmed = and_(mine, Registration.state == RegistrationState.CONFIRMED)
    return [
        select(seats).where(confirmed).correlate(Event).scalar_subquery(),
        select(people).where(mine, Registration.state == RegistrationState.WAITLISTED).correlate(Event).scalar_subquery(),
        select(seats).where(confirmed, Registration.checked_in_at.is_not(None)).correlate(Event).scalar_subquery(),
        select(people).where(confirmed, Registration.no_show.is_(True)).correlate(Event).scalar_subquery(),
    ]


def _cards(query) -> list[EventCard]:
    rows = db.session.execute(query.add_columns(*_counts()).options(joinedload(Event.community))).all()
    return [EventCard(row[0], *(int(n or 0) for n in row[1:])) for row in rows]


def card_of(event: Event) -> EventCard:
    """One event with its counts, in one query (its page, its organizer's dashboard)."""
    return _cards(select(Event).where(Event.id == event.id))[0]


def month_bounds(month: str) -> tuple[datetime, datetime] | None:
    """'2026-12' -> the UTC instants the Shanghai month begins and ends."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", month or "")
    if not match or not 1 <= int(match[2]) <= 12:
        return None
    year, mon = int(match[1]), int(match[2])
    first = datetime(year, mon, 1).date()
    following = datetime(year + (mon == 12), mon % 12 + 1, 1).date()
    return shanghai_midnight(first), shanghai_midnight(following)


def upcoming(community_id: int | None = None, month: str | None = None, after: tuple[datetime, int] | None = None,
             limit: int = 20, now: datetime | None = None) -> list[EventCard]:
    """Published events not yet over, soonest first, with their seat counts, in one query.
    AFTER is the (starts_at, id) of the last event of the previous page."""
    now = now or utcnow()
    query = select(Event).where(Event.status == EventStatus.PUBLISHED, Event.ends_at > now)
    if community_id is not None:
        query = query.where(Event.community_id == community_id)
    bounds = month_bounds(month) if month else None
    if bounds:
        query = query.where(Event.starts_at >= bounds[0], Event.starts_at < bounds[1])
    if after is not None:
        query = query.where(or_(Event.starts_at > after[0], and_(Event.starts_at == after[0], Event.id > after[1])))
    # A card shows no description: its Markdown and HTML stay in the database.
    query = query.options(defer(Event.description), defer(Event.description_html))
    return _cards(query.order_by(Event.starts_at, Event.id).limit(limit))


@dataclass
class Page:
    cards: list[EventCard]
    next_cursor: str | None  # None on the last page
    continued: bool  # this page came after another (its cursor was valid)


def upcoming_page(cursor: str | None, size: int, **filters) -> Page:
    """One page of `upcoming` after CURSOR (a bad cursor reads as the first page)."""
    after = cursors.decode("events", cursor, datetime, int)
    cards = upcoming(after=after, limit=size + 1, **filters)
    more, cards = len(cards) > size, cards[:size]
    last = cards[-1].event if more else None
    return Page(cards, cursors.encode("events", last.starts_at, last.id) if last else None, after is not None)


def managed_by(user, limit: int = 100, now: datetime | None = None) -> list[EventCard]:
    """Events of the communities USER organizes (all for an admin): those not over yet first,
    soonest first (what needs work), then past ones, latest first."""
    now = now or utcnow()
    query = select(Event)
    if not user.is_admin:
        query = query.where(Event.community_id.in_(user.communities_where("organizer") or [-1]))
    ahead = Event.ends_at > now
    return _cards(query.order_by(
        case((ahead, 0), else_=1), case((ahead, Event.starts_at)), Event.starts_at.desc(), Event.id.desc()
    ).limit(limit))


def registrations_of(member, event_ids) -> dict[int, Registration]:
    """MEMBER's registrations for EVENT_IDS, in one query (for a listing)."""
    if member is None or not getattr(member, "is_authenticated", False) or not event_ids:
        return {}
    rows = db.session.scalars(
        select(Registration).where(Registration.user_id == member.id, Registration.event_id.in_(list(event_ids)))
    )
    return {r.event_id: r for r in rows}


def tickets_of(member, now: datetime | None = None) -> tuple[list[Registration], list[Registration]]:
    """MEMBER's signups, one query: (coming: confirmed or waitlisted for events not over; past,
    newest first, including signups that ended because the organizer cancelled the event)."""
    now = now or utcnow()
    ended_with_event = and_(Event.status == EventStatus.CANCELLED, Registration.cancelled_at == Event.cancelled_at)
    rows = list(db.session.scalars(
        select(Registration).join(Event, Event.id == Registration.event_id)
        .where(Registration.user_id == member.id, or_(Registration.state != RegistrationState.CANCELLED, ended_with_event))
        .options(joinedload(Registration.event).joinedload(Event.community))
        .order_by(Event.starts_at, Registration.id)
    ).unique())
    coming = [r for r in rows if r.event.status == EventStatus.PUBLISHED and r.event.ends_at > now]
    past = [r for r in reversed(rows) if r not in coming]
    return coming, past


def next_ticket(member, now: datetime | None = None) -> Registration | None:
    """MEMBER's next confirmed seat at an event not over yet (the home page's reminder), one query."""
    if member is None or not getattr(member, "is_authenticated", False):
        return None
    now = now or utcnow()
    return db.session.scalar(
        select(Registration).join(Event, Event.id == Registration.event_id)
        .where(Registration.user_id == member.id, Registration.state == RegistrationState.CONFIRMED, Event.status == EventStatus.PUBLISHED,
               Event.ends_at > now)
        .options(joinedload(Registration.event)).order_by(Event.starts_at, Event.id).limit(1)
    )


def waitlist_positions(regs) -> dict[int, int]:
    """The waitlist position of each waitlisted registration in REGS, in one query."""
    ids = [r.id for r in regs if r.state == RegistrationState.WAITLISTED]
    if not ids:
        return {}
    ahead = aliased(Registration)
    rows = db.session.execute(
        select(Registration.id, func.count(ahead.id))
        .outerjoin(ahead, and_(ahead.event_id == Registration.event_id, ahead.state == RegistrationState.WAITLISTED,
                               ahead.seq < Registration.seq))
        .where(Registration.id.in_(ids)).group_by(Registration.id)
    ).all()
    return {reg_id: 1 + count for reg_id, count in rows}


def roster(event: Event) -> list[Registration]:
    """Confirmed registrations, then the waitlist, with members in the same query."""
    return list(db.session.scalars(
        select(Registration).where(Registration.event_id == event.id, Registration.state != RegistrationState.CANCELLED)
        .options(joinedload(Registration.user))
        .order_by(case((Registration.state == RegistrationState.CONFIRMED, 0), else_=1), Registration.seq)
    ))
