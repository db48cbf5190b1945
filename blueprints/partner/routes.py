"""Partner staff portal: look up a voucher (typed or from its QR), mark it used at a store,
today's redemptions, and the monthly settlement statement per store (CSV).

Staff see their own business's vouchers only; another business's voucher is "not found",
so a code typed at the wrong shop reveals nothing. Administrators see every business.
"""
from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta

from flask import Blueprint, Response, abort, redirect, request, url_for
from flask_babel import format_datetime
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import select
from wtforms import SelectChoice

from blueprints.access import role_required
from blueprints.partner.forms import LookupForm, UseForm
from blueprints.web import domain_message, form_page, render
from models import Partner, Store, db
from models.partners import redemptions
from models.loyalty import Voucher, normalise_code, refusal, use_voucher
from models.types import shanghai_day, shanghai_midnight

bp = Blueprint("partner", __name__)

STATEMENT_MONTHS = 6
MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


# -- whose business ----------------------------------------------------------------------------

def _partner_ids() -> list[int] | None:
    """The partners the current account works for; None means all of them (an administrator)."""
    return None if current_user.is_admin else current_user.partner_ids()


def _partners() -> list[Partner]:
    query = select(Partner).order_by(Partner.name)
    ids = _partner_ids()
    if ids is not None:
        query = query.where(Partner.id.in_(ids))
    return list(db.session.scalars(query))


def _voucher_or_404(code: str) -> Voucher:
    """The voucher with CODE if it belongs to one of the viewer's businesses; otherwise a plain 404."""
    voucher = Voucher.by_code(code)
    if voucher is None or not current_user.has_role("partner", partner=voucher.partner_id):
        abort(404)
    return voucher


# -- months ------------------------------------------------------------------------------------

def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(first: date) -> date:
    return (first + timedelta(days=32)).replace(day=1)


def _recent_months(count: int = STATEMENT_MONTHS) -> list[date]:
    """The first days of this Shanghai month and the COUNT - 1 before it, newest first."""
    months = [_month_start(shanghai_day())]
    while len(months) < count:
        months.append(_month_start(months[-1] - timedelta(days=1)))
    return months


def _parse_month(text: str) -> date | None:
    match = MONTH_RE.match(text or "")
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 2000:
        return None
    return date(int(match.group(1)), int(match.group(2)), 1)


def _statement_months(partners: list[Partner]) -> list[dict]:
    """Recent months with how many vouchers each partner settled, for the download links."""
    months = _recent_months()
    start, end = shanghai_midnight(months[-1]), shanghai_midnight(_next_month(months[0]))
    used = redemptions([p.id for p in partners], start, end)
    counts: dict[tuple[int, date], int] = {}
    for voucher in used:
        key = (voucher.used_store.partner_id, _month_start(shanghai_day(voucher.used_at)))
        counts[key] = counts.get(key, 0) + 1
    return [{"month": m, "counts": {p.id: counts.get((p.id, m), 0) for p in partners}} for m in months]


# -- pages -------------------------------------------------------------------------------------

def _index(form: LookupForm, status: int = 200, error: str | None = None, focus: bool = False):
    partners = _partners()
    today = shanghai_day()
    start, end = shanghai_midnight(today), shanghai_midnight(today + timedelta(days=1))
    today_used = redemptions([p.id for p in partners], start, end)
    today_used.sort(key=lambda v: (v.used_at, v.id), reverse=True)
    return render("partner/index.html", status=status, partners=partners, form=form, error=error,
                  today=today, today_used=today_used, months=_statement_months(partners), focus=focus or status != 200)


@bp.get("")
@role_required("partner")
def index():
    """The staff member's businesses and stores, the code box, today's redemptions, statements.
    ?again=1 (the "next voucher" button after a validation): the code box has the focus."""
    return _index(LookupForm(formdata=None), focus=request.args.get("again") == "1")


@bp.get("/lookup")
@role_required("partner")
def lookup():
    """A typed code: to the voucher's page, or back to the code box saying what is wrong."""
    if "code" not in request.args:
        return redirect(url_for("partner.index"))
    form = LookupForm(request.args)
    if not form.validate():
        return _index(form, status=422)
    voucher = Voucher.by_code(form.code.code)
    if voucher is None or not current_user.has_role("partner", partner=voucher.partner_id):
        return _index(form, status=422, error=_("No voucher of your business has this code."))
    return redirect(url_for("partner.voucher", code=voucher.code))


# The store a counter's phone validates at, remembered on that device per partner business (a
# shared counter phone moves between staff; one staff member may work at several stores).
STORE_COOKIE = "cy_store_{partner_id}"
STORE_COOKIE_AGE = 400 * 24 * 3600  # the longest browsers keep a cookie


def _device_store(partner_id: int) -> int | None:
    value = request.cookies.get(STORE_COOKIE.format(partner_id=partner_id), "")
    return int(value) if value.isdigit() else None


def _use_form(voucher: Voucher, formdata=None) -> UseForm:
    """The store select: the partner's stores that accept the reward. One store is preselected;
    with several, the store this device last validated at, else the one this staff member last
    validated at, else they must choose (and can always change it)."""
    stores = [s for s in voucher.reward.usable_stores() if s.partner_id == voucher.partner_id]
    form = UseForm(formdata=formdata)
    form.store.choices = [SelectChoice(s.id, f"{s.name} · {s.city}" if s.city else s.name) for s in stores]
    if len(stores) > 1:
        form.store.choices.insert(0, SelectChoice(0, _("Choose the store")))
    if form.store.data is None:
        if len(stores) == 1:
            form.store.data = stores[0].id
        elif stores:
            ids = {s.id for s in stores}
            device = _device_store(voucher.partner_id)
            if device in ids:
                form.store.data = device
                return form
            last = db.session.scalar(select(Voucher.used_store_id).where(Voucher.used_by_id == current_user.id)
                                     .order_by(Voucher.used_at.desc()).limit(1))
            form.store.data = last if last in ids else 0
    return form


def _voucher_page(voucher: Voucher, form: UseForm | None = None, status: int = 200, error: str | None = None,
                  confirmation: str | None = None):
    state = voucher.effective_state()
    if form is None and state == "issued":
        form = _use_form(voucher)
    reason = None
    if state != "issued" and not confirmation:
        reason, error = domain_message(refusal(voucher)), None  # the refusal says it all (when, where)
    return render("partner/voucher.html", "partner/_voucher_status.html", status=status, voucher=voucher,
                  state=state, form=form, error=error, reason=reason, confirmation=confirmation)


# `path`: the check symbol may be one of * ~ $ = U, and a typed URL may carry dashes.
@bp.get("/v/<path:code>")
@role_required("partner")
def voucher(code):
    """What the QR opens: the voucher, whether it can be used, and the button to use it."""
    voucher = _voucher_or_404(code)
    if code != voucher.code:
        return redirect(url_for("partner.voucher", code=voucher.code))
    return _voucher_page(voucher)


@role_required("partner")
def _use_again(refused, code):
    """The voucher's status again, the store chosen kept: the notice on the form when the page
    expired, else why the voucher cannot be used (as it is now, e.g. just used at the next till)."""
    voucher = _voucher_or_404(normalise_code(code) or "")
    form = _use_form(voucher, formdata=request.form or None)
    if refused.expired:
        return _voucher_page(voucher, form=refused.on(form))
    return _voucher_page(voucher, form=form, error=refused.message)


@bp.post("/v/<path:code>/use")
@form_page(_use_again)
@role_required("partner")
def use(code):
    """Mark the voucher used at the chosen store: once, however many taps or devices race."""
    voucher = _voucher_or_404(normalise_code(code) or "")
    form = _use_form(voucher, formdata=request.form or None)
    if not form.validate_on_submit():
        return _voucher_page(voucher, form=form, status=422)
    voucher = use_voucher(voucher.code, db.session.get(Store, form.store.data), current_user)
    db.session.commit()
    confirmation = _("Validated at %(store)s, %(time)s.", store=voucher.used_store.name,
                     time=format_datetime(voucher.used_at, "yyyy-MM-dd HH:mm"))
    response = _voucher_page(voucher, confirmation=confirmation)
    response.set_cookie(STORE_COOKIE.format(partner_id=voucher.partner_id), str(voucher.used_store_id),
                        max_age=STORE_COOKIE_AGE, httponly=True, samesite="Lax", secure=request.is_secure)
    return response


# -- the monthly statement ---------------------------------------------------------------------

def _cell(value) -> str:
    """Text a spreadsheet will not run as a formula."""
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _statement_csv(partner: Partner, month: date) -> str:
    used = redemptions([partner.id], shanghai_midnight(month), shanghai_midnight(_next_month(month)))
    out = io.StringIO()
    out.write("\ufeff")  # Excel opens UTF-8 Chinese text correctly only with the BOM
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([_("Store"), _("Used at (Beijing time)"), _("Voucher code"), _("Reward"), _("Points")])
    by_store: dict[int, list[Voucher]] = {}
    for voucher in used:
        by_store.setdefault(voucher.used_store_id, []).append(voucher)
    for vouchers in by_store.values():
        store = vouchers[0].used_store
        for v in vouchers:
            writer.writerow([_cell(store.name), format_datetime(v.used_at, "yyyy-MM-dd HH:mm"), v.display_code,
                             _cell(v.reward.title), v.points_paid])
        subtotal = ngettext("Subtotal: %(num)s voucher", "Subtotal: %(num)s vouchers", len(vouchers))
        writer.writerow([_cell(store.name), subtotal, "", "", sum(v.points_paid for v in vouchers)])
    total = ngettext("Total: %(num)s voucher", "Total: %(num)s vouchers", len(used))
    writer.writerow([_cell(partner.name), total, "", "", sum(v.points_paid for v in used)])
    return out.getvalue()


@bp.get("/statement")
@role_required("partner")
def statement():
    """?month=YYYY-MM: the month's redemptions per store as CSV; without a month, the list of months."""
    partners = _partners()
    month_text = request.args.get("month")
    if month_text is None:
        return render("partner/statements.html", partners=partners, months=_statement_months(partners))
    month = _parse_month(month_text)
    partner_id = request.args.get("partner", type=int)
    if partner_id is None and len(partners) == 1:
        partner_id = partners[0].id
    partner = next((p for p in partners if p.id == partner_id), None)
    if month is None or partner is None:
        error = _("Choose a month (YYYY-MM) and one of your businesses.")
        return render("partner/statements.html", status=400, partners=partners, months=_statement_months(partners),
                      error=error)
    filename = f"cheyou-statement-{partner.id}-{month:%Y-%m}.csv"
    return Response(_statement_csv(partner, month), mimetype="text/csv",
                    headers={"Content-Disposition": f"attachment; filename={filename}",
                             "Cache-Control": "private, no-store"})
