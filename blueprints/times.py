"""Past moments as people say them, in Shanghai time: 刚刚, 5 分钟前, 3 小时前, 昨天 14:20, 11月3日.

One filter, `ago`, renders every past moment members see as a `<time>` element whose
`datetime` is ISO 8601 without fractional seconds (the HTML checker refuses six-digit
fractions) and whose title is the absolute time. Future moments (an event's start) keep their
absolute format: "in 3 hours" is no way to tell someone when to show up.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache

from babel.dates import format_skeleton
from flask_babel import get_locale
from markupsafe import Markup

from blueprints.i18n import gettext as _

from models.types import SHANGHAI, utcnow


@lru_cache(maxsize=4096)
def _day_text(day: date, skeleton: str, locale: str) -> str:
    return format_skeleton(skeleton, datetime(day.year, day.month, day.day), locale=locale)


def format_day(day: date, skeleton: str) -> str:
    """DAY in the request's language by a date-only SKELETON ('yMMMd': 2025年11月3日). Kept per
    day and language: Babel matches the skeleton anew on every call, and a page of 200 comments
    dates each one twice."""
    return _day_text(day, skeleton, str(get_locale() or "zh_CN"))


# A clock a little ahead of ours (the phone's, another server's) must not show a date.
CLOCK_SKEW = timedelta(seconds=60)


def absolute_time(moment: datetime) -> str:
    """'2025年11月3日 14:20' / 'Nov 3, 2025 14:20' in Shanghai time."""
    local = moment.astimezone(SHANGHAI)
    return f"{format_day(local.date(), 'yMMMd')} {local:%H:%M}"


def relative_time(moment: datetime, now: datetime | None = None) -> str:
    """MOMENT relative to NOW (default: the current time), in the request's language."""
    now = now or utcnow()
    local, today = moment.astimezone(SHANGHAI), now.astimezone(SHANGHAI)
    elapsed = now - moment
    if elapsed < -CLOCK_SKEW:
        return absolute_time(moment)
    if elapsed < timedelta(minutes=1):
        return _("just now")
    if elapsed < timedelta(hours=1):
        return _("%(n)s min ago", n=int(elapsed.total_seconds() // 60))
    if local.date() == today.date():
        return _("%(n)s h ago", n=int(elapsed.total_seconds() // 3600))
    if local.date() == today.date() - timedelta(days=1):
        return _("yesterday %(time)s", time=f"{local:%H:%M}")
    if local.year == today.year:
        return format_day(local.date(), "MMMd")
    return format_day(local.date(), "yMMMd")


def iso_seconds(moment: datetime) -> str:
    """'2025-11-03T14:20:05+08:00': whole seconds, Shanghai offset."""
    return moment.astimezone(SHANGHAI).replace(microsecond=0).isoformat()


def ago(moment: datetime | None, now: datetime | None = None) -> Markup:
    """The `ago` template filter: a `<time>` element with the relative text."""
    if moment is None:
        return Markup("")
    return Markup('<time datetime="{}" title="{}">{}</time>').format(
        iso_seconds(moment), absolute_time(moment), relative_time(moment, now)
    )


def init_times(app) -> None:
    app.add_template_filter(ago, "ago")
    app.add_template_filter(relative_time, "relative")  # a cached fragment's key: what `ago` says now
    app.add_template_filter(iso_seconds, "iso")
