"""The member's vouchers: list, detail with QR, PDF download."""
from __future__ import annotations

import re

from flask import abort, make_response
from flask_login import current_user
from blueprints.me.routes import bp
from blueprints.web import render
from models import Voucher
from models.types import utcnow
from services.qr import qr_svg, validation_url


def _own_voucher_or_404(code: str) -> Voucher:
    voucher = Voucher.owned_by(current_user, code)
    if voucher is None:
        abort(404)
    return voucher


@bp.get("/vouchers")
def vouchers():
    """My vouchers, newest first, with their state and where they were used."""
    return render("me/vouchers.html", vouchers=Voucher.of_member(current_user), now=utcnow())


@bp.get("/vouchers/<code>")
def voucher(code):
    """One voucher to show at the counter: big QR, the code to read out, stores, terms."""
    voucher = _own_voucher_or_404(code)
    state = voucher.effective_state()
    qr = qr_svg(validation_url(voucher), label=voucher.display_code) if state == "issued" else None
    return render("me/voucher.html", voucher=voucher, state=state, qr=qr, stores=voucher.reward.usable_stores())


@bp.get("/vouchers/<code>.pdf")
def voucher_pdf(code):
    """The voucher as an A6 PDF (rendered once, then served from the cache)."""
    from services.pdf import voucher_pdf as render_voucher_pdf  # WeasyPrint loads on the first download only

    voucher = _own_voucher_or_404(code)
    response = make_response(render_voucher_pdf(voucher))
    response.mimetype = "application/pdf"
    name = re.sub(r"[^0-9A-Z-]", "_", voucher.display_code)  # the check symbol may be * ~ $ =
    response.headers["Content-Disposition"] = f'attachment; filename="cheyou-voucher-{name}.pdf"'
    # It carries the member's name and a usable code: no shared cache or service worker keeps it.
    response.headers["Cache-Control"] = "private, no-store"
    return response
