from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (HiddenField, MultipleFileField, SelectField, SelectMultipleField, StringField, TextAreaField,
                     widgets)
from wtforms.validators import DataRequired, Length

from models.stories import BODY_MAX, TITLE_MAX


class CheckboxesField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


class StoryForm(FlaskForm):
    community = SelectField(_l("Community"), coerce=int)
    title = StringField(_l("Title"), validators=[DataRequired(_l("Give your story a title.")),
                                                 Length(max=TITLE_MAX, message=_l("A title has at most %(max)d characters."))])
    body = TextAreaField(_l("Your story"), validators=[
        DataRequired(_l("Write your story.")),
        Length(max=BODY_MAX, message=_l("A story has at most %(max)d characters.")),
    ])
    tags = CheckboxesField(_l("Tags"), coerce=str)
    photos = MultipleFileField(_l("Photos (up to 9; JPEG, PNG or WebP, 10 MB each)"),
                               render_kw={"accept": "image/jpeg,image/png,image/webp"})
    remove_photos = SelectMultipleField(_l("Remove photos"), coerce=int)
    nonce = HiddenField()  # one-time, for a new story: a repeated submission returns the first story
