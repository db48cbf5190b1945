"""Membership levels and earning rules (the bottom layer of loyalty): data that admins tune.

Nothing here reads the ledger: a level is reached by growth (成长值) earned within
`GROWTH_WINDOW`; adding that growth up is the ledger's job (`ledger.growth_of`, `ledger.level_of`).
Whoever changes a level's threshold needs to do nothing more: every cached standing remembers
the thresholds it was levelled against and is recomputed once they differ (`standing`).
"""
from __future__ import annotations

from datetime import timedelta

from flask_babel import get_locale
from sqlalchemy import CheckConstraint, String, event, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from models import N_, db

# Growth counts towards the level for this long, so a level can fall as old growth ages out.
GROWTH_WINDOW = timedelta(days=365)

# The labels of the rules the migration seeds, so the catalog translates them.
RULE_LABELS = (
    N_("Daily check-in"), N_("7-day check-in streak"), N_("Story posted"), N_("Story featured"), N_("Comment"),
    N_("Like received"), N_("Event attended"), N_("Friend invited"), N_("Report confirmed"), N_("Welcome-back gift"),
)


_LADDER = "loyalty.ladder"  # Session.info key of the transaction's levels


class Level(db.Model):
    __tablename__ = "levels"
    __table_args__ = (
        CheckConstraint("number BETWEEN 1 AND 9", name="number_range"),
        CheckConstraint("multiplier_percent >= 100", name="multiplier_at_least_one"),
        CheckConstraint("priority_hours >= 0", name="priority_not_negative"),
    )

    number: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(20), nullable=False)
    name_en: Mapped[str] = mapped_column(String(40), nullable=False, default="")
    growth_threshold: Mapped[int] = mapped_column(nullable=False, unique=True)
    # Points earned are multiplied by this percentage (integers only: 150 means ×1.5).
    multiplier_percent: Mapped[int] = mapped_column(nullable=False, default=100)
    # Event signup opens this many hours before the general opening.
    priority_hours: Mapped[int] = mapped_column(nullable=False, default=0)
    benefits: Mapped[str] = mapped_column(String(300), nullable=False, default="")
    benefits_en: Mapped[str] = mapped_column(String(400), nullable=False, default="")

    @property
    def label(self) -> str:
        return f"Lv.{self.number}"

    @property
    def display_name(self) -> str:
        english = str(get_locale() or "zh").startswith("en")
        return self.name_en if english and self.name_en else self.name

    @property
    def display_benefits(self) -> str:
        english = str(get_locale() or "zh").startswith("en")
        return self.benefits_en if english and self.benefits_en else self.benefits

    @property
    def multiplier(self) -> str:
        return f"×{self.multiplier_percent / 100:g}"

    @classmethod
    def ladder(cls) -> list[Level]:
        """The levels by number, read once per transaction: a like reads them for the multiplier,
        the standing and the page (three queries before)."""
        ladder = db.session.info.get(_LADDER)
        if ladder is None:
            ladder = db.session.info[_LADDER] = list(db.session.scalars(select(cls).order_by(cls.number)))
        return list(ladder)

    @staticmethod
    def cached_ladder(session) -> list[Level] | None:
        """SESSION's ladder if this transaction read it already (for a flush hook, which must not query)."""
        return session.info.get(_LADDER)

    @classmethod
    def reached_with(cls, growth: int) -> tuple[Level, Level | None]:
        """The level GROWTH reaches (the lowest one when it reaches none) and the next one up."""
        return reached_in(cls.ladder(), growth)


def reached_in(ladder, growth: int):
    """The rung of LADDER (levels by number, or anything with `number` and `growth_threshold`)
    that GROWTH reaches, the lowest when it reaches none, and the next one up (None at the top)."""
    current = ladder[0]
    for level in ladder:
        if growth >= level.growth_threshold:
            current = level
    return current, next_above(ladder, current)


def next_above(ladder, level):
    """The first rung of LADDER above LEVEL's threshold, or None."""
    later = [lv for lv in ladder if lv.growth_threshold > level.growth_threshold]
    return later[0] if later else None


class EarningRule(db.Model):
    """How many points and growth an action earns, and how often a day it may."""

    __tablename__ = "earning_rules"
    __table_args__ = (
        CheckConstraint("points >= 0 AND growth >= 0", name="not_negative"),
        CheckConstraint("daily_limit IS NULL OR daily_limit > 0", name="limit_positive"),
    )

    code: Mapped[str] = mapped_column(String(30), primary_key=True)
    label: Mapped[str] = mapped_column(String(60), nullable=False)  # an English msgid
    points: Mapped[int] = mapped_column(nullable=False)
    growth: Mapped[int] = mapped_column(nullable=False, default=0)
    # How many times a member may earn by this rule per Asia/Shanghai day (None: no cap).
    daily_limit: Mapped[int | None] = mapped_column()
    active: Mapped[bool] = mapped_column(nullable=False, default=True)

    @classmethod
    def query_active(cls) -> list[EarningRule]:
        return list(db.session.scalars(select(cls).where(cls.active.is_(True)).order_by(cls.points.desc())))

    @classmethod
    def get(cls, code: str) -> EarningRule:
        rule = db.session.get(cls, code)
        if rule is None:
            raise KeyError(f"unknown earning rule {code!r}")
        return rule


@event.listens_for(Session, "after_transaction_end")
def _forget_ladder_after_transaction(session, transaction):
    """The next transaction reads the levels again: an admin may have changed them meanwhile.
    A savepoint's end is not the transaction's: the ladder holds through it."""
    if transaction.parent is None:
        session.info.pop(_LADDER, None)


@event.listens_for(Session, "after_rollback")
@event.listens_for(Session, "after_soft_rollback")
def _forget_ladder(session, *_args):
    session.info.pop(_LADDER, None)


@event.listens_for(Session, "before_flush")
def _forget_changed_ladder(session, *_args):
    if any(isinstance(obj, Level) for obj in (*session.new, *session.dirty, *session.deleted)):
        session.info.pop(_LADDER, None)
