"""Campaigns end to end: the audience, the fan-out through the outbox to a local push service
(payloads decrypted as a phone would), SMS by the provider's rules, the report adding up, and
the return link with its gift. Marketing kinds run on a Shanghai-daytime clock unless a test
says otherwise; the admin pages are tests/test_admin_campaigns.py."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from models import AuditEntry, JobRow, Notification, PointsPosting, db
from models.campaigns import Audience, Campaign, CampaignTarget
from models.campaigns.editing import CampaignInput, cancel, save_campaign, send
from models.campaigns.report import report_of
from models.campaigns.returns import return_link, return_token
from models.nonces import new_nonce
from models.types import SHANGHAI, utcnow
from tests.test_push_delivery import device, service  # noqa: F401  (service: the local push service fixture)

DAYTIME = datetime(2030, 6, 3, 10, 0, tzinfo=SHANGHAI).astimezone(timezone.utc)


@pytest.fixture
def clock(monkeypatch):
    """The campaign and SMS rules' clock: Shanghai 10:00 unless a test moves it."""

    class Clock:
        now = DAYTIME

    for where in ("services.campaigns.utcnow", "models.sms_rules.utcnow", "services.tasks.utcnow"):
        monkeypatch.setattr(where, lambda: Clock.now)
    return Clock


def lapsed(factories, days=40, **kw):
    member = factories.user(active_today=False, **kw)
    member.last_active_on = (utcnow() - timedelta(days=days)).astimezone(SHANGHAI).date()
    member.created_at = utcnow() - timedelta(days=days + 100)
    db.session.commit()
    return member


def campaign(admin, kind="winback", channels=("push",), gift=None, audience=None, **kw) -> Campaign:
    data = CampaignInput(kind=kind, title=kw.pop("title", "好久不见"), body=kw.pop("body", "回来看看新活动"),
                         link=kw.pop("link", "/events"), channels=channels, gift_points=gift,
                         audience=audience or Audience(inactive_days=30))
    row = save_campaign(admin, data, nonce=kw.pop("nonce", None) or new_nonce())
    db.session.commit()
    return row


def fresh(row):
    db.session.rollback()
    return db.session.get(type(row), row.id)


def test_a_win_back_reaches_each_lapsed_opted_in_member_once_with_its_own_link(app, factories, service, clock):
    admin = factories.user(role="admin")
    keen, away = lapsed(factories, marketing_opt_in=True), lapsed(factories, marketing_opt_in=True)
    lapsed(factories, marketing_opt_in=False)  # no consent: never a marketing campaign
    factories.user(marketing_opt_in=True)  # active today: not lapsed
    _, keen_phone = device(keen, service, "keen")
    row = campaign(admin, gift=80)
    send(admin, row)
    db.session.commit()  # the eager outbox runs the fan-out and the pushes after the commit

    row = fresh(row)
    assert row.status == "sent"
    targets = db.session.scalars(select(CampaignTarget).where(CampaignTarget.campaign_id == row.id)).all()
    assert sorted(t.user_id for t in targets) == sorted([keen.id, away.id])
    [message] = service.to("keen")
    note = db.session.get(Notification, next(t.notification_id for t in targets if t.user_id == keen.id))
    assert keen_phone.decrypt(message) == {
        "title": "好久不见", "body": "回来看看新活动", "url": return_link(row.id, keen.id),
        "tag": f"cheyou-n{note.id}", "icon": "/static/img/icon-192.png", "badge": "/static/img/icon-192.png"}
    assert note.text == "好久不见：回来看看新活动"  # the inbox has it too, for both

    report = report_of(row)
    assert report.targeted == 2 and report.channels["push"]["sent"] == 1
    assert report.outcomes == {"delivered": 1, "failed": 0, "gone": 0, "waiting": 0, "unreachable": 1}
    assert report.adds_up

    # Sent again (a second click, a rerun of the start job): nothing more goes out.
    with pytest.raises(Exception, match="already sent"):
        send(admin, row)
    db.session.rollback()
    app.extensions["jobs"].run_due(utcnow() + timedelta(minutes=10))
    assert len(service.to("keen")) == 1
    assert db.session.scalar(select(func.count()).select_from(CampaignTarget)) == 2


def test_an_empty_audience_and_a_past_schedule_are_refused(app, factories, clock):
    admin = factories.user(role="admin")
    row = campaign(admin)
    with pytest.raises(Exception, match=r"0 members"):
        send(admin, row)
    db.session.rollback()
    lapsed(factories, marketing_opt_in=True)
    with pytest.raises(Exception, match="passed"):
        send(admin, fresh(row), at=utcnow() - timedelta(minutes=1))
    db.session.rollback()
    assert fresh(row).status == "draft"


def test_reversed_ranges_are_refused_at_their_field(app, factories):
    admin = factories.user(role="admin")
    for audience, field in ((Audience(level_min=5, level_max=2), "level_min"),
                            (Audience(year_from=2020, year_to=2015, make_id=1), "year_from")):
        with pytest.raises(Exception) as refused:
            campaign(admin, audience=audience)
        assert refused.value.field == field
        db.session.rollback()


def test_a_scheduled_campaign_waits_and_a_cancelled_one_never_goes(app, factories, service, clock):
    admin = factories.user(role="admin")
    member = lapsed(factories, marketing_opt_in=True)
    device(member, service, "m")
    row = campaign(admin)
    send(admin, row, at=utcnow() + timedelta(hours=2))
    db.session.commit()
    assert service.to("m") == [] and fresh(row).status == "scheduled"
    cancel(admin, fresh(row))
    db.session.commit()
    app.extensions["jobs"].run_due(utcnow() + timedelta(hours=3))
    assert service.to("m") == [] and fresh(row).status == "draft"

    send(admin, fresh(row), at=utcnow() + timedelta(hours=1))
    db.session.commit()
    app.extensions["jobs"].run_due(utcnow() + timedelta(hours=1, minutes=1))
    clock.now = utcnow() + timedelta(hours=1, minutes=1)
    app.extensions["jobs"].run_due(utcnow() + timedelta(hours=1, minutes=1))
    assert len(service.to("m")) == 1 and fresh(row).status == "sent"
    actions = db.session.scalars(select(AuditEntry.action).where(AuditEntry.target_type == "campaigns")
                                 .order_by(AuditEntry.id)).all()
    assert actions == ["campaign.create", "campaign.schedule", "campaign.cancel", "campaign.schedule"]


def test_marketing_started_at_night_waits_for_eight_in_the_morning(app, factories, service, clock):
    clock.now = datetime(2030, 6, 3, 22, 30, tzinfo=SHANGHAI).astimezone(timezone.utc)
    admin = factories.user(role="admin")
    member = lapsed(factories, marketing_opt_in=True)
    device(member, service, "m")
    row = campaign(admin)
    send(admin, row)
    db.session.commit()
    assert service.to("m") == []
    [waiting] = db.session.scalars(select(JobRow).where(JobRow.name == "services.campaigns.fan_out",
                                                        JobRow.status == "queued")).all()
    assert waiting.run_at == datetime(2030, 6, 4, 8, 0, tzinfo=SHANGHAI)


def test_a_safety_recall_reaches_owners_by_push_and_sms_without_marketing_consent(app, factories, service, clock):
    from models.garage import Car, CarSeries

    admin = factories.user(role="admin")
    series = db.session.scalars(select(CarSeries).order_by(CarSeries.id)).first()
    make = series.make
    owner = factories.user(login="13900001111", verified=True)  # no marketing consent: a recall still goes
    other = factories.user()
    for member, year in ((owner, 2019), (other, 2012)):
        db.session.add(Car(owner_id=member.id, make_id=make.id, series_id=series.id, energy="bev", model_year=year))
    db.session.commit()
    device(owner, service, "owner")
    row = campaign(admin, kind="recall", channels=("push", "sms"), title="制动软管可能磨损",
                   body="请尽快到店免费检查", audience=Audience(make_id=make.id, year_from=2018, year_to=2021))
    send(admin, row)
    db.session.commit()
    report = report_of(fresh(row))
    assert report.targeted == 1
    assert report.channels["push"]["sent"] == 1 and report.channels["sms"]["sent"] == 1
    assert report.outcomes["delivered"] == 1 and report.adds_up


def test_the_return_gift_is_credited_once_to_its_member_only(app, factories, service, clock, login_as):
    admin = factories.user(role="admin")
    member = lapsed(factories, marketing_opt_in=True)
    stranger = factories.user()
    row = campaign(admin, gift=80)
    send(admin, row)
    db.session.commit()
    link = return_link(row.id, member.id)

    visitor = app.test_client().get(link)
    assert visitor.status_code == 302 and "/auth/login" in visitor.location and "next=" in visitor.location
    other = login_as(stranger).get(link, follow_redirects=True)
    assert "sent to another member" in other.get_data(as_text=True) or "另一位" in other.get_data(as_text=True)
    mine = login_as(member)
    first = mine.get(link)
    assert first.status_code == 302 and first.location.endswith("/events")
    mine.get(link)  # a second tap: no second gift
    gifts = db.session.scalars(select(PointsPosting).where(PointsPosting.rule == "campaign_return")).all()
    assert [(g.user_id, g.points) for g in gifts] == [(member.id, 80)]
    report = report_of(fresh(row))
    assert (report.clicked, report.returned, report.recall_rate) == (1, 1, 1.0)

    tampered = return_token(row.id, member.id)[:-2] + "xx"
    assert mine.get(f"/r/{tampered}").status_code == 404
    assert mine.get(f"/r/{return_token(row.id, stranger.id)}").status_code == 404  # not targeted


def test_a_return_after_seven_days_gets_no_gift(app, factories, service, clock, login_as):
    admin = factories.user(role="admin")
    member = lapsed(factories, marketing_opt_in=True)
    row = campaign(admin, gift=80)
    send(admin, row)
    db.session.commit()
    target = db.session.scalar(select(CampaignTarget).where(CampaignTarget.user_id == member.id))
    target.created_at = utcnow() - timedelta(days=8)
    db.session.commit()
    login_as(member).get(return_link(row.id, member.id))
    assert db.session.scalar(select(func.count()).select_from(PointsPosting)
                             .where(PointsPosting.rule == "campaign_return")) == 0
    assert report_of(fresh(row)).returned == 0


def test_the_report_says_when_a_campaign_held_by_quiet_hours_goes_out(app, factories, service, clock, login_as):
    clock.now = datetime(2030, 6, 3, 22, 30, tzinfo=SHANGHAI).astimezone(timezone.utc)
    admin = factories.user(role="admin")
    lapsed(factories, marketing_opt_in=True)
    row = campaign(admin)
    send(admin, row)
    db.session.commit()
    report = report_of(fresh(row), now=clock.now)
    assert report.waits_until == datetime(2030, 6, 4, 8, 0, tzinfo=SHANGHAI)
    assert report.targeted == 0
    clock.now = datetime(2030, 6, 4, 8, 0, tzinfo=SHANGHAI).astimezone(timezone.utc)
    assert report_of(fresh(row), now=clock.now).waits_until is None
