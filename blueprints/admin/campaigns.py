"""Admin pages of campaigns (召回 win-back, 安全召回 safety recall, announcements): the list with
each one's reach and recall rate, the form with its audience builder and live count (htmx,
`/admin/campaigns/audience`), and a campaign's page: preview, audience, send now or schedule,
cancel, and the report, polled while it sends. Declared on the admin blueprint
(administrators only); the rules and the audit are the model's (models/campaigns/editing.py)."""
from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, HiddenField, IntegerField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms import widgets
from wtforms.validators import Optional

from blueprints.admin.routes import bp
from blueprints.events.forms import ShanghaiDateTimeField
from blueprints.web import domain_errors, domain_message, form_page, render
from models import Community, DomainError, db
from models.campaigns import audience as audiences
from models.campaigns.editing import CampaignInput, audience_of, campaign_audience, cancel, save_campaign, send
from models.campaigns.model import (BODY_MAX, CHANNEL_LABELS, KIND_LABELS, LINK_MAX, MARKETING_KINDS,
                                    RECALL_RATE_TARGET, STATUS_LABELS, TITLE_MAX, Campaign)
from models.campaigns.report import report_of
from models.garage import ENERGY_TYPES, CarMake, CarSeries
from models.nonces import NONCE_RE, new_nonce
from models.recalls import Recall

REPORTED_ROWS = 20  # the list shows report figures for this many newest campaigns (3 queries each)
POLL_SECONDS = 5  # a sending campaign's report refreshes itself this often
AUDIENCE_FIELDS = ("community_ids", "level_min", "level_max", "inactive_days", "make_id", "series_id", "year_from",
                   "year_to", "energy", "recall_id", "marketing_only", "reach")


class CheckboxesField(SelectMultipleField):
    widget = widgets.ListWidget(prefix_label=False)
    option_widget = widgets.CheckboxInput()


def _whole(label, **kwargs):
    return IntegerField(label, validators=[Optional()], render_kw={"inputmode": "numeric"}, **kwargs)


class CampaignForm(FlaskForm):
    nonce = HiddenField()  # one-time, for a new campaign: a repeated submission returns the first draft
    kind = SelectField(_l("Kind of campaign"), validate_choice=False)
    title = StringField(_l("Title"), render_kw={"maxlength": TITLE_MAX})
    body = TextAreaField(_l("Message"), render_kw={"rows": 4, "maxlength": BODY_MAX})
    link = StringField(_l("Link (a page of this site)"), default="/",
                       render_kw={"maxlength": LINK_MAX, "spellcheck": "false", "autocomplete": "off"})
    channels = CheckboxesField(_l("Channels besides the inbox"), validate_choice=False)
    gift_points = _whole(_l("Return gift in points (optional)"))
    # The audience builder: the names are the Audience's, so a refusal lands at its field.
    community_ids = CheckboxesField(_l("Communities (none ticked: every member)"), coerce=int, validate_choice=False)
    level_min = SelectField(_l("Lowest level"), validate_choice=False)
    level_max = SelectField(_l("Highest level"), validate_choice=False)
    inactive_days = _whole(_l("Inactive for at least (days)"))
    make_id = SelectField(_l("Car make"), validate_choice=False)
    series_id = SelectField(_l("Car series"), validate_choice=False)
    year_from = _whole(_l("First model year"))
    year_to = _whole(_l("Last model year"))
    energy = SelectField(_l("Energy type"), validate_choice=False)
    recall_id = SelectField(_l("Safety recall"), validate_choice=False)
    marketing_only = BooleanField(_l("Only members who opted in to marketing"))
    reach = SelectField(_l("Reachable by"), validate_choice=False)


class SendForm(FlaskForm):
    send_at = ShanghaiDateTimeField(_l("Or schedule for (Shanghai time)"), validators=[Optional()])


def _choices(form: CampaignForm) -> CampaignForm:
    form.kind.choices = [(k, _(label)) for k, label in KIND_LABELS.items()]
    form.channels.choices = [(c, _(label)) for c, label in CHANNEL_LABELS.items()]
    form.community_ids.choices = [(c.id, c.display_name) for c in Community.all_ordered()]
    levels = [(str(number), label) for number, label in audiences.level_choices()]
    form.level_min.choices = [("", _("Any level"))] + levels
    form.level_max.choices = [("", _("Any level"))] + levels
    makes = CarMake.all_ordered()
    form.make_id.choices = [("", _("Any make"))] + [(str(m.id), m.display_name) for m in makes]
    names = {m.id: m.display_name for m in makes}
    by_make: dict[str, list] = {_("All series of the make"): [("", _("All series"))]}
    for s in db.session.scalars(select(CarSeries).order_by(CarSeries.position, CarSeries.id)):
        by_make.setdefault(names[s.make_id], []).append((str(s.id), s.display_name))
    form.series_id.choices = by_make
    form.energy.choices = [("", _("Any energy type"))] + [(code, _(label)) for code, label in ENERGY_TYPES.items()]
    form.recall_id.choices = [("", _("No recall"))] + [(str(r.id), f"{r.number} · {r.vehicle}")
                                                       for r in Recall.newest_first()]
    form.reach.choices = [(code, _(label)) for code, label in audiences.REACH_LABELS.items()]
    return form


def _form(campaign: Campaign | None, formdata=None, csrf: bool = True) -> CampaignForm:
    """The campaign form, from what was sent (FORMDATA, by default the request's), else from
    CAMPAIGN, else a new one: a fresh nonce, a win-back of members inactive for 30 days."""
    meta = {} if csrf else {"csrf": False}
    form = _choices(CampaignForm(formdata=formdata, meta=meta) if formdata is not None else CampaignForm(meta=meta))
    if formdata is not None or form.is_submitted():
        return form
    if campaign is None:
        form.kind.data, form.channels.data, form.inactive_days.data = "winback", ["push"], 30
        form.nonce.data, form.reach.data = new_nonce(), "any"
        return form
    saved = audiences.Audience.from_json(campaign.audience)
    form.kind.data, form.title.data, form.body.data, form.link.data = (campaign.kind, campaign.title, campaign.body,
                                                                      campaign.link)
    form.channels.data, form.gift_points.data = list(campaign.channels or ()), campaign.gift_points
    form.community_ids.data = list(saved.community_ids)
    for name in ("level_min", "level_max", "make_id", "series_id", "recall_id"):
        value = getattr(saved, name)
        getattr(form, name).data = "" if value is None else str(value)
    form.inactive_days.data, form.year_from.data, form.year_to.data = saved.inactive_days, saved.year_from, saved.year_to
    form.energy.data, form.marketing_only.data, form.reach.data = saved.energy or "", saved.marketing_only, saved.reach
    return form


def _number(value) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.isdigit() else None


def _audience(form: CampaignForm) -> audiences.Audience:
    """The audience the form's builder describes (unchecked: `Audience.checked` says what is wrong)."""
    for name in AUDIENCE_FIELDS:
        field = getattr(form, name)
        if field.process_errors and any(str(v or "").strip() for v in field.raw_data or ()):
            raise DomainError("Enter a whole number.", field=name)
    return audiences.Audience(
        community_ids=tuple(sorted(set(form.community_ids.data or ()))),
        level_min=_number(form.level_min.data), level_max=_number(form.level_max.data),
        inactive_days=form.inactive_days.data, make_id=_number(form.make_id.data),
        series_id=_number(form.series_id.data), year_from=form.year_from.data, year_to=form.year_to.data,
        energy=form.energy.data or None, recall_id=_number(form.recall_id.data),
        marketing_only=bool(form.marketing_only.data), reach=form.reach.data or "any",
    )


def _input(form: CampaignForm) -> CampaignInput:
    return CampaignInput(kind=form.kind.data or "", title=form.title.data or "", body=form.body.data or "",
                         link=form.link.data or "", channels=tuple(form.channels.data or ()),
                         gift_points=form.gift_points.data, audience=_audience(form))


def _reach(kind: str, audience: audiences.Audience | None, refusal: str | None = None) -> dict:
    """What the live region shows: the count and a masked sample of who would receive it, or why
    the filters cannot be counted."""
    if audience is not None and refusal is None:
        try:
            audience = audience_of(kind, audience.checked())
        except DomainError as error:
            refusal = domain_message(error)
    if refusal is not None:
        return {"refusal": refusal, "count": None, "sample": [], "forced_opt_in": False}
    return {"refusal": None, "count": audiences.count(audience), "sample": audiences.sample(audience),
            "forced_opt_in": kind in MARKETING_KINDS}


def _form_reach(form: CampaignForm) -> dict:
    try:
        audience = _audience(form)
    except DomainError as error:
        return _reach(form.kind.data, None, domain_message(error))
    return _reach(form.kind.data, audience)


def _form_page(form: CampaignForm, campaign: Campaign | None, status: int = 200):
    return render_template("admin/campaign_form.html", form=form, campaign=campaign, reach=_form_reach(form),
                           marketing_kinds=MARKETING_KINDS), status


def _edit(campaign: Campaign | None):
    if campaign is not None and not campaign.editable:
        flash(_("This campaign was already sent or scheduled: it can no longer be changed."), "warning")
        return redirect(url_for("admin.campaign", campaign_id=campaign.id))
    form = _form(campaign)
    if form.validate_on_submit():
        saved = save_campaign(current_user, _input(form), campaign=campaign,
                              nonce=None if campaign else form.nonce.data or "")
        db.session.commit()
        flash(_("Campaign “%(title)s” saved as a draft. Check its audience, then send or schedule it.",
                title=saved.title), "success")
        return redirect(url_for("admin.campaign", campaign_id=saved.id))
    return _form_page(form, campaign, 422 if request.method == "POST" else 200)


def _form_again(refusal, campaign_id=None):
    """The form again from what was sent, the reason at its field, and a fresh nonce if the
    page's was stale, so the form works again."""
    campaign = db.get_or_404(Campaign, campaign_id) if campaign_id is not None else None
    if campaign is not None and not campaign.editable:
        return redirect(url_for("admin.campaign", campaign_id=campaign.id))
    form = refusal.on(_form(campaign), "title")
    if campaign is None and not NONCE_RE.match(form.nonce.data or ""):
        form.nonce.data = new_nonce()
    return _form_page(form, campaign, 422)


# -- the list ------------------------------------------------------------------------------------

def campaign_moment(campaign: Campaign):
    """When it happened or will: sent (finished), started, scheduled, else drafted."""
    return campaign.finished_at or campaign.started_at or campaign.scheduled_at or campaign.created_at


@bp.get("/campaigns")
def campaigns():
    """Campaigns, newest first; the newest ones with whom they reached and the recall rate."""
    rows = Campaign.newest_first()
    reports = {c.id: report_of(c) for c in rows[:REPORTED_ROWS] if c.status in ("sending", "sent")}
    return render_template("admin/campaigns.html", campaigns=rows, reports=reports, moment=campaign_moment,
                           kinds=KIND_LABELS, statuses=STATUS_LABELS, target=RECALL_RATE_TARGET)


@bp.route("/campaigns/new", methods=["GET", "POST"])
@form_page(_form_again)
def campaign_create():
    """A new campaign (a draft until it is sent or scheduled)."""
    return _edit(None)


@bp.route("/campaigns/<int:campaign_id>/edit", methods=["GET", "POST"])
@form_page(_form_again)
def campaign_edit(campaign_id):
    """Change a draft (audited with what it was before); a sent or scheduled one is left as it is."""
    return _edit(db.get_or_404(Campaign, campaign_id))


@bp.get("/campaigns/audience")
def campaign_audience_count():
    """The live count: how many members the builder's filters (query arguments) reach, and a
    masked sample of ten; opened without htmx, the same on a page of its own."""
    form = _form(None, formdata=request.args, csrf=False)
    return render("admin/campaign_audience.html", "admin/_campaign_audience.html", reach=_form_reach(form),
                  form=form)


# -- a campaign's page ------------------------------------------------------------------------

def _campaign_page(campaign: Campaign, send_form: SendForm | None = None, status: int = 200):
    audience = campaign_audience(campaign)
    live = campaign.status in ("draft", "scheduled")
    return render("admin/campaign.html", status=status, campaign=campaign, summary=_summary(audience),
                  reach=_reach(campaign.kind, audience) if live else None,
                  send_form=send_form or SendForm(formdata=None),
                  report=report_of(campaign) if campaign.status in ("sending", "sent") else None,
                  kinds=KIND_LABELS, statuses=STATUS_LABELS, channel_labels=CHANNEL_LABELS,
                  poll_seconds=POLL_SECONDS)


def _summary(audience: audiences.Audience) -> list[str]:
    """The audience's filters in words, one a line."""
    lines = []
    if audience.community_ids:
        names = [c.display_name for c in Community.all_ordered() if c.id in set(audience.community_ids)]
        lines.append(_("Members of %(communities)s", communities="、".join(names)))
    if audience.level_min is not None or audience.level_max is not None:
        lines.append(_("Levels Lv.%(low)s to Lv.%(high)s", low=audience.level_min or 1, high=audience.level_max or 9))
    if audience.inactive_days is not None:
        lines.append(_("Inactive for at least %(days)s days", days=audience.inactive_days))
    if audience.uses_garage:
        car = []
        if audience.make_id is not None:
            make = db.session.get(CarMake, audience.make_id)
            car.append(make.display_name if make else "?")
        if audience.series_id is not None:
            series = db.session.get(CarSeries, audience.series_id)
            car.append(series.display_name if series else "?")
        if audience.year_from is not None or audience.year_to is not None:
            car.append(_("model years %(first)s–%(last)s", first=audience.year_from or "…", last=audience.year_to or "…"))
        if audience.energy is not None:
            car.append(_(ENERGY_TYPES[audience.energy]))
        lines.append(_("Owners of a car: %(car)s", car=" · ".join(car)))
    if audience.recall_id is not None:
        recall = db.session.get(Recall, audience.recall_id)
        lines.append(_("Owners reached by recall %(number)s", number=recall.number if recall else "?"))
    if audience.marketing_only:
        lines.append(_("Only members who opted in to marketing"))
    lines.append(_(audiences.REACH_LABELS[audience.reach]))
    return lines


def _campaign_again(refusal, campaign_id):
    campaign = db.get_or_404(Campaign, campaign_id)
    return _campaign_page(campaign, refusal.on(SendForm()), refusal.status)


@bp.get("/campaigns/<int:campaign_id>")
def campaign(campaign_id):
    """A campaign: how the push will look, its audience and count, send or schedule, the report."""
    return _campaign_page(db.get_or_404(Campaign, campaign_id))


@bp.get("/campaigns/<int:campaign_id>/report")
def campaign_report(campaign_id):
    """The report alone (htmx polls it while the campaign sends); without htmx, the whole page."""
    item = db.get_or_404(Campaign, campaign_id)
    return render("admin/campaign.html", "admin/_campaign_report.html", campaign=item,
                  summary=_summary(campaign_audience(item)), reach=None, send_form=SendForm(formdata=None),
                  report=report_of(item), kinds=KIND_LABELS, statuses=STATUS_LABELS,
                  channel_labels=CHANNEL_LABELS, poll_seconds=POLL_SECONDS)


@bp.post("/campaigns/<int:campaign_id>/send")
@form_page(_campaign_again)
def campaign_send(campaign_id):
    """Send now, or at the time given ("schedule"): once; never to an empty audience."""
    item = db.get_or_404(Campaign, campaign_id)
    form = SendForm()
    if not form.validate_on_submit():
        return _campaign_page(item, form, 422)
    scheduled = request.form.get("action") == "schedule"
    if scheduled and form.send_at.data is None:
        form.send_at.errors.append(_("Choose when to send it, or send it now."))
        return _campaign_page(item, form, 422)
    send(current_user, item, at=form.send_at.utc if scheduled else None)
    db.session.commit()
    if scheduled:
        flash(_("Scheduled: “%(title)s” goes out at the time you chose.", title=item.title), "success")
    else:
        flash(_("Sending “%(title)s”: the report below fills in as it goes out.", title=item.title), "success")
    return redirect(url_for("admin.campaign", campaign_id=item.id), 303)


@bp.post("/campaigns/<int:campaign_id>/cancel")
@domain_errors(_campaign_again)
def campaign_cancel(campaign_id):
    """Call off a scheduled campaign: it goes back to being a draft."""
    item = db.get_or_404(Campaign, campaign_id)
    cancel(current_user, item)
    db.session.commit()
    flash(_("Called off: “%(title)s” is a draft again.", title=item.title), "info")
    return redirect(url_for("admin.campaign", campaign_id=item.id), 303)
