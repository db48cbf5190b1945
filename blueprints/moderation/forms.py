from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length


class WordForm(FlaskForm):
    word = StringField(_l("Word"), validators=[DataRequired(_l("Enter a word.")), Length(max=60)])
    action = SelectField(
        _l("When a text contains it"),
        choices=[SelectChoice("block", _l("Refuse the text")), SelectChoice("review", _l("Send it to moderators"))],
    )
