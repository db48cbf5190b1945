"""Column types shared by the models."""
from __future__ import annotations

from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import Boolean, DateTime, TypeDecorator
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every database (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


# Daily caps, streaks and "12 months" count in Asia/Shanghai days, whatever the server's zone.
SHANGHAI = ZoneInfo("Asia/Shanghai")


def shanghai_day(moment: datetime | None = None) -> date:
    """The calendar day in Shanghai at MOMENT (now by default)."""
    return (moment or utcnow()).astimezone(SHANGHAI).date()


def shanghai_midnight(day: date) -> datetime:
    """The UTC instant at which DAY begins in Shanghai."""
    return datetime.combine(day, time.min, tzinfo=SHANGHAI).astimezone(timezone.utc)


def add_months(day: date, months: int) -> date:
    """DAY moved by MONTHS calendar months (the 29th-31st fall back to the month's last day)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return date(year, month, min(day.day, candidate))
        except ValueError:
            continue
    raise ValueError(day)


class likely(FunctionElement):
    """A condition most rows meet, to be checked on the rows an index hands over rather than
    searched by: SQLite's planner is told so (`likelihood`), or a range on a time column makes
    it search by the range and sort every row found instead of reading the ordered index for
    the first few; other databases get the plain condition (their statistics say as much)."""

    type = Boolean()
    name = "likely"
    inherit_cache = True


@compiles(likely)
def _likely(element, compiler, **kw):
    return compiler.process(element.clauses, **kw)


@compiles(likely, "sqlite")
def _likely_sqlite(element, compiler, **kw):
    return f"likelihood({compiler.process(element.clauses, **kw)}, 0.99)"
