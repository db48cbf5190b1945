"""Admin page of the prohibited-words filter (block a text, or send it to moderators).

Declared on the admin blueprint (administrators only); every change is audited in the model."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from app import csrf
from blueprints.admin.routes import bp
from blueprints.moderation.forms import WordForm
from blueprints.web import domain_message
from models import DomainError, ProhibitedWord, db
from models.moderation import add_word, delete_word


@bp.route("/words", methods=["GET", "POST"])
@csrf.exempt  # FlaskForm checks the token and keeps what was typed
def words():
    """The list, and a form to add a word."""
    form = WordForm()
    if form.validate_on_submit():
        try:
            row = add_word(form.word.data, form.action.data, actor=current_user)
        except DomainError as error:
            db.session.rollback()
            form.word.errors.append(domain_message(error))
        else:
            db.session.commit()
            flash(_("“%(word)s” added.", word=row.word), "success")
            return redirect(url_for("admin.words"))
    rows = db.session.scalars(select(ProhibitedWord).order_by(ProhibitedWord.word)).all()
    return render_template("admin/words.html", form=form, words=rows), 422 if request.method == "POST" else 200


@bp.post("/words/<int:word_id>/delete")
def word_delete(word_id):
    row = db.get_or_404(ProhibitedWord, word_id)
    word = row.word
    delete_word(row, actor=current_user)
    db.session.commit()
    flash(_("“%(word)s” removed.", word=word), "info")
    return redirect(url_for("admin.words"))
