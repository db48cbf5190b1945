"""A form whose page expired (its CSRF token is stale or missing) comes back as it was sent: the
same form, what was typed (never a password), a notice in the member's language and a fresh
token, status 400, and nothing saved; the view itself never runs. No state-changing route is
exempt from CSRFProtect but the check-in sync, which carries its own key.
(blueprints/web.py: `form_page`, the CSRF and DomainError handlers.)"""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from models import Event, Reward, Story, User, Voucher, db
from models.stories import StoryInput, save_story
from tests.factories import PASSWORD
from tests.test_admin_loyalty import reward_data
from tests.test_events_manage import TITLE as EVENT_TITLE
from tests.test_events_manage import form as event_form
from tests.test_partner import make_voucher

STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
# The one exemption: a sync may come hours after the page loaded; X-Checkin-Key stands in.
EXEMPT = {"events.checkin_sync"}
# Form views that used to exempt themselves and let FlaskForm check the token.
FORM_VIEWS = {
    "admin.words", "admin.roles", "admin.partners", "admin.partner", "admin.store_create", "admin.store_edit",
    "admin.staff_grant", "admin.reward_create", "admin.reward_edit", "admin.points", "admin.voucher_void",
    "auth.signup", "auth.login", "auth.password", "auth.phone_send", "auth.phone_verify", "auth.login_sms_send",
    "auth.login_sms_verify", "auth.forgot", "auth.forgot_reset", "auth.reset", "stories.create", "stories.edit",
    "events.new", "events.edit", "partner.use",
}
ZH_NOTICE = "页面停留时间过长"
EN_NOTICE = "This page was open for too long"


def text(response) -> str:
    return response.get_data(as_text=True)


def token_in(body: str, prefix: str = "") -> str:
    return re.search(rf'name="{prefix}csrf_token" type="hidden" value="([^"]+)"', body).group(1)


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_no_state_changing_route_is_exempt_from_csrf_but_the_checkin_sync(app):
    csrf = app.extensions["csrf"]
    exempt = set()
    for rule in app.url_map.iter_rules():
        if not (rule.methods or set()) & STATE_CHANGING:
            continue
        view = app.view_functions[rule.endpoint]
        blueprint = app.blueprints.get(rule.endpoint.rpartition(".")[0])
        if f"{view.__module__}.{view.__name__}" in csrf._exempt_views or blueprint in csrf._exempt_blueprints:
            exempt.add(rule.endpoint)
    assert exempt == EXEMPT


def test_every_form_view_says_how_its_page_comes_back(app):
    missing = {e for e in FORM_VIEWS if not getattr(getattr(app.view_functions[e], "refused_page", None),
                                                     "when_expired", False)}
    assert missing == set()


def test_login_with_an_expired_page_shows_the_form_again_then_logs_in(client, factories, csrf_on):
    factories.user(login="member@example.com", nickname="过期车友")
    client.get("/auth/login")
    response = client.post("/auth/login", data={"login": "member@example.com", "password": PASSWORD,
                                                "csrf_token": "stale"})
    body = text(response)
    assert response.status_code == 400
    assert ZH_NOTICE in body and 'value="member@example.com"' in body
    assert PASSWORD not in body, "a password is never sent back"
    again = client.post("/auth/login", data={"login": "member@example.com", "password": PASSWORD,
                                             "csrf_token": token_in(body)})
    assert again.status_code == 302, "the fresh token works"
    assert "过期车友" in text(client.get("/me"))


def test_signup_without_a_token_keeps_what_was_typed_in_english_and_saves_nobody(client, communities, csrf_on):
    client.set_cookie("lang", "en")
    response = client.post("/auth/signup", data={"login": "13812345678", "nickname": "午后车友", "password": PASSWORD,
                                                 "consent": "y"})
    body = text(response)
    assert response.status_code == 400 and EN_NOTICE in body
    assert 'value="13812345678"' in body and 'value="午后车友"' in body and PASSWORD not in body
    assert count(User) == 0


@pytest.fixture
def author(factories, communities):
    return factories.user(login="13900001111", nickname="电车老王", verified=True)


def story_data(communities, **kw) -> dict:
    data = {"community": communities["ev"].id, "title": "冬天的续航", "body": "掉了两成，还能接受。", "action": "publish",
            "csrf_token": "stale"}
    data.update(kw)
    return data


def test_a_story_whose_page_expired_comes_back_with_the_text_and_posts_on_the_second_send(login_as, author,
                                                                                          communities, csrf_on):
    client = login_as(author)
    response = client.post("/stories/new", data=story_data(communities, nonce="stale-page"))
    body = text(response)
    assert response.status_code == 400 and ZH_NOTICE in body
    assert 'value="冬天的续航"' in body and "掉了两成，还能接受。" in body
    assert count(Story) == 0
    nonce = re.search(r'name="nonce" type="hidden" value="([^"]+)"', body).group(1)
    assert nonce != "stale-page", "a stale page's nonce is replaced, so the form works again"
    sent = client.post("/stories/new", data=story_data(communities, nonce=nonce, csrf_token=token_in(body)))
    assert sent.status_code == 302 and count(Story) == 1


def test_the_story_editor_script_gets_the_editor_fragment_to_swap_in(login_as, author, communities, csrf_on):
    response = login_as(author).post("/stories/new", data=story_data(communities), headers={"HX-Request": "true"})
    body = text(response)
    assert response.status_code == 400 and response.headers["X-Cheyou-Form-Expired"] == "1"
    assert 'id="story-editor"' in body and "<html" not in body and 'value="冬天的续航"' in body
    assert count(Story) == 0


def test_someone_elses_story_is_not_shown_again_from_a_stale_edit(login_as, author, factories, communities, csrf_on):
    story = save_story(author, StoryInput(communities["ev"], "老王的秘密草稿", "只给自己看的草稿，还没想好怎么写结尾。", []), publish=False)
    db.session.commit()
    stranger = factories.user(verified=True, login="13900002222")
    response = login_as(stranger).post(f"/stories/{story.id}/edit", data=story_data(communities, title="改掉"))
    assert response.status_code == 404 and "老王的秘密草稿" not in text(response)


@pytest.fixture
def organizer(factories, communities):
    return factories.user(nickname="组织者老王", role="organizer", community=communities["ev"])


def test_a_new_event_whose_page_expired_keeps_the_form_and_saves_nothing(login_as, organizer, communities, csrf_on):
    data = event_form(communities["ev"], csrf_token="stale", place="前滩太古里停车场")
    response = login_as(organizer).post("/events/new", data=data)
    body = text(response)
    assert response.status_code == 400 and ZH_NOTICE in body
    assert f'value="{EVENT_TITLE}"' in body and 'value="前滩太古里停车场"' in body
    assert count(Event) == 0


def test_an_event_form_comes_back_only_to_who_may_manage_it(login_as, factories, organizer, communities, csrf_on):
    event = factories.event(community=communities["ev"], organizer=organizer, title="只有组织者能改")
    other = factories.user(role="organizer", community=communities["modding"])
    data = event_form(communities["ev"], csrf_token="stale", title="偷偷改名")
    refused = login_as(other).post(f"/events/{event.id}/edit", data=data)
    assert refused.status_code == 403 and "只有组织者能改" not in text(refused) and "偷偷改名" not in text(refused)
    mine = login_as(organizer).post(f"/events/{event.id}/edit", data=data)
    assert mine.status_code == 400 and 'value="偷偷改名"' in text(mine)
    db.session.expire_all()
    assert db.session.get(Event, event.id).title == "只有组织者能改"


def test_the_admin_reward_form_keeps_what_was_typed_for_administrators_only(login_as, client, factories, csrf_on):
    admin = factories.user(role="admin")
    partner = factories.partner("洁亮洗车", stores=1)
    data = reward_data(partner, title="过期页面的精洗", csrf_token="stale")
    response = login_as(admin).post("/admin/rewards/new", data=data)
    assert response.status_code == 400 and ZH_NOTICE in text(response) and 'value="过期页面的精洗"' in text(response)
    staff = factories.user(role="partner", partner=partner)
    assert login_as(staff).post("/admin/rewards/new", data=data).status_code == 403
    assert client.post("/admin/rewards/new", data=data).status_code == 302, "visitors log in first"
    assert count(Reward) == 0


def test_the_counter_form_swaps_back_in_with_the_store_chosen(login_as, factories, csrf_on):
    partner = factories.partner("洁亮洗车", stores=2)
    staff = factories.user(role="partner", partner=partner)
    voucher = make_voucher(factories, partner)
    client = login_as(staff)
    response = client.post(f"/partner/v/{voucher.code}/use", data={"store": partner.stores[1].id},
                           headers={"HX-Request": "true"})
    body = text(response)
    assert response.status_code == 400 and response.headers["X-Cheyou-Form-Expired"] == "1"
    assert "<html" not in body and ZH_NOTICE in body
    assert f'<option selected value="{partner.stores[1].id}">' in body
    assert db.session.get(Voucher, voucher.id).state == "issued"
    stranger = factories.user(role="partner")
    assert login_as(stranger).post(f"/partner/v/{voucher.code}/use", data={"store": partner.stores[1].id}).status_code == 404


def test_a_button_keeps_the_plain_expired_page(login_as, factories, csrf_on):
    response = login_as(factories.user()).post("/auth/logout")
    assert response.status_code == 400 and "页面已过期" in text(response)
    assert "X-Cheyou-Form-Expired" not in response.headers
