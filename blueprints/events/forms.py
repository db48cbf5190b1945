"""The organizer's event form. Dates are typed as Asia/Shanghai local time (what the organizer's
phone shows) and handed to the model as aware datetimes; the model converts and checks them."""
from __future__ import annotations

from datetime import timezone

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (BooleanField, DateTimeLocalField, HiddenField, IntegerField, SelectField, StringField,
                     TextAreaField)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from models.events import (
    DESCRIPTION_MAX, MAX_ATTENDANCE_POINTS, MAX_CAPACITY, MAX_COMPANIONS, MAX_PRICE, TITLE_MAX,
)
from models.types import SHANGHAI

# What <input type="datetime-local"> submits (the first one is also how values are rendered).
LOCAL_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"]


class ShanghaiDateTimeField(DateTimeLocalField):
    """A datetime-local input read as Shanghai time; blank is left to DataRequired's message."""

    def __init__(self, label=None, validators=None, **kwargs):
        super().__init__(label, validators, format=LOCAL_FORMATS, tz=SHANGHAI, **kwargs)

    def process_formdata(self, valuelist):
        if not valuelist or not "".join(valuelist).strip():
            self.data = None
            return
        try:
            super().process_formdata(valuelist)
        except ValueError as error:
            raise ValueError(_l("Enter a date and time, such as 2026-12-05 09:30.")) from error

    @property
    def utc(self):
        return self.data.astimezone(timezone.utc) if self.data else None


def _when(label, required=True):
    return ShanghaiDateTimeField(label, validators=[DataRequired(_l("Fill in every date and time.")) if required
                                                    else Optional()])


def _number(label, low, high, message, **kwargs):
    return IntegerField(label, validators=[InputRequired(_l("Enter a whole number.")),
                                           NumberRange(min=low, max=high, message=message)], **kwargs)


class EventForm(FlaskForm):
    nonce = HiddenField()  # one-time, for a new event: a repeated submission returns the first draft
    community = SelectField(_l("Community"), coerce=int)
    kind = SelectField(_l("Kind of event"))
    title = StringField(_l("Title"), validators=[
        DataRequired(_l("Give the event a title.")),
        Length(max=TITLE_MAX, message=_l("A title has at most %(max)d characters.")),
    ])
    description = TextAreaField(_l("Description (Markdown)"), validators=[
        Optional(), Length(max=DESCRIPTION_MAX, message=_l("The description can be at most %(max)s characters.")),
    ])
    cover = FileField(_l("Cover photo (optional)"), render_kw={"accept": "image/jpeg,image/png,image/webp"})
    starts_at = _when(_l("Starts"))
    ends_at = _when(_l("Ends"))
    signup_opens_at = _when(_l("Signup opens"))
    # Left empty, these two default to 2 h and 24 h before the start (models/events/form_input.py).
    signup_closes_at = _when(_l("Signup closes"), required=False)
    cancel_deadline = _when(_l("Members may cancel with a refund until"), required=False)
    place = StringField(_l("Place"), validators=[DataRequired(_l("Give the place and its address.")), Length(max=80)])
    address = StringField(_l("Address"), validators=[DataRequired(_l("Give the place and its address.")),
                                                     Length(max=200)])
    map_url = StringField(_l("Map link (Amap or Baidu, optional)"), validators=[Optional(), Length(max=500)])
    capacity = _number(_l("Capacity (people, companions included)"), 1, MAX_CAPACITY,
                       _l("Capacity is between 1 and %(max)s people."))
    companions_allowed = _number(_l("Companions each member may bring"), 0, MAX_COMPANIONS,
                                 _l("Each member may bring 0 to %(max)s companions."), default=0)
    points_price = _number(_l("Price in points (0: free)"), 0, MAX_PRICE,
                           _l("The points price is between 0 and %(max)s."), default=0)
    attendance_points = _number(_l("Points for attending"), 0, MAX_ATTENDANCE_POINTS,
                                _l("The attendance reward is between 0 and %(max)s points."))
    level_priority = BooleanField(_l("Higher levels may sign up earlier (level priority)"), default=True)
    safety_notice = TextAreaField(_l("Safety notice (road trips)"), validators=[Optional(), Length(max=DESCRIPTION_MAX)])
