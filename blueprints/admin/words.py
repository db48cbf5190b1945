"""Admin page of the prohibited-words filter (block a text, or send it to moderators).

Declared on the admin blueprint (administrators only); every change is audited in the model."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from blueprints.admin.routes import bp
from blueprints.moderation.forms import WordForm
from blueprints.web import form_page
from models import ProhibitedWord, db
from models.moderation import add_word, delete_word


def _words_page(form: WordForm, status: int = 200):
    rows = db.session.scalars(select(ProhibitedWord).order_by(ProhibitedWord.word)).all()
    return render_template("admin/words.html", form=form, words=rows), status


def _words_again(refusal):
    return _words_page(refusal.on(WordForm(), "word"))


@bp.route("/words", methods=["GET", "POST"])
@form_page(_words_again)
def words():
    """The list, and a form to add a word."""
    form = WordForm()
    if form.validate_on_submit():
        row = add_word(form.word.data, form.action.data, actor=current_user)
        db.session.commit()
        flash(_("“%(word)s” added.", word=row.word), "success")
        return redirect(url_for("admin.words"))
    return _words_page(form, 422 if request.method == "POST" else 200)


@bp.post("/words/<int:word_id>/delete")
def word_delete(word_id):
    row = db.get_or_404(ProhibitedWord, word_id)
    word = row.word
    delete_word(row, actor=current_user)
    db.session.commit()
    flash(_("“%(word)s” removed.", word=word), "info")
    return redirect(url_for("admin.words"))
