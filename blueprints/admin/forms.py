from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Optional


class GrantForm(FlaskForm):
    login = StringField(_l("Member (e-mail or mobile number)"), validators=[DataRequired(_l("Enter the member's login."))])
    role = SelectField(
        _l("Role"),
        choices=[
            SelectChoice("organizer", _l("Organizer")),
            SelectChoice("moderator", _l("Moderator")),
            SelectChoice("partner", _l("Partner staff")),
            SelectChoice("admin", _l("Administrator")),
        ],
    )
    community = SelectField(_l("Community (organizer, moderator)"), coerce=int, validators=[Optional()])
    partner = StringField(_l("Partner business (partner staff)"), validators=[Optional()])
