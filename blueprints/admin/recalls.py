"""Admin pages of vehicle safety recalls (安全召回): the list with how many garage cars each
reaches, and the form to enter or correct one. Declared on the admin blueprint (administrators
only); every change is audited in the model (models/recalls.py `save_recall`)."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import DateField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Optional

from blueprints.admin.routes import bp
from blueprints.web import form_page
from models import db
from models.garage import CarMake, CarSeries
from models.recalls import Recall, RecallInput, matching_count, save_recall


class RecallForm(FlaskForm):
    number = StringField(_l("Recall number (SAMR)"), render_kw={"placeholder": "S2026-0123", "autocomplete": "off"})
    make = SelectField(_l("Make"), validate_choice=False)
    series = SelectField(_l("Series"), validate_choice=False)
    year_from = IntegerField(_l("First model year"), validators=[Optional()])
    year_to = IntegerField(_l("Last model year"), validators=[Optional()])
    vin_from = StringField(_l("First VIN of the range"), render_kw={"maxlength": 24, "spellcheck": "false"})
    vin_to = StringField(_l("Last VIN of the range"), render_kw={"maxlength": 24, "spellcheck": "false"})
    defect = TextAreaField(_l("Defect"), render_kw={"rows": 4})
    remedy = TextAreaField(_l("Remedy"), render_kw={"rows": 3})
    announced_on = DateField(_l("Announced on"), validators=[InputRequired(_l("Enter the date it was announced."))])
    starts_on = DateField(_l("Repairs start on (optional)"), validators=[Optional()])


def _form(recall: Recall | None) -> RecallForm:
    form = RecallForm(obj=recall)
    makes = CarMake.all_ordered()
    form.make.choices = [("", _("Choose…"))] + [(str(m.id), m.display_name) for m in makes]
    by_make: dict[str, list] = {_("All series of the make"): [("", _("All series"))]}
    series = db.session.scalars(select(CarSeries).order_by(CarSeries.position, CarSeries.id))
    names = {m.id: m.display_name for m in makes}
    for s in series:
        by_make.setdefault(names[s.make_id], []).append((str(s.id), s.display_name))
    form.series.choices = by_make
    if recall is not None and not form.is_submitted():
        form.make.data = str(recall.make_id)
        form.series.data = str(recall.series_id or "")
    return form


def _input(form: RecallForm) -> RecallInput:
    def number(value):
        return int(value) if (value or "").isdigit() else None

    return RecallInput(number=form.number.data or "", make_id=number(form.make.data), series_id=number(form.series.data),
                       year_from=form.year_from.data, year_to=form.year_to.data, vin_from=form.vin_from.data or "",
                       vin_to=form.vin_to.data or "", defect=form.defect.data or "", remedy=form.remedy.data or "",
                       announced_on=form.announced_on.data, starts_on=form.starts_on.data)


def _page(form: RecallForm, recall: Recall | None, status: int = 200):
    return render_template("admin/recall_form.html", form=form, recall=recall), status


def _edit(recall: Recall | None):
    form = _form(recall)
    if form.validate_on_submit():
        saved = save_recall(current_user, _input(form), recall=recall)
        db.session.commit()
        flash(_("Recall %(number)s saved: it reaches %(count)s cars in members' garages.", number=saved.number,
                count=matching_count(saved)), "success")
        return redirect(url_for("admin.recalls"))
    return _page(form, recall, 422 if request.method == "POST" else 200)


def _recall_again(refusal, recall_id=None):
    recall = db.get_or_404(Recall, recall_id) if recall_id is not None else None
    return _page(refusal.on(_form(recall), "number"), recall, 422)


@bp.get("/recalls")
def recalls():
    """Safety recalls, newest first, with the garage cars each still reaches."""
    rows = Recall.newest_first()
    return render_template("admin/recalls.html", recalls=rows, counts={r.id: matching_count(r) for r in rows})


@bp.route("/recalls/new", methods=["GET", "POST"])
@form_page(_recall_again)
def recall_create():
    """Enter a recall announced by SAMR."""
    return _edit(None)


@bp.route("/recalls/<int:recall_id>/edit", methods=["GET", "POST"])
@form_page(_recall_again)
def recall_edit(recall_id):
    """Correct a recall (audited with what it was before)."""
    return _edit(db.get_or_404(Recall, recall_id))
