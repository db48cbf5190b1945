"""Member activity: one row per member per Asia/Shanghai day on which they used the site.

The web layer records a member's day at most once (blueprints/activity.py: a request served to
a signed-in member whose day is not yet recorded); `backfill` rebuilds the days before this
record existed from what members left behind. Everything that asks "who was active when" reads
these rows and `users.last_active_on`, never the content tables: win-back audiences
(`inactive_since`), DAU/WAU/MAU and retention on the operations dashboard.
"""
from __future__ import annotations

from datetime import date, timedelta
from typing import Iterable, Iterator

from sqlalchemy import Date, ForeignKey, Index, and_, func, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from models import db
from models.accounts import User
from models.engagement import Comment, StoryLike
from models.events import Registration
from models.loyalty import PointsPosting
from models.stories import Story
from models.types import shanghai_day, shanghai_midnight, utcnow


class MemberDay(db.Model):
    """MEMBER was active on DAY (a Shanghai calendar day)."""

    __tablename__ = "member_days"
    __table_args__ = (
        # DAU/MAU count the members of a range of days: read from the index alone.
        Index("ix_member_days_day_user_id", "day", "user_id"),
    )

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)


def today() -> date:
    """The Shanghai day now: the day a request served now counts for."""
    return shanghai_day(utcnow())


def _insert_days(rows: list[dict]):
    """INSERT … ON CONFLICT DO NOTHING of member_days ROWS, in the database's own dialect."""
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:  # pragma: no cover - the app runs on SQLite and PostgreSQL only
        raise RuntimeError(f"no INSERT … ON CONFLICT for {dialect}")
    # The rows inserted are counted from RETURNING: SQLAlchemy's psycopg dialect reports no
    # rowcount (-1) for an INSERT construct.
    return (dialect_insert(MemberDay).values(rows).on_conflict_do_nothing(index_elements=["user_id", "day"])
            .returning(MemberDay.user_id))


def record_day(user_id: int, day: date) -> bool:
    """Record that member USER_ID was active on DAY: its row (a repeat is a no-op) and
    `last_active_on`, which only moves forward. Executes only: the caller commits, in a
    transaction of its own (see blueprints/activity.py). True if the day is new."""
    added = len(db.session.execute(_insert_days([{"user_id": user_id, "day": day}])).all())
    db.session.execute(
        update(User)
        .where(User.id == user_id, or_(User.last_active_on.is_(None), User.last_active_on < day))
        .values(last_active_on=day)
        .execution_options(synchronize_session=False)
    )
    return bool(added)


# -- who was active, who was not ----------------------------------------------------------------

def inactive_since(days: int, *, on: date | None = None):
    """The condition "inactive for at least DAYS days" on `User`, as of day ON (today): the
    member's last active day is DAYS or more days before ON. A member with no recorded day
    counts from the day they signed up (created that day or earlier).

    A WHERE clause for audiences: `select(User.id).where(inactive_since(30))` (an index on
    `last_active_on` serves it)."""
    if days < 0:
        raise ValueError("days must not be negative")
    cutoff = (on or today()) - timedelta(days=days)
    return or_(
        User.last_active_on <= cutoff,
        and_(User.last_active_on.is_(None), User.created_at < shanghai_midnight(cutoff + timedelta(days=1))),
    )


def active_members(first: date, last: date) -> int:
    """How many members were active on at least one day from FIRST to LAST (both included)."""
    return db.session.scalar(
        select(func.count(func.distinct(MemberDay.user_id))).where(MemberDay.day.between(first, last))
    ) or 0


def dau(day: date | None = None) -> int:
    """Members active on DAY (today)."""
    day = day or today()
    return active_members(day, day)


def wau(day: date | None = None) -> int:
    """Members active in the 7 days ending on DAY (today)."""
    day = day or today()
    return active_members(day - timedelta(days=6), day)


def mau(day: date | None = None) -> int:
    """Members active in the 30 days ending on DAY (today)."""
    day = day or today()
    return active_members(day - timedelta(days=29), day)


def daily_active(first: date, last: date) -> dict[date, int]:
    """Active members per day from FIRST to LAST, every day present (0 when nobody came)."""
    counts = dict(db.session.execute(
        select(MemberDay.day, func.count()).where(MemberDay.day.between(first, last)).group_by(MemberDay.day)
    ).all())
    return {first + timedelta(days=n): counts.get(first + timedelta(days=n), 0)
            for n in range((last - first).days + 1)}


def active_days_of(member) -> list[date]:
    """The days MEMBER was active, oldest first."""
    return list(db.session.scalars(
        select(MemberDay.day).where(MemberDay.user_id == member.id).order_by(MemberDay.day)
    ))


# -- rebuilding the days before the record existed ----------------------------------------------

# What only the ledger records of a member's own doing: daily check-ins, coming back through a
# campaign, spending points. Posting, commenting and attending are read from their own rows,
# which date the act itself; what others or the system did to the account (likes received,
# featuring, confirmed reports, referrals, adjustments, expiry, refunds) is not their activity.
LEDGER_ONLY_RULES = ("checkin", "checkin_streak", "campaign_return")


def _traces() -> Iterator[tuple[int, date]]:
    """(member id, Shanghai day) of every trace a member left by acting: signing up, stories,
    comments, likes given, event registrations and check-ins at the door; from the ledger, daily
    check-ins, return gifts and points spent."""
    timed: list = [
        select(User.id, User.created_at),
        select(Story.author_id, Story.created_at),
        select(Comment.author_id, Comment.created_at),
        select(StoryLike.user_id, StoryLike.created_at),
        select(Registration.user_id, Registration.created_at),
        select(Registration.user_id, Registration.checked_in_at).where(Registration.checked_in_at.is_not(None)),
    ]
    for query in timed:
        for user_id, moment in db.session.execute(query.execution_options(yield_per=5000)):
            yield user_id, shanghai_day(moment)
    own = or_(PointsPosting.kind == "spend",
              and_(PointsPosting.kind == "earn", PointsPosting.rule.in_(LEDGER_ONLY_RULES)))
    yield from db.session.execute(  # the ledger keeps its Shanghai day
        select(PointsPosting.user_id, PointsPosting.day).where(own).distinct().execution_options(yield_per=5000)
    ).tuples()


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def backfill(*, until: date | None = None) -> tuple[int, int]:
    """Record every member's active days found in their traces (up to day UNTIL, today by
    default: a trace dated later is a clock's mistake, not activity), and move each member's
    `last_active_on` forward to their latest recorded day. Idempotent: days already recorded
    stay as they are. Flushes only; returns (days added, members whose last active day moved)."""
    until = until or today()
    days = {(user_id, day) for user_id, day in _traces() if day <= until}
    added = 0
    for chunk in _chunks(sorted(days), 400):  # 2 parameters a row: under old SQLite's 999
        added += len(db.session.execute(_insert_days([{"user_id": u, "day": d} for u, d in chunk])).all())
    latest = (select(func.max(MemberDay.day)).where(MemberDay.user_id == User.id)).scalar_subquery()
    moved = db.session.execute(
        update(User)
        .where(latest.is_not(None), or_(User.last_active_on.is_(None), User.last_active_on < latest))
        .values(last_active_on=latest)
        .execution_options(synchronize_session=False)
    ).rowcount
    return added, moved
