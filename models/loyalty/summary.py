"""What the points card shows wherever it appears (the profile, the points page, the catalogue)."""
from __future__ import annotations

from datetime import datetime

from models.loyalty.ledger import checked_in_today, checkin_streak, standing_of
from models.types import shanghai_day, utcnow


def points_summary(member, now: datetime | None = None) -> dict:
    """Balance, level and progress, the soonest expiry, today's check-in and the streak: all
    from the member's cached standing (two queries, whatever the length of their ledger)."""
    now = now or utcnow()
    standing = standing_of(member, now)
    day = shanghai_day(now)
    checkin = standing.checkin_on(day)
    if checkin is None:  # NOW is before the last check-in (a test's clock): ask the ledger
        checkin = checked_in_today(member, now), checkin_streak(member, day)
    return {
        "balance": standing.balance,
        "level": standing.level,
        "expiring": standing.expiring_within(now),
        "checked_in": checkin[0],
        "streak": checkin[1],
    }
