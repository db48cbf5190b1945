"""Vehicle safety recalls (安全召回), as announced by SAMR's 缺陷产品管理中心, and the cars they reach.

Admins enter a recall: its official number, the make, optionally a series, and a model-year
range, a VIN range or both. A car matches when its listed make (and series, when given) is the
recall's and it falls in the ranges. A VIN range reaches a car without a VIN only through a
year range of the same recall (so the member sees "may concern you: add your VIN"); a recall
given by VIN range alone reaches only cars whose VIN is in it. The garage shows a matching
recall on the car until the member marks it done (one `recall_completions` row per car ×
recall). `cars_matching` and `recall_audience` are what the campaigns send to.

VIN ranges compare the VIN without its check digit (position 9): two VINs of one batch differ
there in no order, while the rest (WMI, VDS, year, plant, serial) sorts as the factory counts.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import (CheckConstraint, Date, ForeignKey, Integer, String, Text, UniqueConstraint, and_, exists,
                        func, or_, select)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models import N_, DomainError, db
from models.audit import audit
from models.garage import FIRST_MODEL_YEAR, Car, CarMake, CarSeries, check_vin
from models.types import UTCDateTime, utcnow

# SAMR's recall numbers: S (vehicles) + year + serial, e.g. S2026-0123.
NUMBER_RE = re.compile(r"^S\d{4}-\d{3,4}$")
TEXT_MAX = 2000


class Recall(db.Model):
    __tablename__ = "recalls"
    __table_args__ = (
        CheckConstraint("year_from IS NULL OR year_to IS NULL OR year_from <= year_to", name="year_order"),
        CheckConstraint("(vin_from IS NULL) = (vin_to IS NULL)", name="vin_pair"),
        CheckConstraint("year_from IS NOT NULL OR year_to IS NOT NULL OR vin_from IS NOT NULL", name="some_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True, nullable=False)
    make_id: Mapped[int] = mapped_column(ForeignKey("car_makes.id"), nullable=False, index=True)
    series_id: Mapped[int | None] = mapped_column(ForeignKey("car_series.id"))
    year_from: Mapped[int | None] = mapped_column(Integer)
    year_to: Mapped[int | None] = mapped_column(Integer)
    vin_from: Mapped[str | None] = mapped_column(String(17))
    vin_to: Mapped[str | None] = mapped_column(String(17))
    defect: Mapped[str] = mapped_column(Text, nullable=False)
    remedy: Mapped[str] = mapped_column(Text, nullable=False)
    announced_on: Mapped[date] = mapped_column(Date, nullable=False)
    starts_on: Mapped[date | None] = mapped_column(Date)  # when dealers begin the repair
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)

    make: Mapped[CarMake] = relationship(lazy="joined", innerjoin=True)
    series: Mapped[CarSeries | None] = relationship(lazy="joined")

    @property
    def vehicle(self) -> str:
        """比亚迪 汉 EV, or the make alone when the recall names no series."""
        return f"{self.make.display_name} {self.series.display_name}" if self.series else self.make.display_name

    def snapshot(self) -> dict:
        """What the audit log keeps of it."""
        return {"number": self.number, "make_id": self.make_id, "series_id": self.series_id,
                "year_from": self.year_from, "year_to": self.year_to, "vin_from": self.vin_from,
                "vin_to": self.vin_to, "defect": self.defect, "remedy": self.remedy,
                "announced_on": self.announced_on.isoformat() if self.announced_on else None,
                "starts_on": self.starts_on.isoformat() if self.starts_on else None}

    @classmethod
    def newest_first(cls) -> list[Recall]:
        return list(db.session.scalars(select(cls).order_by(cls.announced_on.desc(), cls.id.desc())))


class RecallCompletion(db.Model):
    """The member marked RECALL done on CAR: the garage stops showing it there."""

    __tablename__ = "recall_completions"
    __table_args__ = (UniqueConstraint("car_id", "recall_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    car_id: Mapped[int] = mapped_column(ForeignKey("cars.id", ondelete="CASCADE"), nullable=False)
    recall_id: Mapped[int] = mapped_column(ForeignKey("recalls.id", ondelete="CASCADE"), nullable=False, index=True)
    done_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


# --- matching ------------------------------------------------------------------------------

def _vin_key(column):
    """The VIN without its check digit, in SQL (substr is the same on SQLite and PostgreSQL)."""
    return func.substr(column, 1, 8, type_=String) + func.substr(column, 10, 8, type_=String)


def _key(vin: str) -> str:
    return vin[:8] + vin[9:]


def matches():
    """The condition under which a Car row is reached by a Recall row, for any query joining both."""
    has_years = or_(Recall.year_from.is_not(None), Recall.year_to.is_not(None))
    return and_(
        Car.make_id == Recall.make_id,
        or_(Recall.series_id.is_(None), Car.series_id == Recall.series_id),
        or_(Recall.year_from.is_(None), Car.model_year >= Recall.year_from),
        or_(Recall.year_to.is_(None), Car.model_year <= Recall.year_to),
        or_(
            Recall.vin_from.is_(None),
            and_(Car.vin.is_not(None), _vin_key(Car.vin).between(_vin_key(Recall.vin_from), _vin_key(Recall.vin_to))),
            and_(Car.vin.is_(None), has_years),
        ),
    )


def _not_done():
    return ~exists().where(RecallCompletion.car_id == Car.id, RecallCompletion.recall_id == Recall.id)


def cars_matching(recall: Recall, include_done: bool = False):
    """A SELECT of the cars RECALL reaches and whose owners have not marked it done (or all of
    them with INCLUDE_DONE): run it, count it, or use it as a subquery."""
    statement = select(Car).join(Recall, matches()).where(Recall.id == recall.id)
    return statement if include_done else statement.where(_not_done())


def recall_audience(recall: Recall):
    """A SELECT of the ids of the members who own a car RECALL reaches and have not marked it
    done there: the audience of a safety-recall campaign (each member once)."""
    return (select(Car.owner_id).join(Recall, matches()).where(Recall.id == recall.id, _not_done())
            .group_by(Car.owner_id))


def matching_count(recall: Recall) -> int:
    """How many cars RECALL still reaches (not marked done)."""
    return db.session.scalar(select(func.count(Car.id)).join(Recall, matches()).where(Recall.id == recall.id,
                                                                                     _not_done()))


def open_recalls(cars) -> dict[int, list[Recall]]:
    """The recalls still open on each of CARS (car id → recalls, newest first), in one query."""
    ids = [c.id for c in cars]
    found: dict[int, list[Recall]] = {i: [] for i in ids}
    if not ids:
        return found
    rows = db.session.execute(
        select(Car.id, Recall).join(Recall, matches()).where(Car.id.in_(ids), _not_done())
        .order_by(Recall.announced_on.desc(), Recall.id.desc())
    )
    for car_id, recall in rows:
        found[car_id].append(recall)
    return found


def recall_on_car(car: Car, recall_id: int) -> Recall | None:
    """The recall if it reaches CAR (done or not), else None."""
    return db.session.scalar(select(Recall).join(Car, matches()).where(Car.id == car.id, Recall.id == recall_id))


def mark_done(car: Car, recall: Recall) -> None:
    """The member had the recall repaired on this car: stop showing it there. A repeat is harmless."""
    done = db.session.scalar(select(RecallCompletion).where(RecallCompletion.car_id == car.id,
                                                            RecallCompletion.recall_id == recall.id))
    if done is None:
        with db.session.begin_nested():  # a double tap racing this one leaves its row, and that is the same
            db.session.add(RecallCompletion(car_id=car.id, recall_id=recall.id))
        db.session.flush()


# --- admin entry ---------------------------------------------------------------------------

@dataclass
class RecallInput:
    number: str = ""
    make_id: int | None = None
    series_id: int | None = None
    year_from: int | None = None
    year_to: int | None = None
    vin_from: str = ""
    vin_to: str = ""
    defect: str = ""
    remedy: str = ""
    announced_on: date | None = None
    starts_on: date | None = None


def _text(value: str, field: str, missing: str) -> str:
    text = (value or "").strip()
    if not text:
        raise DomainError(missing, field=field)
    if len(text) > TEXT_MAX:
        raise DomainError(N_("At most %(max)s characters."), field=field, max=TEXT_MAX)
    return text


def _range_vin(value: str, field: str) -> str | None:
    try:
        vin, _warning = check_vin(value)
    except DomainError as error:
        error.field = field
        raise
    return vin


def _checked(data: RecallInput, recall: Recall | None) -> dict:
    number = re.sub(r"\s+", "", data.number or "").upper()
    if not NUMBER_RE.match(number):
        raise DomainError(N_("Enter the recall number as SAMR gives it, such as S2026-0123."), field="number")
    taken = db.session.scalar(select(Recall.id).where(Recall.number == number))
    if taken is not None and (recall is None or taken != recall.id):
        raise DomainError(N_("Recall %(number)s is already entered."), field="number", number=number)
    make = db.session.get(CarMake, data.make_id) if data.make_id else None
    if make is None:
        raise DomainError(N_("Choose the make."), field="make")
    series = db.session.get(CarSeries, data.series_id) if data.series_id else None
    if data.series_id and (series is None or series.make_id != make.id):
        raise DomainError(N_("Choose a series of %(make)s, or all series."), field="series", make=make.name)
    for field, year in (("year_from", data.year_from), ("year_to", data.year_to)):
        if year is not None and not FIRST_MODEL_YEAR <= year <= 2100:
            raise DomainError(N_("Enter a model year between %(first)s and 2100."), field=field, first=FIRST_MODEL_YEAR)
    if data.year_from and data.year_to and data.year_from > data.year_to:
        raise DomainError(N_("The first model year comes after the last one."), field="year_to")
    vin_from, vin_to = _range_vin(data.vin_from, "vin_from"), _range_vin(data.vin_to, "vin_to")
    if (vin_from is None) != (vin_to is None):
        raise DomainError(N_("Give both ends of the VIN range, or neither."), field="vin_to" if vin_from else "vin_from")
    if vin_from and _key(vin_from) > _key(vin_to):
        raise DomainError(N_("The first VIN of the range comes after the last one."), field="vin_to")
    if data.year_from is None and data.year_to is None and vin_from is None:
        raise DomainError(N_("Give a model-year range, a VIN range or both: a recall never reaches every car "
                             "of a make."), field="year_from")
    if data.announced_on is None:
        raise DomainError(N_("Enter the date it was announced."), field="announced_on")
    if data.starts_on and data.starts_on < data.announced_on:
        raise DomainError(N_("The repairs cannot start before the recall is announced."), field="starts_on")
    return dict(number=number, make_id=make.id, series_id=series.id if series else None,
                year_from=data.year_from, year_to=data.year_to, vin_from=vin_from, vin_to=vin_to,
                defect=_text(data.defect, "defect", N_("Describe the defect.")),
                remedy=_text(data.remedy, "remedy", N_("Describe the remedy.")),
                announced_on=data.announced_on, starts_on=data.starts_on)


def save_recall(actor, data: RecallInput, recall: Recall | None = None) -> Recall:
    """Enter a new recall or correct RECALL (flushes only); audited either way."""
    values = _checked(data, recall)
    before = recall.snapshot() if recall is not None else None
    if recall is None:
        recall = Recall(created_by_id=getattr(actor, "id", None))
        db.session.add(recall)
    for name, value in values.items():
        setattr(recall, name, value)
    recall.updated_at = utcnow()
    db.session.flush()
    db.session.refresh(recall, ["make", "series"])
    audit(actor, "recall.create" if before is None else "recall.update", recall, before, recall.snapshot())
    return recall
