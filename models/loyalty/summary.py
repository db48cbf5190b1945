"""What the points card shows wherever it appears (the profile, the points page, the catalogue)."""
from __future__ import annotations

from models.loyalty.ledger import balance_of, checked_in_today, checkin_streak, expiring_soon, level_of
from models.types import shanghai_day


def points_summary(member) -> dict:
    """Balance, level and progress, the soonest expiry, today's check-in and the streak."""
    day = shanghai_day()
    return {
        "balance": balance_of(member),
        "level": level_of(member),
        "expiring": expiring_soon(member),
        "checked_in": checked_in_today(member),
        "streak": checkin_streak(member, day),
    }
