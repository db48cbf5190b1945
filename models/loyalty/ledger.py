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

Pages read a member's balance, level and expiring points from their cached standing
(`standing_of`, one row of `member_points`, see `standing`), never by replaying the postings:
every flush that adds postings rewrites its members' rows in the same transaction, under the
member lock the movers take first. Decisions that move points (may this spend, this
adjustment go through?) still add up the ledger itself under that lock.
"""
from __future__ import annotations

import heapq
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from itertools import groupby

from sqlalchemy import (CheckConstraint, Date, ForeignKey, Index, String, UniqueConstraint, and_, bindparam, event,
                        func, or_, select, update)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from models import N_, DomainError, db
from models.accounts import User
from models.audit import audit
from models.loyalty.rules import GROWTH_WINDOW, EarningRule, Level
from models.loyalty.standing import (EXPIRING_HORIZON, STORED, LevelInfo, MemberPoints, Standing, derive,
                                     expiring_by_day, ladder_key)
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
        # A member's history, newest first (`history`): one range of this index, whatever the
        # table's size (PostgreSQL walked the primary key backwards with user_id alone).
        Index("ix_points_ledger_user_id_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), nullable=False)
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
    _refuse_short(points, balance)
    return balance


def _refuse_short(points: int, balance: int) -> None:
    if balance < points:
        raise NotEnoughPoints(N_("%(missing)s more points needed: this costs %(points)s, you have %(balance)s."),
                              missing=points - balance, points=points, balance=balance)


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
    """Points the member holds (expired lots are written off by `expire_due`), from their standing."""
    return standing_of(member).balance


def _held(member) -> int:
    """The balance added up from the ledger: what decisions that move points go by."""
    return db.session.scalar(
        select(func.coalesce(func.sum(PointsPosting.points), 0)).where(PointsPosting.user_id == member.id)
    )


def spendable_balance(member, now: datetime | None = None) -> int:
    """The balance without the lots already past their expiry date, read-only: what `spend`
    would find after `expire_due` wrote them off (for pages, which must not write)."""
    return standing_of(member, now).spendable


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
    _refuse_short(points, _held(member))  # nothing is overdue now: the ledger's sum is what can be spent
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
    before = _held(member)
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
    take = min(earned, _held(member))
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


# What replaying a member's ledger reads: plain rows, not ORM objects (several times faster).
_REPLAYED = (PointsPosting.user_id, PointsPosting.id, PointsPosting.kind, PointsPosting.points, PointsPosting.growth,
             PointsPosting.rule, PointsPosting.day, PointsPosting.created_at, PointsPosting.expires_at,
             PointsPosting.lot_id)


def _postings_of(user_id: int):
    oldest_first = (PointsPosting.created_at, PointsPosting.id)
    return select(*_REPLAYED).where(PointsPosting.user_id == user_id).order_by(*oldest_first)


def lots_of(member) -> tuple[list[Lot], int]:
    """Replay the ledger oldest first: each credit is a lot; debits consume the oldest unexpired
    lots; an expiry posting consumes its own lot. Returns (lots, unmatched debit)."""
    return replay(db.session.execute(_postings_of(member.id)))


def replay(postings) -> tuple[list[Lot], int]:
    """The lots of POSTINGS (one member's, oldest first) and the debit that found none to consume.

    Debits consume the lots that expire soonest among those not yet expired when they were
    made: a heap by (expiry, posting), so a replay costs n log n, not n × lots, on every posting."""
    lots: list[Lot] = []
    by_id: dict[int, Lot] = {}
    soonest: list[tuple[datetime, int, Lot]] = []
    deficit = 0
    for p in postings:
        if p.points > 0:
            lot = Lot(p.id, p.created_at, p.expires_at or datetime.max.replace(tzinfo=p.created_at.tzinfo), p.points, p.points)
            lots.append(lot)
            by_id[p.id] = lot
            heapq.heappush(soonest, (lot.expires_at, lot.posting_id, lot))
            continue
        need = -p.points
        if p.kind == "expire":
            lot = by_id.get(p.lot_id)
            take = min(need, lot.remaining) if lot else 0
            if lot:
                lot.remaining -= take
            deficit += need - take
            continue
        while need and soonest:
            lot = soonest[0][2]
            # Used up, or expired before this debit (so before every later one): never consumed again.
            if lot.remaining == 0 or lot.expires_at <= p.created_at:
                heapq.heappop(soonest)
                continue
            take = min(need, lot.remaining)
            lot.remaining -= take
            need -= take
        deficit += need
    return lots, deficit


def expire_due(member, now: datetime | None = None) -> int:
    """Write expiry postings for the member's lots past their date; returns points expired."""
    now = now or utcnow()
    lock_member(member)  # the hourly job calls it alone: its postings rewrite the standing too
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


def expiring_soon(member, now: datetime | None = None, within: timedelta = EXPIRING_HORIZON) -> list[tuple[date, int]]:
    """[(Shanghai date the points are last usable, how many)], soonest first, within WITHIN
    (from the standing up to EXPIRING_HORIZON, further ahead by replaying the ledger)."""
    now = now or utcnow()
    if within <= EXPIRING_HORIZON:
        return standing_of(member, now).expiring_within(now, within)
    return expiring_by_day([(lot.expires_at, lot.remaining) for lot in lots_of(member)[0] if lot.remaining > 0],
                           now, within)


def history(member, before_id: int | None = None, size: int = 20) -> list[PointsPosting]:
    """The member's postings, newest first, keyset-paginated."""
    query = select(PointsPosting).where(PointsPosting.user_id == member.id)
    if before_id:
        query = query.where(PointsPosting.id < before_id)
    return list(db.session.scalars(query.order_by(PointsPosting.id.desc()).limit(size)))


# -- growth and levels ----------------------------------------------------------------------------

def growth_of(member, now: datetime | None = None) -> int:
    """Growth earned within the growth window before NOW (from the standing)."""
    return standing_of(member, now).growth


def level_of(member, now: datetime | None = None) -> LevelInfo:
    """The member's level and its benefits, from growth within the growth window (from the standing)."""
    return standing_of(member, now).level


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


# -- the standing, cached per member (member_points) --------------------------------------------

# Standings derived (not read from the cache) by a read-only unit of work, by member id, with
# the version of the row they replace (None: no row): see `collect_unstored`. None: not noting.
_unstored: ContextVar[dict[int, tuple[int | None, Standing]] | None] = ContextVar("unstored_standings", default=None)


def standing_of(member, now: datetime | None = None) -> Standing:
    """The member's standing at NOW (now by default), with its level's row attached: the cached
    row while it holds (two small queries, the ladder and the row, however long the ledger),
    else derived from the ledger (past `valid_until`, other thresholds, no row yet).

    A derived standing is not written in the caller's transaction: on SQLite a read-only request
    would turn into a write (which fails at once when another request wrote meanwhile), and a
    writing unit of work takes its locks in an order of its own. A read-only request stores it
    after its view, in a short transaction (`collect_unstored`); otherwise the member's next
    posting or the level job does."""
    now = now or utcnow()
    ladder = Level.ladder()
    row = db.session.execute(select(MemberPoints.__table__).where(MemberPoints.user_id == member.id)).first()
    standing = Standing.from_row(row) if row is not None else None
    if standing is None or not standing.is_fresh(now, ladder_key(ladder)):
        standing = _derived(db.session, member.id, now, ladder)
        _note_unstored(member.id, row.version if row is not None else None, standing)
    return standing.with_level(ladder)


def _rungs(executor):
    """The levels' numbers and thresholds (what deriving a standing needs of the ladder)."""
    return executor.execute(select(Level.number, Level.growth_threshold).order_by(Level.number)).all()


def _derived(executor, user_id: int, as_of: datetime, ladder) -> Standing:
    """USER_ID's standing at AS_OF, replayed from the ledger (EXECUTOR: the session or a connection)."""
    postings = executor.execute(_postings_of(user_id)).all()
    return derive(postings, replay(postings)[0], ladder, as_of)


def _upsert(dialect: str, guarded: bool):
    """INSERT … ON CONFLICT DO UPDATE of member_points rows given as parameters, bumping the
    version; GUARDED: an existing row only if its version is still the parameter `seen`."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:  # pragma: no cover - the app runs on SQLite and PostgreSQL only
        raise RuntimeError(f"no INSERT … ON CONFLICT for {dialect}")
    table = MemberPoints.__table__
    columns = ("user_id",) + STORED
    values = {name: bindparam(name, type_=table.c[name].type) for name in columns}
    statement = insert(table).values(values | {"version": 1})
    return statement.on_conflict_do_update(
        index_elements=[table.c.user_id],
        set_={name: statement.excluded[name] for name in STORED} | {"version": table.c.version + 1},
        where=(table.c.version == bindparam("seen")) if guarded else None,
    )


@cache
def _update(guarded: bool):
    """UPDATE of one member_points row given as parameters (`member`, the STORED columns), bumping
    the version; GUARDED: only while its version is still the parameter `seen`."""
    table = MemberPoints.__table__
    statement = (update(table).where(table.c.user_id == bindparam("member"))
                 .values({name: bindparam(name, type_=table.c[name].type) for name in STORED}
                         | {"version": table.c.version + 1}))
    return statement.where(table.c.version == bindparam("seen")) if guarded else statement


# Up to this many rows are written one UPDATE at a time: SQLAlchemy caches an UPDATE's SQL but
# compiles an INSERT … ON CONFLICT anew on every call (3 ms, most of what an award cost).
_ONE_BY_ONE = 20


def _write(executor, dialect: str, rows: list[dict], guarded: bool = False) -> None:
    """Upsert ROWS of member_points (see `_upsert`). Few rows, as after a posting, whose member
    has a row nearly always: an UPDATE each, and the upsert only for those that found none."""
    if len(rows) <= _ONE_BY_ONE:
        def updated(row) -> bool:
            return executor.execute(_update(guarded), {"member": row["user_id"], **row}).rowcount > 0

        if guarded:  # `seen` None: no row when it was read, insert it; else update that version (a newer one stays)
            for row in rows:
                if row["seen"] is not None:
                    updated(row)
            rows = [row for row in rows if row["seen"] is None]
        else:
            rows = [row for row in rows if not updated(row)]
    if rows:
        executor.execute(_upsert(dialect, guarded), rows)


def _dialect(session) -> str:
    return session.get_bind().dialect.name


@event.listens_for(Session, "after_flush")
def _restate_after_posting(session, _context):
    """Rewrite the standing of every member this flush added postings for, in its transaction.

    Whoever adds a posting through the ORM (the movers above, or a test) keeps the cache right
    without thinking of it; bulk inserts that bypass the ORM call `recache_standings`. The
    movers lock the member before posting, so concurrent postings of one member rewrite the
    row in turn, each from everything committed before it (and its own)."""
    added: dict[int, list[PointsPosting]] = {}
    for obj in session.new:
        if isinstance(obj, PointsPosting):
            added.setdefault(obj.user_id, []).append(obj)
    if not added:
        return
    connection = session.connection()
    ladder = Level.cached_ladder(session) or _rungs(connection)
    rows = []
    for user_id, postings in added.items():
        standing = _plus_credit(connection, postings, ladder)
        if standing is None:
            at = max(p.created_at or utcnow() for p in postings)
            standing = _derived(connection, user_id, at, ladder)
        rows.append({"user_id": user_id, **standing.row()})
    _write(connection, connection.dialect.name, rows)


def _plus_credit(connection, postings, ladder) -> Standing | None:
    """The member's stored standing moved on by POSTINGS if they are one credit that is the
    member's newest posting (an award, a refund): two indexed reads instead of replaying the
    whole ledger (`Standing.plus_credit`). None: replay it."""
    if len(postings) != 1 or postings[0].points <= 0 or postings[0].created_at is None:
        return None
    credit = postings[0]
    stored, later = _credit_reads()
    row = connection.execute(stored, {"member": credit.user_id}).first()
    if row is None:
        return None
    params = {"member": credit.user_id, "posting": credit.id, "at": credit.created_at}
    if connection.execute(later, params).first() is not None:  # a posting dated after it (a backdated credit)
        return None
    return Standing.from_row(row).plus_credit(credit, ladder)


@cache
def _credit_reads():
    """`_plus_credit`'s two statements, built once (building a statement costs more than running it)."""
    table = MemberPoints.__table__
    member = bindparam("member")
    at = bindparam("at", type_=PointsPosting.__table__.c.created_at.type)
    stored = select(table).where(table.c.user_id == member)
    later = select(PointsPosting.id).where(
        PointsPosting.user_id == member, PointsPosting.id != bindparam("posting"),
        or_(PointsPosting.created_at > at, and_(PointsPosting.created_at == at, PointsPosting.id > bindparam("posting"))),
    ).limit(1)
    return stored, later


def _note_unstored(user_id: int, seen: int | None, standing: Standing) -> None:
    pending = _unstored.get()
    if pending is not None and not db.write_intent.get():
        pending[user_id] = (seen, standing)


def collect_unstored() -> None:
    """From now on in this context (a request), note the standings derived but not stored, for
    `take_unstored` and `store_standings` once the view is done."""
    _unstored.set({})


def take_unstored() -> dict[int, tuple[int | None, Standing]]:
    """The standings noted since `collect_unstored`; noting stops."""
    pending = _unstored.get() or {}
    _unstored.set(None)
    return pending


def store_standings(pending: dict[int, tuple[int | None, Standing]]) -> None:
    """Write standings a read-only unit of work derived (PENDING, from `take_unstored`), each
    only if the member's row is still the version it replaced: a posting meanwhile wrote a
    newer one, which stays. Needs no member lock. Executes only: the caller commits, in a
    transaction of its own (blueprints/points_cache.py)."""
    rows = [{"user_id": user_id, "seen": seen, **standing.row()} for user_id, (seen, standing) in pending.items()]
    _write(db.session, _dialect(db.session), rows, guarded=True)


def refresh_standing(member, now: datetime | None = None) -> Standing:
    """Store MEMBER's standing at NOW unless their row still holds, under the member lock (jobs)."""
    now = now or utcnow()
    lock_member(member)
    ladder = _rungs(db.session)
    row = db.session.execute(select(MemberPoints.__table__).where(MemberPoints.user_id == member.id)).first()
    if row is not None and (standing := Standing.from_row(row)).is_fresh(now, ladder_key(ladder)):
        return standing
    standing = _derived(db.session, member.id, now, ladder)
    _write(db.session, _dialect(db.session), [{"user_id": member.id, **standing.row()}])
    return standing


def recache_standings(now: datetime | None = None, user_ids=None) -> int:
    """Rebuild from the ledger, at NOW, the standing of every member who has postings or a row
    (or of USER_IDS only); returns how many rows were written. For bulk writers that insert
    postings around the ORM (bench/scale.py) and to repair what `points verify` reports.

    One pass over the ledger and no member lock: each row is written only if its version is the
    one read before the postings were, so a posting committed meanwhile (which wrote a fresher
    row) wins. Executes only; the caller commits."""
    now = now or utcnow()
    table = MemberPoints.__table__
    versions = select(table.c.user_id, table.c.version)
    postings = select(*_REPLAYED).order_by(PointsPosting.user_id, PointsPosting.created_at, PointsPosting.id)
    if user_ids is not None:
        versions = versions.where(table.c.user_id.in_(list(user_ids)))
        postings = postings.where(PointsPosting.user_id.in_(list(user_ids)))
    seen = dict(db.session.execute(versions).all())  # before the postings: see above
    ladder = _rungs(db.session)
    rows = []
    for user_id, group in groupby(db.session.execute(postings.execution_options(yield_per=5000)), lambda p: p.user_id):
        group = list(group)
        rows.append({"user_id": user_id, "seen": seen.pop(user_id, None),
                     **derive(group, replay(group)[0], ladder, now).row()})
    rows += [{"user_id": user_id, "seen": version, **derive([], [], ladder, now).row()}
             for user_id, version in seen.items()]  # a row, no postings: an empty ledger
    for start in range(0, len(rows), 1000):
        _write(db.session, _dialect(db.session), rows[start:start + 1000], guarded=True)
    return len(rows)


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
