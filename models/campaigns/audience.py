"""Who a campaign reaches: the audience builder's filters, as one SQL query.

Every filter narrows (AND): communities (a member of any of them), a level range, inactive for
at least N days (models/activity.py), a garage car of a make / series / model-year range /
energy type, the members a safety recall reaches, marketing opt-in, and how the member can be
reached beyond the inbox. Marketing kinds (win-back, announcements) always require the opt-in.

The count and the sample are what the admin sees before sending; the fan-out takes the same
query in member-id order, in batches (`member_ids`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from sqlalchemy import and_, exists, func, or_, select

from models import DomainError, N_, db
from models.accounts import User, mask_phone
from models.activity import inactive_since
from models.communities import Membership
from models.garage import ENERGY_TYPES, FIRST_MODEL_YEAR, Car
from models.loyalty.rules import Level
from models.push import PushSubscription

REACH = ("any", "push", "sms", "push_or_sms")
REACH_LABELS = {
    "any": N_("Everyone (the inbox reaches all)"),
    "push": N_("Only members with a Web Push device"),
    "sms": N_("Only members with a verified mobile number"),
    "push_or_sms": N_("Members with a push device or a verified mobile number"),
}
MAX_INACTIVE_DAYS = 3650
SAMPLE_SIZE = 10


@dataclass(frozen=True)
class Audience:
    community_ids: tuple[int, ...] = ()
    level_min: int | None = None
    level_max: int | None = None
    inactive_days: int | None = None
    make_id: int | None = None
    series_id: int | None = None
    year_from: int | None = None
    year_to: int | None = None
    energy: str | None = None
    recall_id: int | None = None
    marketing_only: bool = False
    reach: str = "any"

    def to_json(self) -> dict:
        data = asdict(self)
        data["community_ids"] = list(self.community_ids)
        return {k: v for k, v in data.items() if v not in (None, (), [], False, "any")}

    @classmethod
    def from_json(cls, data: dict | None) -> Audience:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in (data or {}).items() if k in names}
        values["community_ids"] = tuple(int(i) for i in values.get("community_ids") or ())
        return cls(**values)

    def checked(self) -> Audience:
        """Itself, or a DomainError naming the filter that can select nobody by construction."""
        if self.reach not in REACH:
            raise DomainError(N_("Choose how the members must be reachable."), field="reach")
        if self.level_min is not None and self.level_max is not None and self.level_min > self.level_max:
            raise DomainError(N_("The lowest level (Lv.%(low)s) is above the highest (Lv.%(high)s): swap them."),
                              field="level_min", low=self.level_min, high=self.level_max)
        for name in ("level_min", "level_max"):
            value = getattr(self, name)
            if value is not None and not 1 <= value <= 9:
                raise DomainError(N_("Levels go from Lv.1 to Lv.9."), field=name)
        if self.year_from is not None and self.year_to is not None and self.year_from > self.year_to:
            raise DomainError(N_("The first model year (%(first)s) is after the last (%(last)s): swap them."),
                              field="year_from", first=self.year_from, last=self.year_to)
        for name in ("year_from", "year_to"):
            value = getattr(self, name)
            if value is not None and not FIRST_MODEL_YEAR <= value <= 2100:
                raise DomainError(N_("Enter a model year from %(first)s on."), field=name, first=FIRST_MODEL_YEAR)
        if self.inactive_days is not None and not 0 <= self.inactive_days <= MAX_INACTIVE_DAYS:
            raise DomainError(N_("Inactive days go from 0 to %(most)s."), field="inactive_days",
                              most=MAX_INACTIVE_DAYS)
        if self.energy is not None and self.energy not in ENERGY_TYPES:
            raise DomainError(N_("Choose an energy type from the list."), field="energy")
        if self.series_id is not None and self.make_id is None:
            raise DomainError(N_("Choose the make of that series first."), field="make_id")
        return self

    @property
    def uses_garage(self) -> bool:
        return any(v is not None for v in (self.make_id, self.series_id, self.year_from, self.year_to, self.energy))


def _conditions(audience: Audience) -> list:
    where = []
    if audience.community_ids:
        where.append(exists().where(Membership.user_id == User.id,
                                    Membership.community_id.in_(audience.community_ids)))
    if audience.level_min is not None:
        where.append(User.level_number >= audience.level_min)
    if audience.level_max is not None:
        where.append(User.level_number <= audience.level_max)
    if audience.inactive_days is not None:
        where.append(inactive_since(audience.inactive_days))
    if audience.uses_garage:
        # IN (SELECT owner_id …) rather than a correlated EXISTS: SQLite then walks the cars index
        # (make, series, year) once instead of probing it per member (6 ms → 0.1 ms at 20,000).
        car = []
        if audience.make_id is not None:
            car.append(Car.make_id == audience.make_id)
        if audience.series_id is not None:
            car.append(Car.series_id == audience.series_id)
        if audience.year_from is not None:
            car.append(Car.model_year >= audience.year_from)
        if audience.year_to is not None:
            car.append(Car.model_year <= audience.year_to)
        if audience.energy is not None:
            car.append(Car.energy == audience.energy)
        where.append(User.id.in_(select(Car.owner_id).where(*car)))
    if audience.recall_id is not None:
        from models.recalls import Recall, recall_audience  # recalls sit above the garage, as campaigns do

        recall = db.session.get(Recall, audience.recall_id)
        where.append(User.id.in_(recall_audience(recall)) if recall is not None else False)
    if audience.marketing_only:
        where.append(User.marketing_opt_in.is_(True))
    has_push = exists().where(PushSubscription.user_id == User.id)
    has_phone = and_(User.phone.is_not(None), User.phone_verified_at.is_not(None))
    if audience.reach == "push":
        where.append(has_push)
    elif audience.reach == "sms":
        where.append(has_phone)
    elif audience.reach == "push_or_sms":
        where.append(or_(has_push, has_phone))
    return where


def member_ids(audience: Audience, after: int = 0, limit: int | None = None):
    """A SELECT of the audience's member ids above AFTER, in id order (the fan-out's batches)."""
    statement = select(User.id).where(*_conditions(audience), User.id > after).order_by(User.id)
    return statement.limit(limit) if limit else statement


def count(audience: Audience) -> int:
    return db.session.scalar(select(func.count()).select_from(User).where(*_conditions(audience)))


@dataclass(frozen=True)
class SampleMember:
    """How a member of the audience is shown before sending: enough to sanity-check, no more."""

    name: str
    phone: str
    level: int
    last_active_on: object
    has_push: bool = field(default=False)


def mask_name(nickname: str) -> str:
    """电车阿丽 → 电**丽; two characters → 电*; one stays as it is."""
    name = nickname or ""
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * min(len(name) - 2, 4) + name[-1]


def sample(audience: Audience, size: int = SAMPLE_SIZE) -> list[SampleMember]:
    """SIZE members of the audience at random, masked."""
    has_push = exists().where(PushSubscription.user_id == User.id)
    rows = db.session.execute(
        select(User.nickname, User.phone, User.level_number, User.last_active_on, has_push)
        .where(*_conditions(audience)).order_by(func.random()).limit(size)
    ).all()
    return [SampleMember(mask_name(nickname), mask_phone(phone), level, last_active, bool(push))
            for nickname, phone, level, last_active, push in rows]


def level_choices() -> list[tuple[int, str]]:
    return [(level.number, f"{level.label} {level.display_name}") for level in Level.ladder()]
