"""The events' scheduled jobs: tomorrow's reminders, and finding events nobody closed."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from models import db
from models.events.model import Event, Registration
from models.events.states import EventStatus, RegistrationState
from models.notifications import notify
from models.types import SHANGHAI, shanghai_day, shanghai_midnight, utcnow

AUTO_COMPLETE_AFTER = timedelta(hours=6)


def send_reminders(now: datetime | None = None) -> int:
    """Send "tomorrow" reminders for confirmed members of events starting on the next Shanghai day,
    sent from 09:00 Shanghai time the day before; the dedupe key makes a rerun send nothing."""

    now = now or utcnow()
    if now.astimezone(SHANGHAI).hour < 9:
        return 0
    tomorrow = shanghai_day(now) + timedelta(days=1)
    start, end = shanghai_midnight(tomorrow), shanghai_midnight(tomorrow + timedelta(days=1))
    regs = db.session.scalars(
        select(Registration).join(Event, Event.id == Registration.event_id).where(
            Event.status == EventStatus.PUBLISHED, Event.starts_at >= start, Event.starts_at < end,
            Registration.state == RegistrationState.CONFIRMED,
        ).options(joinedload(Registration.event), joinedload(Registration.user))
    ).all()
    for reg in regs:
        notify(reg.user, "event_reminder",
               {"title": reg.event.title, "time": reg.event.starts_at.astimezone(SHANGHAI).strftime("%H:%M"),
                "place": reg.event.place},
               link=f"/events/{reg.event_id}", dedupe_key=f"event-reminder:{reg.event_id}")
    return len(regs)


def due_for_completion(now: datetime | None = None) -> list[int]:
    """Published events that ended a while ago and nobody closed."""
    now = now or utcnow()
    return list(db.session.scalars(
        select(Event.id).where(Event.status == EventStatus.PUBLISHED, Event.ends_at <= now - AUTO_COMPLETE_AFTER)
    ))
