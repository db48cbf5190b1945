"""The member's garage (我的车库): cars with their open safety recalls, and community suggestions.

Make and series come from the dictionary through a type-ahead: the search box asks the form's
own URL with `?q=` (htmx swaps the list of matches in; without htmx the same URL is the whole
form with the matches, and the form's Search button does the same by POST). Another member's
car is a 404, on every route, as if it did not exist."""
from __future__ import annotations

import re

from flask import abort, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, IntegerField, SelectField, StringField
from wtforms.validators import Optional

from blueprints.access import wants_fragment
from blueprints.me.routes import bp
from blueprints.web import domain_errors, form_page, render
from models import db
from models.garage import (ENERGY_TYPES, Car, CarInput, CarSeries, cars_of, delete_car, model_years, save_car,
                           search_series, suggested_communities)
from models.nonces import NONCE_RE, AlreadySubmitted, new_nonce
from models.recalls import mark_done, open_recalls, recall_on_car


class WholeNumberField(IntegerField):
    """A whole number typed on a phone: spaces and thousands separators are fine, blank is None."""

    def process_formdata(self, valuelist):
        text = re.sub(r"[\s,，]", "", valuelist[0] if valuelist else "")
        if not text:
            self.data = None
            return
        if not text.isdigit():
            self.data = None
            raise ValueError(_l("Enter a whole number of kilometres, such as 86000."))
        self.data = int(text)


class CarForm(FlaskForm):
    q = StringField(_l("Make or series"), render_kw={"placeholder": _l("Type 比亚迪, BYD, 朗逸…"),
                                                      "autocomplete": "off", "enterkeyhint": "search"})
    pick = StringField()  # the radio buttons of the matches (a series id) or "other"
    other_make = StringField(_l("Make"), render_kw={"maxlength": 40})
    other_series = StringField(_l("Series"), render_kw={"maxlength": 40})
    energy = SelectField(_l("Energy type"), validate_choice=False)
    model_year = SelectField(_l("Model year"), validate_choice=False)
    mileage_km = WholeNumberField(_l("Mileage (km, optional)"), validators=[Optional()])
    vin = StringField(_l("VIN (optional)"), render_kw={"maxlength": 24, "autocapitalize": "characters",
                                                       "spellcheck": "false", "autocomplete": "off"})
    plate = StringField(_l("Licence plate (optional)"), render_kw={"maxlength": 12, "autocapitalize": "characters",
                                                                  "placeholder": "粤B12345"})
    nonce = HiddenField()  # one-time, for a new car: a repeated submission adds it once


def _own_car_or_404(car_id: int) -> Car:
    car = Car.owned_by(current_user, car_id)
    if car is None:
        abort(404)
    return car


def _form(car: Car | None) -> CarForm:
    form = CarForm(obj=car)
    form.energy.choices = [("", _("Choose…"))] + [(code, _(label)) for code, label in ENERGY_TYPES.items()]
    form.model_year.choices = [("", _("Choose…"))] + [(str(y), str(y)) for y in model_years()]
    if not form.is_submitted():
        form.q.data = request.args.get("q", "")[:40]  # the type-ahead asks by GET
        if car is None:
            form.nonce.data = new_nonce()
        else:
            form.pick.data = str(car.series_id) if car.series_id else "other"
            form.other_make.data = "" if car.series_id else car.make_name
            form.model_year.data = str(car.model_year)
    return form


def _matches(form: CarForm) -> list[CarSeries]:
    """The type-ahead's list: the matches of what was typed, with the picked series kept on top."""
    found = search_series(form.q.data or "")
    if (form.pick.data or "").isdigit() and all(str(s.id) != form.pick.data for s in found):
        picked = db.session.get(CarSeries, int(form.pick.data))
        if picked is not None:
            found.insert(0, picked)
    return found


def _page(form: CarForm, car: Car | None, status: int = 200):
    return render("me/garage_form.html", "me/_garage_form.html", status, form=form, car=car, results=_matches(form),
                  energy_types=ENERGY_TYPES)


def _input(form: CarForm) -> CarInput:
    pick = form.pick.data or ""
    year = form.model_year.data or ""
    return CarInput(series_id=int(pick) if pick.isdigit() else None, other=pick == "other",
                    other_make=form.other_make.data or "", other_series=form.other_series.data or "",
                    energy=form.energy.data or "", model_year=int(year) if year.isdigit() else None,
                    mileage_km=form.mileage_km.data, vin=form.vin.data or "", plate=form.plate.data or "")


def _edit(car: Car | None):
    """One form for a new car and an existing one; `?q=` (or the Search button) lists matches."""
    form = _form(car)
    if request.method == "GET":
        if "q" in request.args and wants_fragment():  # the type-ahead, as the member types
            return render("me/garage_form.html", "me/_garage_series_results.html", results=_matches(form),
                          form=form, energy_types=ENERGY_TYPES)
        return _page(form, car)
    if request.form.get("action") == "search" or not form.validate():
        return _page(form, car, 200 if request.form.get("action") == "search" else 422)
    try:
        saved, warning = save_car(current_user, _input(form), car=car,
                                  nonce=None if car else form.nonce.data or "")
        db.session.commit()
    except AlreadySubmitted:
        db.session.rollback()  # a double tap: the first submission added the car
        return redirect(url_for("me.garage"))
    if warning:
        flash(_(warning), "warning")
    flash(_("%(car)s saved.", car=saved.title) if car else _("%(car)s added to your garage.", car=saved.title),
          "success")
    return redirect(url_for("me.garage"))


def _form_again(refused, car_id=None):
    """The form again from what was sent, with the reason; a fresh nonce if the page's was stale."""
    car = _own_car_or_404(car_id) if car_id is not None else None
    form = refused.on(_form(car), "pick")
    if car is None and not NONCE_RE.match(form.nonce.data or ""):
        form.nonce.data = new_nonce()
    return _page(form, car, 422)


@bp.get("/garage")
def garage():
    """My cars, the safety recalls open on each, and communities they suggest."""
    cars = cars_of(current_user)
    return render("me/garage.html", cars=cars, recalls=open_recalls(cars),
                  suggestions=suggested_communities(current_user, cars))


@bp.route("/garage/new", methods=["GET", "POST"])
@form_page(_form_again)
def garage_new():
    """Add a car."""
    return _edit(None)


@bp.route("/garage/<int:car_id>/edit", methods=["GET", "POST"])
@form_page(_form_again)
def garage_edit(car_id):
    """Edit one of my cars (another member's: 404)."""
    return _edit(_own_car_or_404(car_id))


def _garage_again(refused, **_args):
    flash(refused.message, "error")
    return redirect(url_for("me.garage"))


@bp.post("/garage/<int:car_id>/delete")
@domain_errors(_garage_again)
def garage_delete(car_id):
    """Remove one of my cars (and the recall marks on it)."""
    car = _own_car_or_404(car_id)
    title = car.title
    delete_car(car)
    db.session.commit()
    flash(_("%(car)s removed from your garage.", car=title), "info")
    return redirect(url_for("me.garage"))


@bp.post("/garage/<int:car_id>/recalls/<int:recall_id>/done")
@domain_errors(_garage_again)
def recall_done(car_id, recall_id):
    """I had this recall repaired on this car: stop showing it."""
    car = _own_car_or_404(car_id)
    recall = recall_on_car(car, recall_id)
    if recall is None:
        abort(404)
    mark_done(car, recall)
    db.session.commit()
    flash(_("Recall %(number)s marked as done on %(car)s.", number=recall.number, car=car.title), "success")
    return redirect(url_for("me.garage"))
