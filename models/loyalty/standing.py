"""A member's standing: balance, spendable balance, growth, level, the points expiring soonest
and the check-in streak, as the points card shows them. Derived from the ledger and cached per
member in `member_points`, so a page reads one row instead of replaying the member's postings.

The second layer of loyalty, between `rules` and `ledger`: the table and the derivation
(`derive`, a pure function of the postings and lots it is handed). The ledger owns the postings
and the member lock, so it reads and writes the rows. The ledger stays the truth: a row is
only ever `derive` of the member's postings at a moment (`as_of`) against the level thresholds
of that time (`ladder`), and `points verify` recomputes every row from exactly those.

A row holds for any moment from `as_of` up to, but not including, `valid_until`, the first moment
that time alone changes something: a lot reaching its expiry date (the spendable balance drops,
the expiring list moves on) or growth leaving the growth window (the level may fall). It holds
for the thresholds it names only: change one, by whatever means, and every row no longer
matches the ladder, so it is stale at once with nothing written (`is_fresh`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

from sqlalchemy import JSON, Date, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models import db
from models.loyalty.rules import GROWTH_WINDOW, Level, next_above, reached_in
from models.types import UTCDateTime, shanghai_day

# How far ahead the points card looks for expiring points (`ledger.expiring_soon`'s default).
EXPIRING_HORIZON = timedelta(days=90)
# The expiry `ledger.replay` gives a credit that never expires.
NEVER = datetime.max.replace(tzinfo=timezone.utc)


class MemberPoints(db.Model):
    """The cached standing of one member (see the module's docstring): never the truth."""

    __tablename__ = "member_points"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    balance: Mapped[int] = mapped_column(nullable=False)
    spendable: Mapped[int] = mapped_column(nullable=False)
    growth: Mapped[int] = mapped_column(nullable=False)
    level_number: Mapped[int] = mapped_column(nullable=False)
    # The thresholds the level was read against ("1:0,2:100,…"): other thresholds, a stale row.
    ladder: Mapped[str] = mapped_column(String(200), nullable=False)
    # [[ISO instant, points], …]: lots expiring after as_of, up to valid_until + EXPIRING_HORIZON.
    expiring: Mapped[list] = mapped_column(JSON, nullable=False)
    checkin_day: Mapped[date | None] = mapped_column(Date)  # the Shanghai day of the last check-in
    checkin_streak: Mapped[int] = mapped_column(nullable=False)  # days in a row ending that day
    as_of: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    # None: nothing changes with time alone. Indexed for jobs that look for stale rows.
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    # Bumped by every write, so a standing derived from an older read can be refused (ledger).
    version: Mapped[int] = mapped_column(nullable=False)


STORED = ("balance", "spendable", "growth", "level_number", "ladder", "expiring", "checkin_day", "checkin_streak",
          "as_of", "valid_until")


@dataclass(frozen=True)
class LevelInfo:
    """A member's level now, the growth behind it and the way to the next one."""

    level: Level
    growth: int
    next_level: Level | None

    @property
    def number(self) -> int:
        return self.level.number

    @property
    def multiplier_percent(self) -> int:
        return self.level.multiplier_percent

    @property
    def priority_hours(self) -> int:
        return self.level.priority_hours

    @property
    def to_next(self) -> int:
        return max(0, self.next_level.growth_threshold - self.growth) if self.next_level else 0

    @property
    def progress_percent(self) -> int:
        if self.next_level is None:
            return 100
        span = self.next_level.growth_threshold - self.level.growth_threshold
        return min(100, max(0, (self.growth - self.level.growth_threshold) * 100 // max(span, 1)))


def ladder_key(ladder) -> str:
    """The thresholds of LADDER (levels by number) as a row remembers them."""
    return ",".join(f"{level.number}:{level.growth_threshold}" for level in ladder)


def parse_ladder(key: str) -> list:
    """The rungs a row's `ladder` names (number and threshold), to recompute it as it was."""
    rungs = (part.split(":") for part in key.split(",") if part)
    return [SimpleNamespace(number=int(n), growth_threshold=int(t)) for n, t in rungs]


def expiring_by_day(lots, now: datetime, within: timedelta) -> list[tuple[date, int]]:
    """[(Shanghai date the points are last usable, how many)], soonest first, for LOTS given as
    (expiry instant, points left) that expire after NOW and no later than NOW + WITHIN."""
    totals: dict[date, int] = {}
    for expires_at, points in lots:
        if now < expires_at <= now + within:
            last_day = shanghai_day(expires_at - timedelta(seconds=1))
            totals[last_day] = totals.get(last_day, 0) + points
    return sorted(totals.items())


@dataclass(frozen=True)
class Standing:
    balance: int
    spendable: int
    growth: int
    level_number: int
    ladder: str
    expiring: tuple[tuple[datetime, int], ...]  # (expiry instant, points left), soonest first
    checkin_day: date | None
    checkin_streak: int
    as_of: datetime
    valid_until: datetime | None
    # The level with its benefits, attached when read against the ladder's rows (not stored).
    level: LevelInfo | None = field(default=None, compare=False)

    def is_fresh(self, now: datetime, ladder: str) -> bool:
        """Whether this standing is the member's at NOW, under the thresholds LADDER names."""
        return (self.ladder == ladder and self.as_of <= now
                and (self.valid_until is None or now < self.valid_until))

    def with_level(self, ladder) -> Standing:
        """This standing with its level's row (LADDER: the levels, the ones it was derived against)."""
        current = next(level for level in ladder if level.number == self.level_number)
        return replace(self, level=LevelInfo(current, self.growth, next_above(ladder, current)))

    def expiring_within(self, now: datetime, within: timedelta = EXPIRING_HORIZON) -> list[tuple[date, int]]:
        """What expires after NOW within WITHIN (at most EXPIRING_HORIZON), by last usable day."""
        if within > EXPIRING_HORIZON:
            raise ValueError("a standing keeps the expiring points of EXPIRING_HORIZON only")
        return expiring_by_day(self.expiring, now, within)

    def checkin_on(self, day: date) -> tuple[bool, int] | None:
        """(checked in on DAY, the streak then), or None for a day before the last check-in."""
        if self.checkin_day is None:
            return False, 0
        if day < self.checkin_day:
            return None
        return day == self.checkin_day, self.checkin_streak if (day - self.checkin_day).days <= 1 else 0

    def plus_credit(self, credit, ladder) -> Standing | None:
        """This standing with CREDIT added, as `derive` finds it at the credit's moment: CREDIT
        is a posting of positive points (anything with the ledger's columns) that comes after
        every other posting of the member, LADDER the levels (by number). None where only
        `derive` can tell: the standing does not hold at that moment, or not for LADDER.

        Exact because a fresh standing means no lot expired and no growth aged out between
        `as_of` and the credit, and a credit is a lot of its own that no earlier debit takes
        (`replay` never pays a deficit back)."""
        at = credit.created_at.astimezone(timezone.utc)
        if credit.points <= 0 or credit.growth < 0 or not self.is_fresh(at, ladder_key(ladder)):
            return None
        checkin_day, streak = self.checkin_day, self.checkin_streak
        if credit.rule == "checkin":
            if checkin_day is not None and credit.day < checkin_day:
                return None
            if checkin_day is None or (credit.day - checkin_day).days > 1:
                checkin_day, streak = credit.day, 1
            elif credit.day > checkin_day:
                checkin_day, streak = credit.day, streak + 1
        expires_at = credit.expires_at or NEVER
        if expires_at <= at:  # born expired: not a lot `derive` would count as coming
            return None
        changes = [self.valid_until] if self.valid_until is not None else []
        if expires_at < NEVER:
            changes.append(expires_at)
        if credit.growth > 0:
            changes.append(at + GROWTH_WINDOW)
        valid_until = min(changes, default=None)
        coming = list(self.expiring) + ([(expires_at, credit.points)] if expires_at < NEVER else [])
        growth = self.growth + credit.growth
        return replace(
            self, balance=self.balance + credit.points, spendable=self.spendable + credit.points, growth=growth,
            level_number=reached_in(ladder, growth)[0].number, expiring=_grouped(coming, valid_until),
            checkin_day=checkin_day, checkin_streak=streak, as_of=at, valid_until=valid_until, level=None,
        )

    def row(self) -> dict:
        """The stored columns (all but the member and the version)."""
        values = {name: getattr(self, name) for name in STORED}
        values["expiring"] = [[at.isoformat(), points] for at, points in self.expiring]
        return values

    @classmethod
    def from_row(cls, row) -> Standing:
        values = {name: getattr(row, name) for name in STORED}
        values["expiring"] = tuple((datetime.fromisoformat(at), points) for at, points in row.expiring)
        return cls(**values)


def derive(postings, lots, ladder, as_of: datetime) -> Standing:
    """The standing at AS_OF of a member with POSTINGS (theirs, oldest first: anything with the
    ledger's columns), LOTS (`ledger.replay` of them) and the levels LADDER (by number)."""
    as_of = as_of.astimezone(timezone.utc)
    counted = [p for p in postings if p.growth > 0 and p.created_at > as_of - GROWTH_WINDOW]
    growth = sum(p.growth for p in counted)
    held = [lot for lot in lots if lot.remaining > 0]
    coming = sorted((lot.expires_at, lot.remaining) for lot in held if as_of < lot.expires_at < NEVER)
    changes = []  # the first lot to expire, the first growth to age out
    if coming:
        changes.append(coming[0][0])
    if counted:
        changes.append(min(p.created_at for p in counted) + GROWTH_WINDOW)
    valid_until = min(changes, default=None)
    balance = sum(p.points for p in postings)
    checkin_day, streak = _streak({p.day for p in postings if p.rule == "checkin"})
    return Standing(
        balance=balance,
        spendable=balance - sum(lot.remaining for lot in held if lot.expires_at <= as_of),
        growth=growth,
        level_number=reached_in(ladder, growth)[0].number,
        ladder=ladder_key(ladder),
        expiring=_grouped(coming, valid_until),
        checkin_day=checkin_day,
        checkin_streak=streak,
        as_of=as_of,
        valid_until=valid_until,
    )


def _grouped(coming, valid_until: datetime | None) -> tuple[tuple[datetime, int], ...]:
    """The lots COMING (instant, points), summed by instant, that a read before VALID_UNTIL may
    show: within EXPIRING_HORIZON of it (lots expire at Shanghai midnights: about 90 entries)."""
    totals: dict[datetime, int] = {}
    for at, points in coming:
        if valid_until is not None and at <= valid_until + EXPIRING_HORIZON:
            totals[at] = totals.get(at, 0) + points
    return tuple(sorted(totals.items()))


def _streak(days: set[date]) -> tuple[date | None, int]:
    """The last check-in day and how many days in a row end with it."""
    if not days:
        return None, 0
    last = cursor = max(days)
    while cursor in days:
        cursor -= timedelta(days=1)
    return last, (last - cursor).days
