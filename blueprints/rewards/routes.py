"""The rewards catalogue (积分商城) and redeeming points for a partner's service voucher."""
from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from blueprints.access import wants_fragment
from blueprints.web import domain_errors, domain_message, render
from models import Community, Reward, db
from models.loyalty import REWARD_KINDS, points_summary, redeem as redeem_reward, redeem_refusal, standing_of
from models.nonces import new_nonce

bp = Blueprint("rewards", __name__)


def _member_status():
    """(level number, balance) of the viewer, or (None, None) for a visitor."""
    if not current_user.is_authenticated:
        return None, None
    standing = standing_of(current_user)
    return standing.level.number, standing.balance


@bp.get("")
def index():
    """The catalogue, filtered by kind and community; shows what the member can afford."""
    kind = request.args.get("kind") if request.args.get("kind") in REWARD_KINDS else None
    slug = request.args.get("community") or None
    community = db.session.scalar(db.select(Community).where(Community.slug == slug)) if slug else None
    rewards = Reward.catalogue(kind=kind, community_id=community.id if community else None)
    summary = points_summary(current_user) if current_user.is_authenticated else None
    level, balance = (summary["level"].number, summary["balance"]) if summary else (None, None)
    return render("rewards/index.html", "rewards/_list.html", rewards=rewards, kind=kind, kinds=REWARD_KINDS,
                  community=community, communities=Community.all_ordered(), level=level, balance=balance,
                  summary=summary)


def _active_or_404(reward_id: int) -> Reward:
    reward = db.get_or_404(Reward, reward_id)
    if not reward.active:
        abort(404)
    return reward


def _redeem_context(reward: Reward, error: str | None = None, voucher=None) -> dict:
    """What the redeem box needs: why the viewer cannot redeem (None when they can), and the
    facts of the confirmation (price, balance after, last day, stores)."""
    member = current_user if current_user.is_authenticated else None
    level, balance = _member_status()
    refused = redeem_refusal(member, reward)
    return dict(reward=reward, level=level, balance=balance, nonce=new_nonce(), error=error, voucher=voucher,
                refusal=domain_message(refused) if refused is not None else None,
                last_day=reward.last_day_if_redeemed(), stores=reward.usable_stores())


@bp.get("/<int:reward_id>")
def show(reward_id):
    """A reward: what it is, where it is accepted, its terms, and the redeem button."""
    return render_template("rewards/show.html", **_redeem_context(_active_or_404(reward_id)))


@bp.get("/<int:reward_id>/confirm")
@login_required
def confirm(reward_id):
    """The confirmation step without JavaScript: the same facts as the bottom sheet, and the real form."""
    reward = _active_or_404(reward_id)
    context = _redeem_context(reward)
    if context["refusal"] is not None:
        return redirect(url_for("rewards.show", reward_id=reward.id))
    return render_template("rewards/confirm.html", **context)


@login_required
def _redeem_refused(refused, reward_id):
    """Why the redemption was refused, in the redeem box (no points moved)."""
    return render("rewards/show.html", "rewards/_redeem.html", status=422,
                  **_redeem_context(db.get_or_404(Reward, reward_id), error=refused.message))


@bp.post("/<int:reward_id>/redeem")
@domain_errors(_redeem_refused)
@login_required
def redeem(reward_id):
    """Debit the points and issue the voucher; the form's nonce makes a repeat return the same one."""
    reward = db.get_or_404(Reward, reward_id)
    voucher = redeem_reward(current_user, reward.id, request.form.get("nonce", ""))
    db.session.commit()
    if not wants_fragment():
        return redirect(url_for("me.voucher", code=voucher.code), 303)
    response = render("rewards/show.html", "rewards/_redeem.html", **_redeem_context(reward, voucher=voucher))
    response.headers["HX-Trigger"] = "points-changed"
    return response
