"""Partner portal forms. Messages are English msgids, shown in the reader's language."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import DataRequired, ValidationError

from models.loyalty import normalise_code


def voucher_code(form, field):
    """Any case, spaces or dashes; the check character catches a typo."""
    field.code = normalise_code(field.data or "")
    if field.code is None:
        raise ValidationError(_l("This code is not valid. Check it for a typo."))


class LookupForm(FlaskForm):
    """Type a voucher's code (a GET form: it changes nothing, so it carries no CSRF token)."""

    class Meta:
        csrf = False

    code = StringField(_l("Voucher code"), validators=[DataRequired(_l("Type the code printed under the QR.")),
                                                        voucher_code])


class UseForm(FlaskForm):
    """Mark a voucher used at one of the partner's stores that accept it."""

    store = SelectField(_l("Store"), coerce=int, validate_choice=True)

    def validate_store(self, field):
        if not field.data:
            raise ValidationError(_l("Choose the store where the member is."))
