"""Admin forms of the loyalty programme. Messages are English msgids, shown in the reader's language."""
from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (BooleanField, HiddenField, IntegerField, SelectChoice, SelectField, SelectMultipleField,
                     StringField, TextAreaField)
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional, ValidationError

from models.loyalty import MAX_ADJUSTMENT

KIND_LABELS = {
    "wash": _l("Car wash"),
    "maintenance": _l("Maintenance"),
    "inspection": _l("Inspection"),
    "modding": _l("Modding discount"),
}


def kind_choices() -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in KIND_LABELS.items()]


class PartnerForm(FlaskForm):
    name = StringField(_l("Business name"), validators=[DataRequired(_l("Give the business a name.")),
                                                        Length(max=80, message=_l("At most %(max)d characters."))])
    kind = SelectField(_l("Kind of business"), choices=kind_choices())


class StoreForm(FlaskForm):
    name = StringField(_l("Store name"), validators=[DataRequired(_l("Give the store a name.")),
                                                     Length(max=80, message=_l("At most %(max)d characters."))])
    city = StringField(_l("City"), validators=[Optional(), Length(max=40, message=_l("At most %(max)d characters."))])
    address = StringField(_l("Address"),
                          validators=[Optional(), Length(max=200, message=_l("At most %(max)d characters."))])


class StaffForm(FlaskForm):
    login = StringField(_l("Staff member's login (e-mail or mobile number)"),
                        validators=[DataRequired(_l("Enter the member's login."))])


class RewardForm(FlaskForm):
    partner = SelectField(_l("Partner"), coerce=int)
    kind = SelectField(_l("Kind"), choices=kind_choices())
    title = StringField(_l("Title (Chinese)"), validators=[DataRequired(_l("Give the reward a title.")),
                                                           Length(max=80, message=_l("At most %(max)d characters."))])
    title_en = StringField(_l("Title (English, optional)"),
                           validators=[Optional(), Length(max=120, message=_l("At most %(max)d characters."))])
    description = TextAreaField(_l("Description"),
                                validators=[Optional(), Length(max=1000, message=_l("At most %(max)d characters."))])
    terms = TextAreaField(_l("Terms"),
                          validators=[Optional(), Length(max=1000, message=_l("At most %(max)d characters."))])
    points_price = IntegerField(_l("Price in points"), validators=[
        InputRequired(_l("Enter a whole number.")),
        NumberRange(min=1, max=1_000_000, message=_l("The price is between %(min)s and %(max)s points.")),
    ])
    stock = IntegerField(_l("Stock (units left)"), validators=[
        InputRequired(_l("Enter a whole number.")),
        NumberRange(min=0, max=1_000_000, message=_l("Stock is between %(min)s and %(max)s units.")),
    ])
    per_member_limit = IntegerField(_l("Limit per member (over the reward's life)"), default=1, validators=[
        InputRequired(_l("Enter a whole number.")),
        NumberRange(min=1, max=1000, message=_l("A limit is between %(min)s and %(max)s.")),
    ])
    monthly_limit = IntegerField(_l("Limit per member per month (optional)"), validators=[
        Optional(), NumberRange(min=1, max=1000, message=_l("A limit is between %(min)s and %(max)s.")),
    ])
    min_level = SelectField(_l("Minimum level"), coerce=int, default=1,
                            choices=[SelectChoice(n, f"Lv.{n}") for n in range(1, 6)])
    validity_days = IntegerField(_l("Valid for (days after redeeming)"), default=30, validators=[
        InputRequired(_l("Enter a whole number.")),
        NumberRange(min=1, max=3650, message=_l("Between %(min)s and %(max)s days.")),
    ])
    community = SelectField(_l("Community (optional)"), coerce=int, default=0)
    stores = SelectMultipleField(_l("Stores where it can be used (none ticked: all the partner's stores)"), coerce=int,
                                 validate_choice=False)
    active = BooleanField(_l("Shown in the catalogue"), default=True)
    # Re-encoded like a story photo (services/images.py): resized, EXIF (GPS) stripped.
    picture = FileField(_l("Picture (optional)"), render_kw={"accept": "image/jpeg,image/png,image/webp"})
    remove_picture = BooleanField(_l("Remove the picture"))
    # The stock the admin saw: the edit moves the stock by the difference, so redemptions
    # made meanwhile are not overwritten.
    stock_seen = HiddenField()

    def validate_stores(self, field):
        """Only stores of the chosen partner."""
        allowed = getattr(self, "partner_stores", {}).get(self.partner.data, set())
        if any(store_id not in allowed for store_id in field.data or []):
            raise ValidationError(_l("Choose only stores of the selected partner."))


class FindMemberForm(FlaskForm):
    """Look a member up (a GET form)."""

    class Meta:
        csrf = False

    login = StringField(_l("Member (e-mail or mobile number)"),
                        validators=[DataRequired(_l("Enter the member's login."))])


class AdjustForm(FlaskForm):
    member = HiddenField()
    nonce = HiddenField()
    points = IntegerField(_l("Points (+ to add, − to take away)"), validators=[
        InputRequired(_l("Enter a whole number of points, e.g. 50 or -50.")),
        NumberRange(min=-MAX_ADJUSTMENT, max=MAX_ADJUSTMENT,
                    message=_l("An adjustment is between 1 and %(max)s points, up or down.")),
    ])
    reason = StringField(_l("Reason (the member sees it)"), validators=[
        DataRequired(_l("Give a reason for the adjustment.")),
        Length(max=200, message=_l("At most %(max)d characters.")),
    ])

    def validate_points(self, field):
        if field.data == 0:
            raise ValidationError(_l("An adjustment is between 1 and %(max)s points, up or down.", max=MAX_ADJUSTMENT))


class VoidForm(FlaskForm):
    reason = StringField(_l("Reason"), validators=[DataRequired(_l("Give a reason for cancelling.")),
                                                   Length(max=200, message=_l("At most %(max)d characters."))])
    q = HiddenField()
