"""Admin pages of the loyalty programme: partners and stores, rewards, points adjustments, vouchers.

Declared on the admin blueprint, so they live under /admin and its before_request lets
administrators only. Every change goes through `audit` (in the model functions it calls).
"""
from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from wtforms import SelectChoice

from blueprints.admin.loyalty_forms import (KIND_LABELS, AdjustForm, FindMemberForm, PartnerForm, RewardForm,
                                            StaffForm, StoreForm, VoidForm)
from blueprints.admin.routes import bp
from blueprints.transactions import begin_write, reads_first
from blueprints.web import domain_message, form_page
from models import Community, DomainError, Partner, Reward, Store, User, db, notify
from models.accounts import RoleGrant, grant_role
from models.partners import save_partner, save_store
from models.nonces import NONCE_RE, new_nonce
from models.loyalty import (
    RewardInput, RewardRefused, Voucher, adjust, balance_of, history, normalise_code, save_reward, void_voucher
)
from services.images import MAX_BYTES, delete_photo, process_upload, store_photo
from services.storage import get_storage


def _status() -> int:
    """A form view re-rendered after a POST is showing errors."""
    return 422 if request.method == "POST" else 200


# -- partners, stores, staff -------------------------------------------------------------------

def _partners_again(refusal):
    return _partners_page(refusal.on(PartnerForm(), "name"))


@bp.route("/partners", methods=["GET", "POST"])
@form_page(_partners_again)
def partners():
    """Every partner business, and a form to add one."""
    form = PartnerForm()
    if form.validate_on_submit():
        partner = save_partner(None, form.name.data, form.kind.data, actor=current_user)
        db.session.commit()
        flash(_("Partner %(name)s added. Now add its stores and staff.", name=partner.name), "success")
        return redirect(url_for("admin.partner", partner_id=partner.id))
    return _partners_page(form, _status())


def _partners_page(form: PartnerForm, status: int = 200):
    rows = db.session.scalars(select(Partner).options(selectinload(Partner.stores)).order_by(Partner.name)).all()
    staff = dict(db.session.execute(
        select(RoleGrant.partner_id, func.count()).where(RoleGrant.role == "partner").group_by(RoleGrant.partner_id)
    ).all())
    rewards = dict(db.session.execute(select(Reward.partner_id, func.count()).group_by(Reward.partner_id)).all())
    return render_template("admin/partners.html", form=form, partners=rows, staff=staff, rewards=rewards,
                           kinds=KIND_LABELS), status


def _partner_page(partner: Partner, partner_form=None, store_form=None, staff_form=None, status: int = 200):
    staff = db.session.scalars(
        select(RoleGrant).join(User, User.id == RoleGrant.user_id)
        .where(RoleGrant.role == "partner", RoleGrant.partner_id == partner.id).order_by(User.nickname)
    ).all()
    rewards = db.session.scalars(select(Reward).where(Reward.partner_id == partner.id).order_by(Reward.id)).all()
    return render_template(
        "admin/partner.html", partner=partner, staff=staff, rewards=rewards, kinds=KIND_LABELS,
        partner_form=partner_form or PartnerForm(formdata=None, obj=partner, prefix="partner"),
        store_form=store_form or StoreForm(formdata=None, prefix="store"),
        staff_form=staff_form or StaffForm(formdata=None, prefix="staff"),
    ), status


def _partner_again(refusal, partner_id):
    partner = db.get_or_404(Partner, partner_id)
    return _partner_page(partner, partner_form=refusal.on(PartnerForm(prefix="partner", obj=partner), "name"))


@bp.route("/partners/<int:partner_id>", methods=["GET", "POST"])
@form_page(_partner_again)
def partner(partner_id):
    """A partner: its name and kind (editable), stores, staff and rewards."""
    partner = db.get_or_404(Partner, partner_id)
    form = PartnerForm(prefix="partner", obj=partner)
    if form.validate_on_submit():
        save_partner(partner, form.name.data, form.kind.data, actor=current_user)
        db.session.commit()
        flash(_("Partner %(name)s saved.", name=partner.name), "success")
        return redirect(url_for("admin.partner", partner_id=partner.id))
    return _partner_page(partner, partner_form=form, status=_status())


def _store_create_again(refusal, partner_id):
    return _partner_page(db.get_or_404(Partner, partner_id), store_form=refusal.on(StoreForm(prefix="store"), "name"))


@bp.post("/partners/<int:partner_id>/stores")
@form_page(_store_create_again)
def store_create(partner_id):
    """Add a store to the partner."""
    partner = db.get_or_404(Partner, partner_id)
    form = StoreForm(prefix="store")
    if form.validate_on_submit():
        store = save_store(partner, None, form.name.data, form.city.data, form.address.data, actor=current_user)
        db.session.commit()
        flash(_("Store %(name)s added.", name=store.name), "success")
        return redirect(url_for("admin.partner", partner_id=partner.id))
    return _partner_page(partner, store_form=form, status=422)


def _store_edit_again(refusal, store_id):
    store = db.get_or_404(Store, store_id)
    return render_template("admin/partner_store.html", store=store, form=refusal.on(StoreForm(obj=store), "name"))


@bp.route("/stores/<int:store_id>/edit", methods=["GET", "POST"])
@form_page(_store_edit_again)
def store_edit(store_id):
    """Rename a store or correct its city and address."""
    store = db.get_or_404(Store, store_id)
    form = StoreForm(obj=store)
    if form.validate_on_submit():
        save_store(store.partner, store, form.name.data, form.city.data, form.address.data, actor=current_user)
        db.session.commit()
        flash(_("Store %(name)s saved.", name=store.name), "success")
        return redirect(url_for("admin.partner", partner_id=store.partner_id))
    return render_template("admin/partner_store.html", store=store, form=form), _status()


def _staff_grant_again(refusal, partner_id):
    return _partner_page(db.get_or_404(Partner, partner_id), staff_form=refusal.on(StaffForm(prefix="staff"), "login"))


@bp.post("/partners/<int:partner_id>/staff")
@form_page(_staff_grant_again)
def staff_grant(partner_id):
    """Make a member staff of the partner (they can then validate its vouchers)."""
    partner = db.get_or_404(Partner, partner_id)
    form = StaffForm(prefix="staff")
    if form.validate_on_submit():
        user = User.find_by_login(form.login.data)
        if user is None:
            form.login.errors.append(_("No member with this login."))
        else:
            grant_role(user, "partner", partner=partner, by=current_user)
            db.session.commit()
            flash(_("%(name)s is now staff of %(partner)s.", name=user.nickname, partner=partner.name), "success")
            return redirect(url_for("admin.partner", partner_id=partner.id))
    return _partner_page(partner, staff_form=form, status=422)


# -- rewards -----------------------------------------------------------------------------------

@bp.get("/rewards")
def rewards():
    """The catalogue as administrators see it: stock, price, vouchers issued, active or not."""
    rows = db.session.scalars(select(Reward).order_by(Reward.active.desc(), Reward.partner_id, Reward.id)).all()
    issued = dict(db.session.execute(
        select(Voucher.reward_id, func.count()).where(Voucher.state != "void").group_by(Voucher.reward_id)
    ).all())
    return render_template("admin/rewards.html", rewards=rows, issued=issued, kinds=KIND_LABELS)


def _reward_form(reward: Reward | None) -> tuple[RewardForm, list[Partner]]:
    partners = db.session.scalars(select(Partner).options(selectinload(Partner.stores)).order_by(Partner.name)).all()
    form = RewardForm(obj=reward)
    form.partner.choices = [SelectChoice(p.id, p.name) for p in partners]
    form.community.choices = [SelectChoice(0, _("All communities"))] + [
        SelectChoice(c.id, c.display_name) for c in Community.all_ordered()
    ]
    form.partner_stores = {p.id: {s.id for s in p.stores} for p in partners}
    if not form.is_submitted():
        if reward is not None:
            form.partner.data = reward.partner_id
            form.community.data = reward.community_id or 0
            form.stores.data = [s.id for s in reward.stores]
            form.stock_seen.data = str(reward.stock)
        else:
            form.partner.data = request.args.get("partner", type=int)
            form.stores.data = []
    return form, partners


def _save_reward(form: RewardForm, reward: Reward | None, picture: tuple[str, str] | None = None) -> Reward | None:
    """Save from a valid form (models.loyalty.save_reward); None, with the reason on the field
    it concerns, when refused. PICTURE: the keys of a newly stored picture."""
    seen = form.stock_seen.data or ""
    data = RewardInput(
        partner=db.session.get(Partner, form.partner.data), kind=form.kind.data, title=form.title.data,
        title_en=form.title_en.data or "", description=form.description.data or "", terms=form.terms.data or "",
        points_price=form.points_price.data, stock=form.stock.data, stock_seen=int(seen) if seen.isdigit() else None,
        per_member_limit=form.per_member_limit.data, monthly_limit=form.monthly_limit.data or None,
        min_level=form.min_level.data, validity_days=form.validity_days.data,
        community_id=form.community.data or None, active=bool(form.active.data),
        store_ids=frozenset(form.stores.data or ()), picture=picture, remove_picture=bool(form.remove_picture.data),
    )
    try:
        return save_reward(reward, data, current_user)
    except RewardRefused as refused:
        db.session.rollback()
        getattr(form, refused.field).errors.append(domain_message(refused))
        if refused.field == "stock":
            form.stock_seen.data = str(refused.params["stock"])  # the admin now sees the stock as it is
        return None


def _save_with_picture(form: RewardForm, reward: Reward | None) -> Reward | None:
    """Resize the uploaded picture before the write lock, then save and commit; a refused save
    leaves no file behind, and a replaced or removed picture's files go after the commit."""
    storage = get_storage(current_app)
    old = (reward.picture_key, reward.picture_thumb_key) if reward is not None else (None, None)
    picture = None
    upload = form.picture.data
    if upload is not None and getattr(upload, "filename", None):
        try:
            picture = store_photo(process_upload(upload.read(MAX_BYTES + 1)), storage, "rewards")
        except DomainError as error:
            form.picture.errors.append(domain_message(error))
            return None
    begin_write()  # the picture is processed: now take the write lock
    try:
        saved = _save_reward(form, reward, picture)
        if saved is not None:
            db.session.commit()
    except BaseException:
        delete_photo(storage, *(picture or ()))
        raise
    if saved is None:
        delete_photo(storage, *(picture or ()))
    elif (saved.picture_key, saved.picture_thumb_key) != old:
        delete_photo(storage, *old)
    return saved


def _reward_view(reward: Reward | None):
    form, partners = _reward_form(reward)
    if form.validate_on_submit():
        saved = _save_with_picture(form, reward)
        if saved is not None:
            flash(_("Reward %(title)s saved.", title=saved.title), "success")
            return redirect(url_for("admin.rewards"))
    return render_template("admin/reward_form.html", form=form, reward=reward, partners=partners), _status()


def _reward_again(refusal, reward_id=None):
    reward = db.get_or_404(Reward, reward_id) if reward_id is not None else None
    form, partners = _reward_form(reward)
    return render_template("admin/reward_form.html", form=refusal.on(form), reward=reward, partners=partners)


@bp.route("/rewards/new", methods=["GET", "POST"])
@form_page(_reward_again)
@reads_first  # the picture is resized before the write lock (blueprints/transactions.py)
def reward_create():
    """A new reward: partner, kind, title, price, stock, limits, level, validity, stores."""
    return _reward_view(None)


@bp.route("/rewards/<int:reward_id>/edit", methods=["GET", "POST"])
@form_page(_reward_again)
@reads_first
def reward_edit(reward_id):
    """Change a reward; the stock moves by the difference typed, so concurrent redemptions count."""
    return _reward_view(db.get_or_404(Reward, reward_id))


# -- points adjustments ------------------------------------------------------------------------

def _member_from(value) -> User | None:
    return db.session.get(User, int(value)) if str(value or "").isdigit() else None


def _points_page(find: FindMemberForm, member: User | None, form: AdjustForm | None, status: int = 200):
    return render_template("admin/points.html", find=find, member=member, form=form,
                           balance=balance_of(member) if member else None,
                           postings=history(member, size=20) if member else []), status


def _points_again(refusal):
    form = AdjustForm()
    member = _member_from(form.member.data)
    if member is None:
        abort(404)
    find = FindMemberForm(formdata=None, login=member.email or member.phone)
    return _points_page(find, member, refusal.on(form, "points"))


@bp.route("/points", methods=["GET", "POST"])
@form_page(_points_again)
def points():
    """Find a member, see their balance and postings, adjust with a mandatory reason (audited)."""
    if request.method == "POST":
        form = AdjustForm()
        member = _member_from(form.member.data)
        if member is None:
            abort(404)
        find = FindMemberForm(formdata=None, login=member.email or member.phone)
        if form.validate_on_submit():
            if not NONCE_RE.match(form.nonce.data or ""):
                form.form_errors.append(_("This form has expired. Reload the page and try again."))
            else:
                posting = adjust(member, form.points.data, form.reason.data, actor=current_user,
                                 key=f"admin-adjust:{form.nonce.data}")
                # A double submit returns the first posting: tell the member once.
                notify(member, "points_adjusted", {"points": f"{posting.points:+d}", "reason": posting.reason},
                       link="/me/points", dedupe_key=f"points-adjusted:{posting.id}")
                db.session.commit()
                flash(_("%(points)s points for %(name)s. New balance: %(balance)s.", points=f"{posting.points:+d}",
                        name=member.nickname, balance=balance_of(member)), "success")
                return redirect(url_for("admin.points", member=member.id), 303)
        return _points_page(find, member, form, 422)
    member = _member_from(request.args.get("member"))
    find = FindMemberForm(request.args) if "login" in request.args else FindMemberForm(
        formdata=None, login=(member.email or member.phone) if member else None)
    if member is None and "login" in request.args and find.validate():
        member = User.find_by_login(find.login.data)
        if member is None:
            find.login.errors.append(_("No member with this login."))
    form = AdjustForm(formdata=None, member=member.id, nonce=new_nonce()) if member else None
    return _points_page(find, member, form)


# -- vouchers ----------------------------------------------------------------------------------

def _search_vouchers(text: str) -> tuple[list[Voucher], str | None]:
    """Vouchers by code, else by member login; with what to say when nothing matches."""
    text = (text or "").strip()
    if not text:
        return [], None
    code = normalise_code(text)
    if code is not None:
        voucher = Voucher.by_code(code)
        return ([voucher], None) if voucher else ([], _("No voucher has this code."))
    member = User.find_by_login(text)
    if member is None:
        return [], _("No voucher has this code and no member has this login. Check it for a typo.")
    found = db.session.scalars(
        select(Voucher).where(Voucher.user_id == member.id).order_by(Voucher.id.desc()).limit(50)
    ).all()
    return found, None if found else _("%(name)s has no vouchers.", name=member.nickname)


def _vouchers_page(query: str, void_forms: dict | None = None, status: int = 200):
    found, message = _search_vouchers(query)
    void_forms = void_forms or {}
    for voucher in found:
        void_forms.setdefault(voucher.id, VoidForm(formdata=None, prefix=f"v{voucher.id}", q=query))
    return render_template("admin/vouchers.html", query=query, vouchers=found, message=message,
                           void_forms=void_forms), status


@bp.get("/vouchers")
def vouchers():
    """Find vouchers by code or by member login; cancel an unused one."""
    return _vouchers_page(request.args.get("code", ""))


def _void_again(refusal, voucher_id):
    voucher = db.get_or_404(Voucher, voucher_id)
    form = VoidForm(prefix=f"v{voucher.id}")
    return _vouchers_page(form.q.data or voucher.code, {voucher.id: refusal.on(form, "reason")})


@bp.post("/vouchers/<int:voucher_id>/void")
@form_page(_void_again)
def voucher_void(voucher_id):
    """Cancel an unused voucher with a reason: points refunded, stock back, member told, audited."""
    voucher = db.get_or_404(Voucher, voucher_id)
    form = VoidForm(prefix=f"v{voucher.id}")
    query = form.q.data or voucher.code
    if form.validate_on_submit():
        void_voucher(voucher, current_user, form.reason.data)  # refused: `_void_again` says why
        db.session.commit()
        flash(_("Voucher %(code)s cancelled: %(points)s points refunded, one unit back in stock.",
                code=voucher.display_code, points=voucher.points_paid), "success")
        return redirect(url_for("admin.vouchers", code=query), 303)
    return _vouchers_page(query, {voucher.id: form}, 422)
