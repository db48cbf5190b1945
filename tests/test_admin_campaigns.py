"""The admin's campaign pages: the form and its audience builder (refusals at the field, what was
typed kept, a double submit making one draft), the live audience count and its masked sample,
sending (never to nobody, never twice, never in the past), scheduling and calling it off, and
the audit of each step. Sending itself is services/campaigns.py's; here, what the admin sees."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models import AuditEntry, db
from models.campaigns import Campaign
from models.garage import Car, CarMake, CarSeries
from models.nonces import new_nonce
from models.types import SHANGHAI, shanghai_day, utcnow
from tests.html import Tags


def series(make: str, name: str) -> CarSeries:
    return db.session.scalar(select(CarSeries).join(CarMake).where(CarMake.name == make, CarSeries.name == name))


def member(factories, *, nickname=None, phone=None, level=1, idle_days=0, opted_in=True, communities=(), cars=()):
    """A verified member last active IDLE_DAYS ago, in COMMUNITIES, owning CARS ((series, year), …)."""
    user = factories.user(login=phone, nickname=nickname, verified=bool(phone), active_today=False,
                          level_number=level, marketing_opt_in=opted_in)
    user.last_active_on = shanghai_day(utcnow()) - timedelta(days=idle_days)
    for community in communities:
        community.join(user)
    for car_series, year in cars:
        db.session.add(Car(owner_id=user.id, make_id=car_series.make_id, series_id=car_series.id, model_year=year,
                           energy=car_series.energy))
    db.session.commit()
    return user


def form_data(**overrides) -> dict:
    data = {"kind": "winback", "title": "好久不见", "body": "回来看看车友们的新故事，签到送积分。", "link": "/",
            "channels": ["push"], "gift_points": "", "level_min": "", "level_max": "", "inactive_days": "30",
            "make_id": "", "series_id": "", "year_from": "", "year_to": "", "energy": "", "recall_id": "",
            "reach": "any", "nonce": new_nonce()}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def text(response) -> str:
    return response.get_data(as_text=True)


def campaigns() -> list[Campaign]:
    db.session.expire_all()
    return list(db.session.scalars(select(Campaign).order_by(Campaign.id)))


def draft(admin, **overrides) -> Campaign:
    from models.campaigns.editing import CampaignInput, save_campaign
    from models.campaigns.audience import Audience

    values = {"kind": "winback", "title": "好久不见", "body": "回来看看吧。", "audience": Audience(inactive_days=30)}
    values.update(overrides)
    made = save_campaign(admin, CampaignInput(**values), nonce=new_nonce())
    db.session.commit()
    return made


def audience_count(client, **args) -> tuple[int | None, str]:
    response = client.get("/admin/campaigns/audience", query_string=args, headers={"HX-Request": "true"})
    assert response.status_code == 200
    body = text(response)
    assert "<html" not in body, "htmx gets the fragment only"
    found = re.search(r'data-audience-count="(\d+)"', body)
    return (int(found.group(1)) if found else None), body


@pytest.fixture
def admin(factories):
    return factories.user(role="admin", nickname="运营小李")


def test_a_draft_is_created_once_from_the_form_even_when_sent_twice(admin, login_as):
    client = login_as(admin)
    page = client.get("/admin/campaigns/new")
    assert page.status_code == 200
    body = text(page)
    assert 'name="nonce"' in body and 'value="30"' in body, "a new win-back starts at 30 idle days"
    data = form_data(gift_points="50", channels=["push", "sms"])
    first = client.post("/admin/campaigns/new", data=data)
    again = client.post("/admin/campaigns/new", data=data)
    assert first.status_code == again.status_code == 302
    [made] = campaigns()
    assert first.headers["Location"] == again.headers["Location"] == f"/admin/campaigns/{made.id}"
    assert (made.kind, made.status, made.gift_points, made.channels) == ("winback", "draft", 50, ["push", "sms"])
    assert made.audience == {"inactive_days": 30}
    shown = text(client.get(f"/admin/campaigns/{made.id}"))
    assert "好久不见" in shown and "回来看看车友们的新故事" in shown and "草稿" in shown
    assert "立即发送" in shown
    listing = text(client.get("/admin/campaigns"))
    assert "好久不见" in listing and "新建活动" in listing
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "campaign.create"))
    assert entry.actor_id == admin.id and entry.target_id == str(made.id) and entry.after["title"] == "好久不见"


@pytest.mark.parametrize("overrides, field, message, kept", [
    ({"level_min": "5", "level_max": "2"}, "level_min", "Lv.5", '<option selected value="5">'),
    ({"year_from": "2023", "year_to": "2019"}, "year_from", "2023", 'value="2019"'),
    ({"link": "https://evil.example/"}, "link", "“/”", 'value="https://evil.example/"'),
    ({"title": "  "}, "title", "标题", "回来看看车友们的新故事"),
])
def test_bad_input_is_refused_at_its_field_with_what_was_typed_kept(admin, login_as, overrides, field, message, kept):
    response = login_as(admin).post("/admin/campaigns/new", data=form_data(**overrides))
    assert response.status_code == 422
    body = text(response)
    error = re.search(rf'<p class="error" (?:role="alert" )?id="{field}-error">([^<]*)</p>', body)
    assert error and message in error.group(1), body[:200]
    assert kept in body
    assert campaigns() == []


def test_the_audience_count_is_exactly_the_members_the_filters_select(admin, login_as, factories, communities):
    ev, women = communities["ev"], communities["women"]
    han, langyi = series("比亚迪", "汉 EV"), series("大众", "朗逸")
    member(factories, nickname="甲车主", level=3, idle_days=40, communities=[ev], cars=[(han, 2021)])
    member(factories, level=3, idle_days=40, communities=[ev], cars=[(han, 2018)])  # too old a car
    member(factories, level=6, idle_days=40, communities=[ev], cars=[(han, 2021)])  # above the level range
    member(factories, level=3, idle_days=5, communities=[ev], cars=[(han, 2021)])  # came by last week
    member(factories, level=3, idle_days=40, communities=[women], cars=[(han, 2021)])  # another community
    member(factories, level=3, idle_days=40, communities=[ev], cars=[(langyi, 2021)])  # another make
    member(factories, nickname="乙车主", level=3, idle_days=40, communities=[ev], cars=[(han, 2021)], opted_in=False)
    client = login_as(admin)
    filters = {"community_ids": [ev.id], "level_min": "2", "level_max": "4", "inactive_days": "30",
               "make_id": str(han.make_id), "year_from": "2020", "year_to": "2022", "reach": "any"}
    # A win-back counts the opted-in only (what will be sent), ticked or not.
    count, body = audience_count(client, kind="winback", **filters)
    assert count == 1 and "甲*主" in body and "乙*主" not in body
    # A safety recall reaches every owner concerned, opted in or not.
    assert audience_count(client, kind="recall", **filters)[0] == 2
    assert audience_count(client, kind="recall", marketing_only="y", **filters)[0] == 1
    assert audience_count(client, kind="recall", **{**filters, "series_id": str(han.id), "level_max": ""})[0] == 3
    assert audience_count(client, kind="recall", **{**filters, "community_ids": [ev.id, women.id]})[0] == 3
    assert audience_count(client, kind="recall", reach="push")[0] == 0, "nobody has a push device"


def test_reversed_ranges_in_the_live_count_say_why_and_count_nothing(admin, login_as):
    client = login_as(admin)
    count, body = audience_count(client, kind="winback", level_min="7", level_max="3")
    assert count is None and "Lv.7" in body and "Lv.3" in body
    count, body = audience_count(client, kind="winback", year_from="2024", year_to="2020", inactive_days="x")
    assert count is None and "整数" in body
    count, body = audience_count(client, kind="winback", year_from="2024", year_to="2020")
    assert count is None and "2024" in body


def test_the_sample_is_masked(admin, login_as, factories):
    member(factories, nickname="电车阿丽丽", phone="13912345678", level=4, idle_days=60)
    count, body = audience_count(login_as(admin), kind="winback", inactive_days="30")
    assert count == 1
    assert "139****5678" in body and "电***丽" in body and "Lv.4" in body
    assert "13912345678" not in body and "电车阿丽丽" not in body


def test_the_live_count_is_wired_with_htmx_and_is_also_a_page(admin, login_as):
    client = login_as(admin)
    tags = Tags(text(client.get("/admin/campaigns/new"))).tags
    [(_, fieldset)] = [(t, a) for t, a in tags if a.get("id") == "campaign-audience"]
    assert fieldset["hx-get"] == "/admin/campaigns/audience" and "#kind" in fieldset["hx-include"]
    assert "change" in fieldset["hx-trigger"]
    [(_, live)] = [(t, a) for t, a in tags if a.get("id") == "audience-live"]
    assert live["aria-live"] == "polite"
    page = client.get("/admin/campaigns/audience?kind=winback&inactive_days=30")
    assert page.status_code == 200 and "<html" in text(page) and "0 位会员符合" in text(page)


def test_an_empty_audience_is_refused_with_its_count(admin, login_as):
    made = draft(admin)
    response = login_as(admin).post(f"/admin/campaigns/{made.id}/send", data={"action": "now"})
    assert response.status_code == 422
    assert "0" in text(response) and "没有会员符合" in text(response)
    assert campaigns()[0].status == "draft"
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "campaign.send")) is None


def test_a_campaign_is_sent_once(admin, login_as, factories):
    from models.campaigns.audience import Audience

    # A safety recall: not marketing, so it goes out at once whatever the hour (a win-back
    # started in quiet hours, 21:00–08:00 Shanghai, waits for the morning).
    han = series("比亚迪", "汉 EV")
    for _ in range(2):
        member(factories, opted_in=False, cars=[(han, 2021)])
    made = draft(admin, kind="recall", title="汉 EV 副车架召回", audience=Audience(make_id=han.make_id))
    client = login_as(admin)
    page = text(client.get(f"/admin/campaigns/{made.id}"))
    assert 'data-audience-count="2"' in page
    response = client.post(f"/admin/campaigns/{made.id}/send", data={"action": "now"})
    assert response.status_code == 303 and response.headers["Location"] == f"/admin/campaigns/{made.id}"
    assert campaigns()[0].status in ("sending", "sent")
    again = client.post(f"/admin/campaigns/{made.id}/send", data={"action": "now"})
    assert again.status_code == 422 and "只发送一次" in text(again)
    entries = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "campaign.send")).all()
    assert len(entries) == 1 and entries[0].after["audience_count"] == 2 and entries[0].actor_id == admin.id
    page = text(client.get(f"/admin/campaigns/{made.id}"))
    assert 'id="campaign-report"' in page and "立即发送" not in page
    # Its report as the admin sees it: the member outcomes add up to the targeted count.
    targeted = int(re.search(r'id="report-targeted"><strong>(\d+)', page).group(1))
    outcomes = [int(n) for n in re.findall(r'data-outcome="\w+">(\d+)<', page)]
    assert targeted == 2 and sum(outcomes) == targeted
    assert "目标 15%" in page
    fragment = client.get(f"/admin/campaigns/{made.id}/report", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and text(fragment).lstrip().startswith("<section")
    assert 'id="report-targeted"' in text(fragment)


def test_the_report_polls_while_sending_and_stops_when_sent(admin, login_as, factories):
    member(factories, idle_days=45)
    made = draft(admin)
    made.status = "sending"
    db.session.commit()
    client = login_as(admin)
    report = client.get(f"/admin/campaigns/{made.id}/report", headers={"HX-Request": "true"})
    [(_, section)] = [(t, a) for t, a in Tags(text(report)).tags if a.get("id") == "campaign-report"]
    assert section["hx-trigger"] == "every 5s" and section["hx-get"] == f"/admin/campaigns/{made.id}/report"
    made = db.session.get(Campaign, made.id)
    made.status, made.finished_at = "sent", utcnow()
    db.session.commit()
    report = client.get(f"/admin/campaigns/{made.id}/report", headers={"HX-Request": "true"})
    [(_, section)] = [(t, a) for t, a in Tags(text(report)).tags if a.get("id") == "campaign-report"]
    assert "hx-trigger" not in section and "hx-get" not in section
    assert "<html" in text(client.get(f"/admin/campaigns/{made.id}/report")), "without htmx: the page"


def test_scheduling_in_the_past_is_refused_then_scheduled_then_called_off(admin, login_as, factories):
    member(factories, idle_days=45)
    made = draft(admin)
    client = login_as(admin)
    past = (utcnow() - timedelta(hours=1)).astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")
    response = client.post(f"/admin/campaigns/{made.id}/send", data={"action": "schedule", "send_at": past})
    assert response.status_code == 422
    assert re.search(r'id="send_at-error">[^<]*时间已过', text(response)) and f'value="{past}"' in text(response)
    assert client.post(f"/admin/campaigns/{made.id}/send", data={"action": "schedule", "send_at": ""}).status_code == 422
    assert campaigns()[0].status == "draft"

    later = utcnow().replace(second=0, microsecond=0) + timedelta(days=2)
    local = later.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")
    response = client.post(f"/admin/campaigns/{made.id}/send", data={"action": "schedule", "send_at": local})
    assert response.status_code == 303
    [scheduled] = campaigns()
    assert scheduled.status == "scheduled" and scheduled.scheduled_at == later, "Shanghai time, stored in UTC"
    page = text(client.get(f"/admin/campaigns/{made.id}"))
    assert "已排期" in page and f"/admin/campaigns/{made.id}/cancel" in page
    assert client.get(f"/admin/campaigns/{made.id}/edit").status_code == 302, "a scheduled one is not edited"

    assert client.post(f"/admin/campaigns/{made.id}/cancel").status_code == 303
    assert campaigns()[0].status == "draft" and campaigns()[0].scheduled_at is None
    again = client.post(f"/admin/campaigns/{made.id}/cancel")
    assert again.status_code == 422
    actions = db.session.scalars(select(AuditEntry.action).where(AuditEntry.action.startswith("campaign."),
                                                                 AuditEntry.target_id == str(made.id))
                                 .order_by(AuditEntry.id)).all()
    assert actions == ["campaign.create", "campaign.schedule", "campaign.cancel"]


def test_a_sent_campaign_cannot_be_edited(admin, login_as, factories):
    member(factories, idle_days=45)
    made = draft(admin)
    client = login_as(admin)
    assert client.post(f"/admin/campaigns/{made.id}/send", data={"action": "now"}).status_code == 303
    response = client.get(f"/admin/campaigns/{made.id}/edit")
    assert response.status_code == 302 and response.headers["Location"] == f"/admin/campaigns/{made.id}"
    assert "不能再修改" in text(client.get(response.headers["Location"]))
    posted = client.post(f"/admin/campaigns/{made.id}/edit", data=form_data(title="改过的标题"))
    assert posted.status_code == 302
    assert campaigns()[0].title == "好久不见"
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)
                             .where(AuditEntry.action == "campaign.edit")) == 0


def test_a_draft_is_edited_and_audited(admin, login_as):
    made = draft(admin)
    client = login_as(admin)
    page = text(client.get(f"/admin/campaigns/{made.id}/edit"))
    assert 'value="好久不见"' in page and 'name="nonce"' not in page
    response = client.post(f"/admin/campaigns/{made.id}/edit",
                           data=form_data(title="周末回来聚聚", kind="announcement", nonce=None, level_min="2"))
    assert response.status_code == 302
    [edited] = campaigns()
    assert (edited.title, edited.kind, edited.audience) == ("周末回来聚聚", "announcement",
                                                            {"inactive_days": 30, "level_min": 2})
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "campaign.edit"))
    assert entry.before["title"] == "好久不见" and entry.after["title"] == "周末回来聚聚"


def test_the_list_shows_reach_and_recall_rate_of_sent_campaigns(admin, login_as, factories):
    from models.campaigns import CampaignTarget

    people = [member(factories, idle_days=45) for _ in range(4)]
    made = draft(admin)
    made.status, made.started_at, made.finished_at = "sent", utcnow(), utcnow()
    for n, person in enumerate(people):
        db.session.add(CampaignTarget(campaign_id=made.id, user_id=person.id,
                                      returned_at=utcnow() if n == 0 else None))
    db.session.commit()
    listing = text(login_as(admin).get("/admin/campaigns"))
    assert 'data-targeted="4"' in listing and "25.0%" in listing and "已发送" in listing
