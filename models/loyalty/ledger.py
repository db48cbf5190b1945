"""The points ledger (积分): append-only postings; balances, expiries, growth and levels are derived.

The middle layer of loyalty: it reads the rules below it (`rules`) and knows nothing of
rewards or vouchers, which post through `spend()` and `refund()` with keys of their own.

`award()` and `spend()` (with `refund()`, `adjust()` and `reverse_earnings()` for the
admin and moderation paths) are the only ways to move points. Every call carries an
idempotency key, unique per member: a repeat returns the first posting and changes nothing.
Each member's postings are serialised by a lock on their account row (PostgreSQL
`FOR UPDATE`; SQLite's `BEGIN IMMEDIATE` takes the database write lock), so a balance can
never go negative however many requests race.

Earnings expire 12 months after the Asia/Shanghai day they were earned (at the start of
the same date a year later plus one day), spending consumes the oldest points first, and
`expire_due()` writes the expiry postings.

Growth (成长值) earned within `GROWTH_WINDOW` decides the level (`level_of`), so a level can
fall as old growth ages out. `require_balance()` is the one check (and the one message) for
"not enough points", shared by spending, redeeming and paying for an event.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String, UniqueConstraint, event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from models import N_, DomainError, db
from models.accounts import User
from models.audit import audit
from models.loyalty.rules import GROWTH_WINDOW, EarningRule, Level
from models.notifications import notify
from models.types import UTCDateTime, add_months, shanghai_day, shanghai_midnight, utcnow

KINDS = ("earn", "spend", "expire", "adjust", "refund")
MAX_ADJUSTMENT = 10_000
EXPIRY_MONTHS = 12


class PointsPosting(db.Model):
    __tablename__ = "points_ledger"
    __table_args__ = (
        UniqueConstraint("user_id", "key"),
        CheckConstraint("kind IN ('earn','spend','expire','adjust','refund')", name="known_kind"),
        CheckConstraint(
            "(kind IN ('earn','refund') AND points >= 0) OR (kind IN ('spend','expire') AND points < 0)"
            " OR (kind = 'adjust' AND points <> 0)",
            name="sign_matches_kind",
        ),
        CheckConstraint("growth >= 0", name="growth_not_negative"),
        Index("ix_points_ledger_user_rule_day", "user_id", "rule", "day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(10), nullable=False)
    points: Mapped[int] = mapped_column(nullable=False)
    growth: Mapped[int] = mapped_column(nullable=False, default=0)
    rule: Mapped[str | None] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(String(200), nullable=False)  # an English msgid or an admin's words
    ref_type: Mapped[str | None] = mapped_column(String(40))
    ref_id: Mapped[str | None] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(120), nullable=False)
    day: Mapped[date] = mapped_column(Date, nullable=False)  # Asia/Shanghai day, for caps and streaks
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow, index=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lot_id: Mapped[int | None] = mapped_column(ForeignKey("points_ledger.id", ondelete="RESTRICT"))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    @property
    def is_credit(self) -> bool:
        return self.points > 0


@event.listens_for(PointsPosting, "before_update")
@event.listens_for(PointsPosting, "before_delete")
def _append_only(_mapper, _conn, _target):
    raise RuntimeError("the points ledger is append-only")


class NotEnoughPoints(DomainError):
    """The member holds fewer points than something costs (the message says how many are missing)."""


def require_balance(member, points: int, now: datetime | None = None) -> int:
    """The member's spendable balance; raises NotEnoughPoints when it is below POINTS.

    Read-only (points past their date are left out without writing the expiry postings), so
    a page can ask it as well as `spend`: the member reads the same words wherever they fall short."""
    balance = spendable_balance(member, now)
    if balance < points:
        raise NotEnoughPoints(N_("%(missing)s more points needed: this costs %(points)s, you have %(balance)s."),
                              missing=points - balance, points=points, balance=balance)
    return balance


def expiry_for(moment: datetime) -> datetime:
    """Points earned at MOMENT last through the same Shanghai date 12 months later."""
    return shanghai_midnight(add_months(shanghai_day(moment), EXPIRY_MONTHS) + timedelta(days=1))


def _ref(cause) -> tuple[str | None, str | None]:
    if cause is None:
        return None, None
    if isinstance(cause, tuple):
        return str(cause[0]), str(cause[1])
    return cause.__tablename__, str(cause.id)


def lock_member(member) -> None:
    """Serialise point movements of one member (a no-op lock statement on SQLite, which
    already holds the write lock from BEGIN IMMEDIATE).

    PostgreSQL: `FOR NO KEY UPDATE`, not `FOR UPDATE`. Every insert of a row that refers to the
    member (a story, a comment, a like, a registration) takes a key-share lock on the member's
    row, which `FOR UPDATE` waits for: two of one member's requests would each hold one and wait
    for the other (deadlock). A transaction that locks two members locks them through
    `lock_members`, lowest id first."""
    db.session.execute(select(User.id).where(User.id == member.id).with_for_update(key_share=True))


def lock_members(*members) -> None:
    """Lock several members in one fixed order (lowest id first), so two transactions that lock
    the same pair never wait for each other crosswise."""
    for member in sorted({m.id: m for m in members if m is not None}.values(), key=lambda m: m.id):
        lock_member(member)


def _existing(member, key: str) -> PointsPosting | None:
    return db.session.scalar(select(PointsPosting).where(PointsPosting.user_id == member.id, PointsPosting.key == key))


def _post(member, **values) -> PointsPosting:
    """Insert a posting, or return the one already written under the same key."""
    now = values.pop("now", None) or utcnow()
    posting = PointsPosting(user_id=member.id, created_at=now, day=shanghai_day(now), **values)
    try:
        with db.session.begin_nested():
            db.session.add(posting)
    except IntegrityError:
        existing = _existing(member, values["key"])
        if existing is None:
            raise
        return existing
    return posting


def balance_of(member) -> int:
    """Points the member holds (expired lots are written off by `expire_due`)."""
    return db.session.scalar(
        select(func.coalesce(func.sum(PointsPosting.points), 0)).where(PointsPosting.user_id == member.id)
    )


def spendable_balance(member, now: datetime | None = None) -> int:
    """The balance without the lots already past their expiry date, read-only: what `spend`
    would find after `expire_due` wrote them off (for pages, which must not write)."""
    now = now or utcnow()
    lots, _ = lots_of(member)
    overdue = sum(lot.remaining for lot in lots if lot.remaining > 0 and lot.expires_at <= now)
    return balance_of(member) - overdue


def award(member, rule: str, cause=None, key: str | None = None, now: datetime | None = None,
          points: int | None = None) -> PointsPosting | None:
    """Credit MEMBER for RULE (× their level's multiplier), once per KEY, within the rule's daily cap.

    POINTS replaces the rule's base points where the cause sets its own (an event's attendance
    reward); the growth, cap and multiplier still come from the rule and the level.
    Returns the posting, or None when the rule is switched off or today's cap is reached.
    """
    now = now or utcnow()
    rule_row = EarningRule.get(rule)
    key = key or f"{rule}:{'-'.join(filter(None, _ref(cause)))}"
    lock_member(member)
    existing = _existing(member, key)
    if existing is not None:
        return existing
    if not rule_row.active:
        return None
    if rule_row.daily_limit is not None:
        today = db.session.scalar(
            select(func.count()).select_from(PointsPosting).where(
                PointsPosting.user_id == member.id, PointsPosting.rule == rule, PointsPosting.day == shanghai_day(now)
            )
        )
        if today >= rule_row.daily_limit:
            return None
    before = level_of(member, now)
    ref_type, ref_id = _ref(cause)
    base = rule_row.points if points is None else points
    posting = _post(
        member, now=now, kind="earn", points=base * before.multiplier_percent // 100,
        growth=rule_row.growth, rule=rule, reason=rule_row.label, ref_type=ref_type, ref_id=ref_id,
        key=key, expires_at=expiry_for(now),
    )
    db.session.flush()
    note_level_change(member, now)
    return posting


def spend(member, points: int, cause=None, key: str | None = None, reason: str = N_("Redeemed"),
          now: datetime | None = None) -> PointsPosting:
    """Debit POINTS (oldest first); raises NotEnoughPoints rather than go below zero."""
    if points <= 0:
        raise ValueError("spend a positive number of points")
    now = now or utcnow()
    lock_member(member)
    if key is not None and (existing := _existing(member, key)) is not None:
        return existing
    expire_due(member, now)
    require_balance(member, points, now)
    ref_type, ref_id = _ref(cause)
    return _post(member, now=now, kind="spend", points=-points, reason=reason, ref_type=ref_type,
                 ref_id=ref_id, key=key or f"spend:{ref_type}:{ref_id}")


def refund(member, points: int, cause=None, key: str | None = None, reason: str = N_("Refund"),
           now: datetime | None = None) -> PointsPosting:
    """Give back POINTS once per KEY (a refund is a new lot: it lasts another 12 months)."""
    if points <= 0:
        raise ValueError("refund a positive number of points")
    now = now or utcnow()
    lock_member(member)
    ref_type, ref_id = _ref(cause)
    return _post(member, now=now, kind="refund", points=points, reason=reason, ref_type=ref_type, ref_id=ref_id,
                 key=key or f"refund:{ref_type}:{ref_id}", expires_at=expiry_for(now))


def adjust(member, points: int, reason: str, actor, key: str, now: datetime | None = None) -> PointsPosting:
    """An administrator's correction, with a mandatory reason, audited; never below a zero balance."""
    reason = (reason or "").strip()
    if not reason:
        raise DomainError(N_("Give a reason for the adjustment."))
    if points == 0 or abs(points) > MAX_ADJUSTMENT:
        raise DomainError(N_("An adjustment is between 1 and %(max)s points, up or down."), max=MAX_ADJUSTMENT)
    now = now or utcnow()
    lock_member(member)
    if (existing := _existing(member, key)) is not None:
        return existing
    expire_due(member, now)
    before = balance_of(member)
    if before + points < 0:
        raise NotEnoughPoints(
            N_("This would take the balance below zero: the member has %(balance)s points."), balance=before
        )
    posting = _post(member, now=now, kind="adjust", points=points, reason=reason, key=key, actor_id=getattr(actor, "id", None),
                    ref_type="users", ref_id=str(member.id), expires_at=expiry_for(now) if points > 0 else None)
    audit(actor, "points.adjust", member, before={"balance": before}, after={"balance": before + points, "reason": reason})
    return posting


def reverse_earnings(member, cause, reason: str, key: str, now: datetime | None = None) -> PointsPosting | None:
    """Take back what CAUSE earned (e.g. a story hidden for a violation), as far as the balance allows."""
    now = now or utcnow()
    lock_member(member)
    if (existing := _existing(member, key)) is not None:
        return existing
    ref_type, ref_id = _ref(cause)
    earned = db.session.scalar(
        select(func.coalesce(func.sum(PointsPosting.points), 0)).where(
            PointsPosting.user_id == member.id, PointsPosting.kind == "earn",
            PointsPosting.ref_type == ref_type, PointsPosting.ref_id == ref_id,
        )
    )
    expire_due(member, now)
    take = min(earned, balance_of(member))
    if take <= 0:
        return None
    return _post(member, now=now, kind="adjust", points=-take, reason=reason, ref_type=ref_type, ref_id=ref_id, key=key)


# -- lots: where each point came from, and when it expires --------------------------------

@dataclass
class Lot:
    posting_id: int
    earned_at: datetime
    expires_at: datetime
    points: int
    remaining: int = field(default=0)


def lots_of(member) -> tuple[list[Lot], int]:
    """Replay the ledger oldest first: each credit is a lot; debits consume the oldest unexpired
    lots; an expiry posting consumes its own lot. Returns (lots, unmatched debit)."""
    postings = db.session.scalars(
        select(PointsPosting).where(PointsPosting.user_id == member.id).order_by(PointsPosting.created_at, PointsPosting.id)
    )
    return replay(postings)


def replay(postings) -> tuple[list[Lot], int]:
    lots: list[Lot] = []
    by_id: dict[int, Lot] = {}
    deficit = 0
    for p in postings:
        if p.points > 0:
            lot = Lot(p.id, p.created_at, p.expires_at or datetime.max.replace(tzinfo=p.created_at.tzinfo), p.points, p.points)
            lots.append(lot)
            by_id[p.id] = lot
            continue
        need = -p.points
        if p.kind == "expire":
            lot = by_id.get(p.lot_id)
            take = min(need, lot.remaining) if lot else 0
            if lot:
                lot.remaining -= take
            deficit += need - take
            continue
        for lot in sorted((lt for lt in lots if lt.remaining > 0 and lt.expires_at > p.created_at),
                          key=lambda lt: (lt.expires_at, lt.posting_id)):
            take = min(need, lot.remaining)
            lot.remaining -= take
            need -= take
            if need == 0:
                break
        deficit += need
    return lots, deficit


def expire_due(member, now: datetime | None = None) -> int:
    """Write expiry postings for the member's lots past their date; returns points expired."""
    now = now or utcnow()
    lots, _ = lots_of(member)
    expired = 0
    for lot in lots:
        if lot.remaining > 0 and lot.expires_at <= now:
            _post(member, now=now, kind="expire", points=-lot.remaining, reason=N_("Expired"),
                  key=f"expire:{lot.posting_id}", lot_id=lot.posting_id)
            expired += lot.remaining
    return expired


def members_with_points_due(now: datetime | None = None) -> list[int]:
    """Ids of members holding a credit past its expiry date (`expire_due` writes off what is left)."""
    return list(db.session.scalars(
        select(PointsPosting.user_id).where(PointsPosting.expires_at <= (now or utcnow()), PointsPosting.points > 0)
        .distinct()
    ))


def expiring_soon(member, now: datetime | None = None, within: timedelta = timedelta(days=90)) -> list[tuple[date, int]]:
    """[(Shanghai date the points are last usable, how many)], soonest first, within WITHIN."""
    now = now or utcnow()
    totals: dict[date, int] = {}
    for lot in lots_of(member)[0]:
        if lot.remaining > 0 and now < lot.expires_at <= now + within:
            last_day = shanghai_day(lot.expires_at - timedelta(seconds=1))
            totals[last_day] = totals.get(last_day, 0) + lot.remaining
    return sorted(totals.items())


def history(member, before_id: int | None = None, size: int = 20) -> list[PointsPosting]:
    """The member's postings, newest first, keyset-paginated."""
    query = select(PointsPosting).where(PointsPosting.user_id == member.id)
    if before_id:
        query = query.where(PointsPosting.id < before_id)
    return list(db.session.scalars(query.order_by(PointsPosting.id.desc()).limit(size)))


# -- growth and levels ----------------------------------------------------------------------------

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


def growth_of(member, now: datetime | None = None) -> int:
    """Growth earned within the growth window before NOW."""
    now = now or utcnow()
    return db.session.scalar(
        select(func.coalesce(func.sum(PointsPosting.growth), 0)).where(
            PointsPosting.user_id == member.id, PointsPosting.created_at > now - GROWTH_WINDOW
        )
    )


def level_of(member, now: datetime | None = None) -> LevelInfo:
    """The member's level and its benefits, from growth within the growth window."""
    growth = growth_of(member, now)
    level, next_level = Level.reached_with(growth)
    return LevelInfo(level, growth, next_level)


def growth_aged_out(now: datetime | None = None, within: timedelta = timedelta(days=7)) -> list[int]:
    """Ids of members some of whose growth left the growth window in the WITHIN before NOW: their
    level may have fallen. The default week is slack for a level job that missed a few runs."""
    now = now or utcnow()
    return list(db.session.scalars(
        select(PointsPosting.user_id).where(
            PointsPosting.growth > 0,
            PointsPosting.created_at <= now - GROWTH_WINDOW,
            PointsPosting.created_at > now - GROWTH_WINDOW - within,
        ).distinct()
    ))


def note_level_change(member, now: datetime | None = None) -> None:
    """Tell the member when their level moved since we last told them."""
    info = level_of(member, now)
    if info.number != member.level_number:
        went_up = info.number > member.level_number
        member.level_number = info.number
        notify(member, "level_up" if went_up else "level_down", {"level": info.level.label}, link="/me/points")


# -- daily check-in (签到) ------------------------------------------------------------------

STREAK_BONUS_EVERY = 7


@dataclass
class CheckIn:
    posting: PointsPosting | None
    already: bool
    streak: int
    bonus: PointsPosting | None = None


def checkin_streak(member, day: date) -> int:
    """Consecutive Shanghai days with a check-in, ending at DAY (or the day before, if not yet today)."""
    days = set(db.session.scalars(
        select(PointsPosting.day).where(
            PointsPosting.user_id == member.id, PointsPosting.rule == "checkin",
            PointsPosting.day > day - timedelta(days=400),
        )
    ))
    cursor = day if day in days else day - timedelta(days=1)
    streak = 0
    while cursor in days:
        streak += 1
        cursor -= timedelta(days=1)
    return streak


def check_in(member, now: datetime | None = None) -> CheckIn:
    """Today's check-in, once per Shanghai day; every 7th day in a row adds the streak bonus."""
    now = now or utcnow()
    day = shanghai_day(now)
    key = f"checkin:{day.isoformat()}"
    lock_member(member)
    if _existing(member, key) is not None:
        return CheckIn(_existing(member, key), True, checkin_streak(member, day))
    posting = award(member, "checkin", key=key, now=now)
    streak = checkin_streak(member, day)
    bonus = None
    if posting is not None and streak % STREAK_BONUS_EVERY == 0:
        bonus = award(member, "checkin_streak", key=f"checkin-streak:{day.isoformat()}", now=now)
    return CheckIn(posting, False, streak, bonus)


def checked_in_today(member, now: datetime | None = None) -> bool:
    return _existing(member, f"checkin:{shanghai_day(now).isoformat()}") is not None
