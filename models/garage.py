"""The garage (我的车库): members' cars, and the dictionary of makes and series they pick from.

The dictionary (`car_makes`, `car_series`) is reference data seeded by the migration from
models/data/car_series.csv: the makes and series common in China's used-car market, each
series with its energy type and latin / pinyin aliases for the type-ahead. A car not in it is
typed by the member ("other") and kept apart: `other_make` / `other_series` free text, never
added to the dictionary, and never matched by a recall of a listed make it does not name.

VINs follow ISO 3779 (GB 16735 in China): 17 characters without I, O or Q; position 9 is a
check digit, mandatory for cars built in China (WMI starting with L), so there it is enforced;
imports may follow other rules (Europe has no check digit), so there it is only a warning.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from flask import has_request_context
from flask_babel import get_locale
from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, UniqueConstraint, func, or_, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models import N_, DomainError, db
from models.communities import Community, member_community_ids
from models.events.signups import PLATE_RE, normalise_plate
from models.nonces import AlreadySubmitted, first_submission
from models.types import UTCDateTime, shanghai_day, utcnow

# Energy types as the Chinese market names them; msgids in English, shown in the reader's language.
ENERGY_TYPES = {
    "fuel": N_("Petrol"),  # 燃油
    "bev": N_("Battery electric"),  # 纯电
    "phev": N_("Plug-in hybrid"),  # 插混
    "erev": N_("Range extender"),  # 增程
    "hev": N_("Hybrid"),  # 混动 (not 新能源: no plug, no green plate)
}
NEW_ENERGY = {"bev", "phev", "erev"}  # 新能源 as the green plate counts it
# Community suggested by a car's energy type, by the community's slug (see demo.COMMUNITIES).
SUGGESTED_COMMUNITY = {"bev": "ev", "phev": "ev", "erev": "ev"}

FIRST_MODEL_YEAR = 1985
MAX_MILEAGE_KM = 2_000_000
FREE_TEXT_MAX = 40
_ENERGY_CHECK = "energy IN ('fuel','bev','phev','erev','hev')"


def _localised(zh: str, en: str) -> str:
    """The English name for an English reader; Chinese otherwise, and outside a request (jobs)."""
    return en if en and has_request_context() and str(get_locale() or "zh_CN").startswith("en") else zh


class CarMake(db.Model):
    __tablename__ = "car_makes"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(30), unique=True, nullable=False)
    name_en: Mapped[str] = mapped_column(String(40), nullable=False, default="")
    aliases: Mapped[str] = mapped_column(String(200), nullable=False, default="")  # pinyin, latin, initials
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)  # the market's order

    @property
    def display_name(self) -> str:
        return _localised(self.name, self.name_en)

    @classmethod
    def all_ordered(cls) -> list[CarMake]:
        return list(db.session.scalars(select(cls).order_by(cls.position, cls.id)))

    @classmethod
    def named(cls, text: str) -> CarMake | None:
        """The listed make a member typed by its name (any case, either language), if any."""
        key = re.sub(r"\s+", "", text or "").lower()
        if not key:
            return None
        return db.session.scalar(select(cls).where(or_(
            func.lower(func.replace(cls.name, " ", "")) == key,
            func.lower(func.replace(cls.name_en, " ", "")) == key,
        )))


class CarSeries(db.Model):
    __tablename__ = "car_series"
    __table_args__ = (
        UniqueConstraint("make_id", "name"),
        CheckConstraint(_ENERGY_CHECK, name="known_energy"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    make_id: Mapped[int] = mapped_column(ForeignKey("car_makes.id", ondelete="CASCADE"), nullable=False, index=True)
    name: Mapped[str] = mapped_column(String(40), nullable=False)
    name_en: Mapped[str] = mapped_column(String(60), nullable=False, default="")
    aliases: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    energy: Mapped[str] = mapped_column(String(8), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    make: Mapped[CarMake] = relationship(lazy="joined", innerjoin=True)

    @property
    def display_name(self) -> str:
        return _localised(self.name, self.name_en)

    @property
    def label(self) -> str:
        """What the type-ahead lists: make and series, as members say them (比亚迪 汉 EV)."""
        return f"{self.make.display_name} {self.display_name}"


def _squashed(column):
    """COLUMN lower-cased without spaces: "Model 3" is found by "model3" and "Model 3"."""
    return func.lower(func.replace(column, " ", ""))


def search_series(query: str, limit: int = 30) -> list[CarSeries]:
    """Series whose make or series name, English name or alias contains every word of QUERY
    (比亚 → 比亚迪's series, byd → the same, 大众 朗逸 → 朗逸), in the market's order."""
    words = [w for w in re.split(r"\s+", (query or "").strip().lower()) if w][:4]
    if not words:
        return []
    columns = [CarMake.name, CarMake.name_en, CarMake.aliases, CarSeries.name, CarSeries.name_en, CarSeries.aliases]
    statement = select(CarSeries).join(CarMake, CarMake.id == CarSeries.make_id)
    for word in words:
        pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        statement = statement.where(or_(*(_squashed(c).like(pattern, escape="\\") for c in columns)))
    statement = statement.order_by(CarMake.position, CarSeries.position, CarSeries.id).limit(limit)
    return list(db.session.scalars(statement))


# --- VIN -----------------------------------------------------------------------------------

VIN_RE = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")  # no I, O, Q: they read as 1 and 0
_VALUES = {**{str(d): d for d in range(10)},
           **dict(zip("ABCDEFGH", range(1, 9))), **dict(zip("JKLMN", range(1, 6))), "P": 7, "R": 9,
           **dict(zip("STUVWXYZ", range(2, 10)))}
_WEIGHTS = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)


def normalise_vin(value: str | None) -> str:
    return re.sub(r"[\s\-·]", "", value or "").upper()


def vin_check_digit(vin: str) -> str:
    """ISO 3779's check digit of VIN (position 9 is weighted 0): the weighted sum mod 11, 10 as X."""
    remainder = sum(_VALUES[ch] * weight for ch, weight in zip(vin, _WEIGHTS)) % 11
    return "X" if remainder == 10 else str(remainder)


def check_vin(value: str | None) -> tuple[str | None, str | None]:
    """(the VIN normalised or None when empty, a warning or None). Refuses a VIN that cannot be
    one, and a Chinese-built one (L…) whose check digit is wrong: that is a typo."""
    vin = normalise_vin(value)
    if not vin:
        return None, None
    if len(vin) != 17:
        raise DomainError(N_("A VIN has 17 characters; this one has %(count)s."), field="vin", count=len(vin))
    if not VIN_RE.match(vin):
        raise DomainError(N_("A VIN has only digits and capital letters, never I, O or Q."), field="vin")
    if vin[8] != vin_check_digit(vin):
        if vin.startswith("L"):
            raise DomainError(N_("This VIN does not add up: its 9th character should be %(digit)s. Check it "
                                 "against your registration certificate (行驶证)."), field="vin",
                              digit=vin_check_digit(vin))
        return vin, N_("The check digit of this VIN does not add up. Imported cars may use another rule, "
                       "so it was saved: please compare it with your registration certificate.")
    return vin, None


def mask_vin(vin: str | None) -> str:
    """LSV*********1234: enough to recognise one's car, not enough to clone its papers."""
    if not vin:
        return ""
    return vin[:3] + "*" * (len(vin) - 7) + vin[-4:]


# --- cars ----------------------------------------------------------------------------------

class Car(db.Model):
    __tablename__ = "cars"
    __table_args__ = (
        # Listed make, or a make typed by the member: one or the other.
        CheckConstraint("(make_id IS NULL) <> (other_make IS NULL)", name="one_make"),
        # Listed series (of a listed make), or a series typed by the member.
        CheckConstraint("(series_id IS NULL AND other_series IS NOT NULL) OR "
                        "(series_id IS NOT NULL AND other_series IS NULL AND make_id IS NOT NULL)",
                        name="one_series"),
        CheckConstraint(_ENERGY_CHECK, name="known_energy"),
        CheckConstraint(f"model_year >= {FIRST_MODEL_YEAR} AND model_year <= 2100", name="model_year_range"),
        CheckConstraint(f"mileage_km IS NULL OR (mileage_km >= 0 AND mileage_km <= {MAX_MILEAGE_KM})",
                        name="mileage_range"),
        # The add form's one-time nonce: a repeated submission returns the first car (models/nonces.py).
        Index("uq_cars_owner_id_create_nonce", "owner_id", "create_nonce", unique=True),
        # Recall matching and campaign audiences select by make, series and year.
        Index("ix_cars_make_series_year", "make_id", "series_id", "model_year"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True)
    make_id: Mapped[int | None] = mapped_column(ForeignKey("car_makes.id"))
    series_id: Mapped[int | None] = mapped_column(ForeignKey("car_series.id"))
    other_make: Mapped[str | None] = mapped_column(String(FREE_TEXT_MAX))
    other_series: Mapped[str | None] = mapped_column(String(FREE_TEXT_MAX))
    energy: Mapped[str] = mapped_column(String(8), nullable=False)
    model_year: Mapped[int] = mapped_column(Integer, nullable=False)
    mileage_km: Mapped[int | None] = mapped_column(Integer)
    vin: Mapped[str | None] = mapped_column(String(17))
    plate: Mapped[str | None] = mapped_column(String(10))
    create_nonce: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)

    make: Mapped[CarMake | None] = relationship(lazy="joined")
    series: Mapped[CarSeries | None] = relationship(lazy="joined")

    @property
    def is_listed(self) -> bool:
        return self.series_id is not None

    @property
    def make_name(self) -> str:
        return self.make.display_name if self.make else self.other_make or ""

    @property
    def series_name(self) -> str:
        return self.series.display_name if self.series else self.other_series or ""

    @property
    def title(self) -> str:
        return f"{self.make_name} {self.series_name}"

    @property
    def masked_vin(self) -> str:
        return mask_vin(self.vin)

    @property
    def energy_label(self) -> str:
        return ENERGY_TYPES[self.energy]

    @classmethod
    def owned_by(cls, member, car_id: int) -> Car | None:
        """The car if MEMBER owns it; another member's car is as absent as a missing one."""
        car = db.session.get(cls, car_id)
        return car if car is not None and car.owner_id == member.id else None


def cars_of(member) -> list[Car]:
    return list(db.session.scalars(select(Car).where(Car.owner_id == member.id).order_by(Car.created_at, Car.id)))


@dataclass
class CarInput:
    """What the garage form hands the model."""

    series_id: int | None = None
    other: bool = False  # the member types make and series: not in the dictionary
    other_make: str = ""
    other_series: str = ""
    energy: str = ""  # only for "other": a listed series brings its own
    model_year: int | None = None
    mileage_km: int | None = None
    vin: str = ""
    plate: str = ""


def model_years(today=None) -> list[int]:
    """The model years a member may pick, newest first (next year's models are sold from autumn)."""
    return list(range(shanghai_day(today).year + 1, FIRST_MODEL_YEAR - 1, -1))


def _free_text(value: str, field: str, missing: str) -> str:
    text = re.sub(r"\s+", " ", value or "").strip()
    if not text:
        raise DomainError(missing, field=field)
    if len(text) > FREE_TEXT_MAX:
        raise DomainError(N_("At most %(max)s characters."), field=field, max=FREE_TEXT_MAX)
    return text


def _checked(data: CarInput) -> dict:
    """The columns DATA stands for, or a DomainError naming the field it refuses."""
    values: dict = {}
    if data.other:
        series_text = _free_text(data.other_series, "other_series", N_("Type the series, such as 汉 EV or 朗逸."))
        make_text = _free_text(data.other_make, "other_make", N_("Type the make, such as 比亚迪."))
        listed_make = CarMake.named(make_text)  # a listed make typed by hand still counts for recalls
        listed = listed_make and db.session.scalar(select(CarSeries).where(
            CarSeries.make_id == listed_make.id,
            or_(_squashed(CarSeries.name) == re.sub(r"\s+", "", series_text).lower(),
                _squashed(CarSeries.name_en) == re.sub(r"\s+", "", series_text).lower())))
        if listed:  # typed exactly as the dictionary has it: it is that series
            return _checked(CarInput(series_id=listed.id, model_year=data.model_year, mileage_km=data.mileage_km,
                                     plate=data.plate))
        if data.energy not in ENERGY_TYPES:
            raise DomainError(N_("Choose the energy type."), field="energy")
        values.update(make_id=listed_make.id if listed_make else None,
                      other_make=None if listed_make else make_text,
                      series_id=None, other_series=series_text, energy=data.energy)
    else:
        series = db.session.get(CarSeries, data.series_id) if data.series_id else None
        if series is None:
            raise DomainError(N_("Search for your car and pick it from the list, or choose “Not listed”."),
                              field="pick")
        values.update(make_id=series.make_id, other_make=None, series_id=series.id, other_series=None,
                      energy=series.energy)
    years = model_years()
    if data.model_year is None or not years[-1] <= data.model_year <= years[0]:
        raise DomainError(N_("Choose a model year between %(first)s and %(last)s."), field="model_year",
                          first=years[-1], last=years[0])
    if data.mileage_km is not None and not 0 <= data.mileage_km <= MAX_MILEAGE_KM:
        raise DomainError(N_("Enter the mileage in kilometres, from 0 to %(max)s."), field="mileage_km",
                          max=MAX_MILEAGE_KM)
    values.update(model_year=data.model_year, mileage_km=data.mileage_km)
    plate = normalise_plate(data.plate)
    if plate and not PLATE_RE.match(plate):
        raise DomainError(N_("Enter your licence plate, such as 粤B12345."), field="plate")
    values["plate"] = plate or None
    return values


def save_car(owner, data: CarInput, car: Car | None = None, nonce: str | None = None) -> tuple[Car, str | None]:
    """Add a car to OWNER's garage or update CAR (flushes only); returns the car and a warning
    for the member, if any (an import's VIN whose check digit does not add up).

    A new car from the form carries its one-time NONCE (None only for the demo seed and tests):
    a repeat raises `AlreadySubmitted` with the car the first submission added."""
    if car is None and nonce is not None:
        first = first_submission(owner, nonce, Car.create_nonce, Car.owner_id)
        if first is not None:
            raise AlreadySubmitted(first)
    values = _checked(data)
    vin, warning = check_vin(data.vin)
    values["vin"] = vin
    if car is None:
        car = Car(owner_id=owner.id, create_nonce=nonce)
        db.session.add(car)
    for name, value in values.items():
        setattr(car, name, value)
    car.updated_at = utcnow()
    db.session.flush()
    db.session.refresh(car, ["make", "series"])
    return car, warning


def delete_car(car: Car) -> None:
    """Remove the car (its recall marks go with it); flushes only."""
    db.session.delete(car)
    db.session.flush()


def suggested_communities(member, cars: list[Car]) -> list[Community]:
    """Communities the member's cars point to and the member has not joined (an EV or plug-in
    owner: 新能源车主), in the communities' own order."""
    slugs = {SUGGESTED_COMMUNITY[c.energy] for c in cars if c.energy in SUGGESTED_COMMUNITY}
    if not slugs:
        return []
    joined = member_community_ids(member)
    return [c for c in Community.all_ordered() if c.slug in slugs and c.id not in joined]

