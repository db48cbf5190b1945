"""Roles as data, checked in one place: every route × every role, plus the CLI and admin grants."""
from __future__ import annotations

import itertools
import re

import pytest
from sqlalchemy import select

from models import AuditEntry, Notification, Partner, User, db
from models.accounts import RoleGrant

_phones = itertools.count(1)
ROLES = ["visitor", "member", "organizer", "moderator", "partner", "admin"]
ALL = set(ROLES)
SIGNED_IN = ALL - {"visitor"}

# Every GET route of the app (as its URL rule) and who may open it; the others are sent to
# log in, or refused. Rules with parameters get a concrete path from `example_path`.
ROUTES = {
    "/": ALL,
    "/healthz": ALL,
    "/offline": ALL,
    "/privacy": ALL,
    "/manifest.webmanifest": ALL,
    "/sw.js": ALL,
    "/communities": ALL,
    "/c/<slug>": ALL,
    "/events": ALL,
    "/events/<int:event_id>": ALL,
    "/events/<int:event_id>/calendar.ics": ALL,
    # Organizers of the event's community (the matrix's organizer runs ev) and admins.
    "/events/manage": {"organizer", "admin"},
    "/events/new": {"organizer", "admin"},
    "/events/<int:event_id>/edit": {"organizer", "admin"},
    "/events/<int:event_id>/manage": {"organizer", "admin"},
    "/events/<int:event_id>/roster": {"organizer", "admin"},
    "/events/<int:event_id>/roster.csv": {"organizer", "admin"},
    "/events/<int:event_id>/checkin": {"organizer", "admin"},
    "/events/<int:event_id>/checkin/roster": {"organizer", "admin"},
    # The ticket's QR: its owner sees the ticket (test_events_checkin), organizers and admins go
    # to check-in; to anyone else the ticket does not exist (404, see NOT_FOUND_FOR_OTHERS).
    "/events/t/<token>": {"organizer", "admin"},
    "/rewards": ALL,
    "/rewards/<int:reward_id>": ALL,
    "/rewards/<int:reward_id>/confirm": SIGNED_IN,  # back to the reward page when one cannot redeem
    "/stories/new": SIGNED_IN,
    "/stories/<int:story_id>": ALL,
    "/stories/by/<int:user_id>": ALL,
    "/stories/search": ALL,
    "/stories/<int:story_id>/edit": set(),  # only the story's author (not one of the matrix's accounts)
    "/media/<path:key>": ALL,
    "/i/<code>": ALL,
    "/auth/signup": ALL,  # signed-in accounts are sent home
    "/auth/login": ALL,
    "/auth/password": SIGNED_IN,
    "/auth/phone": SIGNED_IN,
    "/auth/login/sms": ALL,  # signed-in accounts are sent on
    "/auth/forgot": ALL,  # signed-in accounts are sent to change their password
    "/auth/reset/<token>": ALL,  # the e-mailed link is the credential, whoever holds it
    "/u/<token>": ALL,  # the unsubscribe link of a marketing text: the signed token is the credential
    # A campaign's link: visitors sign in first; any member is taken on (the gift is only its own's).
    "/r/<token>": SIGNED_IN,
    "/me": SIGNED_IN,
    "/me/notifications": SIGNED_IN,
    "/me/unread-badge": SIGNED_IN,
    "/me/push/key": SIGNED_IN,  # the VAPID key and a token, for push.js and the service worker
    "/me/points": SIGNED_IN,
    "/me/invite-poster.png": SIGNED_IN,
    "/me/vouchers": SIGNED_IN,
    "/me/vouchers/<code>": SIGNED_IN,  # the member's own voucher; another's is a 404 (test_member_vouchers)
    "/me/vouchers/<code>.pdf": SIGNED_IN,
    "/me/tickets": SIGNED_IN,
    "/me/garage": SIGNED_IN,
    "/me/garage/new": SIGNED_IN,
    "/me/garage/<int:car_id>/edit": SIGNED_IN,  # the member's own car; another's is a 404 (test_garage)
    "/me/privacy": SIGNED_IN,
    "/partner": {"partner", "admin"},
    "/partner/lookup": {"partner", "admin"},  # without a code: back to /partner
    # Staff of the voucher's own partner (the matrix's partner works for world.partner); another
    # partner's staff get a 404 (test_partner).
    "/partner/v/<path:code>": {"partner", "admin"},
    "/partner/statement": {"partner", "admin"},
    "/admin": {"admin"},
    "/admin/roles": {"admin"},
    "/admin/audit": {"admin"},
    "/admin/partners": {"admin"},
    "/admin/partners/<int:partner_id>": {"admin"},
    "/admin/stores/<int:store_id>/edit": {"admin"},
    "/admin/rewards": {"admin"},
    "/admin/rewards/new": {"admin"},
    "/admin/rewards/<int:reward_id>/edit": {"admin"},
    "/admin/points": {"admin"},
    "/admin/vouchers": {"admin"},
    "/admin/words": {"admin"},
    "/admin/recalls": {"admin"},
    "/admin/recalls/new": {"admin"},
    "/admin/recalls/<int:recall_id>/edit": {"admin"},
    "/admin/campaigns": {"admin"},
    "/admin/campaigns/new": {"admin"},
    "/admin/campaigns/audience": {"admin"},  # the live audience count (htmx; a page of its own without)
    "/admin/campaigns/<int:campaign_id>": {"admin"},
    "/admin/campaigns/<int:campaign_id>/edit": {"admin"},
    "/admin/campaigns/<int:campaign_id>/report": {"admin"},
    "/moderation": {"moderator", "admin"},
    "/moderation/c/<slug>": {"moderator", "admin"},  # the matrix's moderator moderates ev
}


# Rules that answer 404 rather than 403 to signed-in accounts without access: they must not
# reveal that the thing exists.
NOT_FOUND_FOR_OTHERS = {"/events/t/<token>"}


def test_route_table_covers_every_get_route(app):
    """A new page must be added to the matrix above."""
    rules = {
        r.rule for r in app.url_map.iter_rules()
        if "GET" in r.methods and r.endpoint != "static" and not r.rule.startswith("/__")
    }
    assert rules == set(ROUTES)


# Every state-changing route and who may do it. The others are sent to log in (visitors) or
# refused (403; JSON endpoints answer visitors 401); whatever is refused changes nothing. An
# allowed POST does what it does (with the data of `post_data`) or, for the long forms sent
# without their fields, answers the form again with its errors (422): either way it got past
# access.
POST_ROUTES = {
    "/admin/partners": {"admin"},
    "/admin/partners/<int:partner_id>": {"admin"},
    "/admin/partners/<int:partner_id>/staff": {"admin"},
    "/admin/partners/<int:partner_id>/stores": {"admin"},
    "/admin/points": {"admin"},
    "/admin/rewards/<int:reward_id>/edit": {"admin"},
    "/admin/rewards/new": {"admin"},
    "/admin/roles": {"admin"},
    "/admin/roles/<int:grant_id>/revoke": {"admin"},
    "/admin/stores/<int:store_id>/edit": {"admin"},
    "/admin/vouchers/<int:voucher_id>/void": {"admin"},
    "/admin/words": {"admin"},
    "/admin/words/<int:word_id>/delete": {"admin"},
    "/admin/recalls/new": {"admin"},
    "/admin/recalls/<int:recall_id>/edit": {"admin"},
    "/admin/campaigns/new": {"admin"},
    "/admin/campaigns/<int:campaign_id>/edit": {"admin"},
    # The world's draft reaches nobody (a win-back, no member opted in): a send is refused (422).
    "/admin/campaigns/<int:campaign_id>/send": {"admin"},
    "/admin/campaigns/<int:campaign_id>/cancel": {"admin"},  # a draft is not scheduled: refused (422)
    "/auth/forgot": ALL,  # signed-in accounts are sent to change their password
    "/auth/forgot/reset": ALL,
    "/auth/login": ALL,  # signed-in accounts are sent on
    "/auth/login/sms/send": ALL,
    "/auth/login/sms/verify": ALL,
    "/auth/logout": ALL,  # a visitor is simply sent home
    "/auth/password": SIGNED_IN,
    "/auth/phone/send": SIGNED_IN,
    "/auth/phone/verify": SIGNED_IN,
    "/auth/reset/<token>": ALL,  # the e-mailed link is the credential
    "/auth/signup": ALL,
    "/u/<token>": ALL,  # the unsubscribe link's confirm button (no login: the token names the member)
    "/c/<slug>/join": SIGNED_IN,
    "/c/<slug>/leave": SIGNED_IN,
    "/events/<int:event_id>/cancel": SIGNED_IN,  # one's own registration
    "/events/<int:event_id>/cancel-event": {"organizer", "admin"},
    "/events/<int:event_id>/checkin": {"organizer", "admin"},
    "/events/<int:event_id>/checkin/sync": {"organizer", "admin"},
    "/events/<int:event_id>/complete": {"organizer", "admin"},
    "/events/<int:event_id>/edit": {"organizer", "admin"},
    "/events/<int:event_id>/publish": {"organizer", "admin"},
    "/events/<int:event_id>/signup": SIGNED_IN,
    "/events/new": {"organizer", "admin"},
    "/lang": ALL,
    "/me/checkin": SIGNED_IN,
    "/me/garage/new": SIGNED_IN,
    "/me/garage/<int:car_id>/edit": SIGNED_IN,  # one's own car; another's is a 404 (test_garage)
    "/me/garage/<int:car_id>/delete": SIGNED_IN,
    "/me/garage/<int:car_id>/recalls/<int:recall_id>/done": SIGNED_IN,
    "/me/notifications/<int:notification_id>/read": SIGNED_IN,  # one's own; another's is a 404
    "/me/notifications/read-all": SIGNED_IN,
    "/me/notifications/marketing": SIGNED_IN,  # one's own marketing opt-in
    "/me/push/subscriptions": SIGNED_IN,  # JSON: this device's subscription (a form post gets a 422)
    "/me/push/subscriptions/<int:subscription_id>/categories": SIGNED_IN,  # one's own device; another's is a 404
    "/me/push/subscriptions/<int:subscription_id>/delete": SIGNED_IN,
    "/moderation/<any(stories, comments):kind>/<int:target_id>/<any(hide, restore, approve, feature, unfeature):action>":
        {"moderator", "admin"},
    "/moderation/report": SIGNED_IN,
    "/moderation/reports/<int:report_id>/<any(confirm, dismiss):action>": {"moderator", "admin"},
    "/partner/v/<path:code>/use": {"partner", "admin"},
    "/rewards/<int:reward_id>/redeem": SIGNED_IN,
    "/stories/<int:story_id>/comments": SIGNED_IN,
    "/stories/<int:story_id>/delete": set(),  # only the story's author (not one of the matrix's accounts)
    "/stories/<int:story_id>/edit": set(),
    "/stories/<int:story_id>/like": SIGNED_IN,
    "/stories/<int:story_id>/unlike": SIGNED_IN,
    "/stories/comments/<int:comment_id>/delete": set(),  # only the comment's author (moderators hide it)
    "/stories/new": SIGNED_IN,
}
# JSON endpoints answer a visitor 401 (a fetch() must not land on the login page).
JSON_ROUTES = {"/events/<int:event_id>/checkin/sync"}
# Allowed POSTs that change the world for every role allowed (checked inside their case);
# each next case checks it sees the world as built.
CHANGES_THE_WORLD = {
    "/admin/partners/<int:partner_id>", "/admin/points", "/admin/roles/<int:grant_id>/revoke",
    "/admin/stores/<int:store_id>/edit", "/admin/vouchers/<int:voucher_id>/void", "/admin/words",
    "/admin/words/<int:word_id>/delete", "/c/<slug>/join", "/events/<int:event_id>/cancel-event",
    "/events/<int:event_id>/checkin", "/events/<int:event_id>/checkin/sync", "/events/<int:event_id>/signup",
    "/me/checkin", "/me/notifications/<int:notification_id>/read", "/me/notifications/read-all",
    "/me/notifications/marketing",
    "/me/garage/<int:car_id>/delete", "/me/garage/<int:car_id>/recalls/<int:recall_id>/done",
    "/me/push/subscriptions/<int:subscription_id>/categories", "/me/push/subscriptions/<int:subscription_id>/delete",
    "/moderation/<any(stories, comments):kind>/<int:target_id>/<any(hide, restore, approve, feature, unfeature):action>",
    "/moderation/report", "/moderation/reports/<int:report_id>/<any(confirm, dismiss):action>",
    "/partner/v/<path:code>/use", "/stories/<int:story_id>/like",
}


def test_route_table_covers_every_post_route(app):
    """A new form or action must be added to the matrix above."""
    rules = {
        r.rule for r in app.url_map.iter_rules()
        if r.methods & {"POST", "PUT", "PATCH", "DELETE"} and not r.rule.startswith("/__")
    }
    assert rules == set(POST_ROUTES)


@pytest.fixture(scope="class")
def world(app, outer_transaction):
    """One of each thing a parameterised route can point at, and one account per role (each
    owning a voucher of world.partner and a notification), built once for the class."""
    from types import SimpleNamespace

    from models import Comment, ProhibitedWord, Report, Reward, notify
    from models.push import PushSubscription
    from models.garage import CarInput, CarSeries, save_car
    from models.recalls import RecallInput, save_recall
    from datetime import date
    from models.events import SignupInput, signup
    from models.stories import NewPhoto, StoryInput, save_story
    from services.storage import get_storage
    from tests.factories import Factories
    from tests.test_vouchers_pdf import issue_voucher

    with app.app_context():
        factories = Factories(app)
        communities = factories.communities()
        partner = factories.partner("示例洗车")
        reward = Reward(partner_id=partner.id, kind="wash", title="精洗一次", points_price=100, stock=5)
        db.session.add(reward)
        db.session.commit()
        get_storage(app).write("photos/matrix/p.jpg", b"\xff\xd8\xff\xd9")
        writer = factories.user(login="13800009999", verified=True)
        story = save_story(writer, StoryInput(communities["ev"], "矩阵里的故事", "这是一篇用于权限测试的故事。", []),
                           publish=True, new_photos=[NewPhoto("photos/matrix/p.jpg", "photos/matrix/p.jpg", 1, 1)])
        db.session.flush()
        comment = Comment(story_id=story.id, author_id=writer.id, body="自己的评论。")
        report = Report(reporter_id=writer.id, community_id=communities["ev"].id, story_id=story.id, reason="spam")
        word = ProhibitedWord(word="矩阵禁词", action="block")
        db.session.add_all([comment, report, word])
        db.session.commit()
        event = factories.event(community=communities["ev"])
        holder = factories.user()
        ticket = signup(event, holder, SignupInput())
        db.session.commit()
        accounts, vouchers, notes, devices, cars = {}, {}, {}, {}, {}
        han = db.session.scalar(select(CarSeries).where(CarSeries.name == "汉 EV"))
        recall = save_recall(None, RecallInput(number="S2026-0999", make_id=han.make_id, series_id=han.id,
                                               year_from=2020, year_to=2022, defect="矩阵缺陷", remedy="矩阵措施",
                                               announced_on=date(2026, 11, 1)))
        for n, role in enumerate(ROLES[1:]):
            scope = {"partner": partner} if role == "partner" else {}
            # Verified mobile accounts, so pages for members who may post open for every role.
            user = factories.user(login=f"1370000{n:04d}", verified=True, role=None if role == "member" else role,
                                  **scope)
            vouchers[role] = issue_voucher(factories, member=user, partner=partner)
            notes[role] = notify(user, "welcome", {"nickname": user.nickname})
            db.session.commit()
            # A push device, whose address the server refuses at send time (no network is called).
            devices[role] = PushSubscription(user_id=user.id, endpoint=f"https://127.0.0.1/push/{role}",
                                             p256dh="x", auth="x", label="Android · Chrome")
            db.session.add(devices[role])
            db.session.commit()
            cars[role], _warning = save_car(user, CarInput(series_id=han.id, model_year=2021))  # the recall reaches it
            db.session.commit()
            accounts[role] = user.id
        from models.campaigns.audience import Audience
        from models.campaigns.editing import CampaignInput, save_campaign
        from models.nonces import new_nonce

        campaign = save_campaign(db.session.get(User, accounts["admin"]),
                                 CampaignInput(kind="winback", title="矩阵召回", body="矩阵里的召回活动。",
                                               audience=Audience(inactive_days=30)), nonce=new_nonce())
        db.session.commit()
        grant = db.session.scalar(select(RoleGrant).where(RoleGrant.user_id == accounts["moderator"]))
        world = SimpleNamespace(
            partner_id=partner.id, store_id=partner.stores[0].id, reward_id=reward.id, story_id=story.id,
            writer_id=writer.id, comment_id=comment.id, report_id=report.id, word_id=word.id, grant_id=grant.id,
            event_id=event.id, ticket_token=ticket.ticket_token, holder_id=holder.id, accounts=accounts,
            vouchers={role: (v.id, v.code) for role, v in vouchers.items()},
            notes={role: note.id for role, note in notes.items()},
            devices={role: device.id for role, device in devices.items()},
            cars={role: car.id for role, car in cars.items()}, recall_id=recall.id,
            campaign_id=campaign.id,
        )
        db.session.remove()
    world.fingerprint = outer_transaction.fingerprint()
    return world


def example_path(rule: str, world, role: str) -> str:
    """A concrete URL for RULE, pointing at something that exists in WORLD (ROLE's own, where it matters)."""
    voucher_id, code = world.vouchers.get(role, world.vouchers["member"])
    note = world.notes.get(role, world.notes["member"])
    device = world.devices.get(role, world.devices["member"])
    if rule == "/auth/reset/<token>":
        from flask import current_app

        return f"/auth/reset/{db.session.get(User, world.writer_id).reset_token(current_app.config['SECRET_KEY'])}"
    if rule == "/u/<token>":
        from models.sms_rules import unsubscribe_token

        return f"/u/{unsubscribe_token(db.session.get(User, world.writer_id))}"
    if rule == "/r/<token>":
        from models.campaigns import Campaign, CampaignTarget
        from models.campaigns.returns import return_link

        campaign = Campaign(kind="announcement", title="新功能", body="车库上线了", link="/me/garage", channels=[],
                            audience={}, status="sent")
        db.session.add(campaign)
        db.session.flush()
        db.session.add(CampaignTarget(campaign_id=campaign.id, user_id=world.writer_id))
        db.session.flush()
        return return_link(campaign.id, world.writer_id)
    if rule.startswith("/moderation/<any"):
        return f"/moderation/stories/{world.story_id}/hide"
    if rule.startswith("/moderation/reports/"):
        return f"/moderation/reports/{world.report_id}/dismiss"
    path = (rule.replace("<token>", world.ticket_token).replace("<int:event_id>", str(world.event_id))
            .replace("<int:reward_id>", str(world.reward_id)).replace("<path:code>", code).replace("<code>", code)
            .replace("<int:partner_id>", str(world.partner_id)).replace("<int:store_id>", str(world.store_id))
            .replace("<int:story_id>", str(world.story_id)).replace("<int:comment_id>", str(world.comment_id))
            .replace("<int:grant_id>", str(world.grant_id)).replace("<int:word_id>", str(world.word_id))
            .replace("<int:voucher_id>", str(voucher_id)).replace("<int:notification_id>", str(note))
            .replace("<int:subscription_id>", str(device))
            .replace("<int:car_id>", str(world.cars.get(role, world.cars["member"])))
            .replace("<int:recall_id>", str(world.recall_id))
            .replace("<int:campaign_id>", str(world.campaign_id))
            .replace("<slug>", "ev"))
    if rule == "/i/<code>":
        return "/i/1"
    if rule == "/stories/by/<int:user_id>":
        return f"/stories/by/{world.writer_id}"
    if rule == "/media/<path:key>":
        return "/media/photos/matrix/p.jpg"
    return path


def post_data(rule: str, world, role: str) -> dict:
    """What the form of RULE sends (the long forms are sent empty: an allowed role gets their errors)."""
    from models.nonces import new_nonce

    data = {
        "/admin/points": {"member": world.writer_id, "points": 10, "reason": "矩阵测试", "nonce": new_nonce()},
        "/auth/forgot/reset": {"phone": "13800009999", "nonce": new_nonce()},
        "/auth/login/sms/verify": {"phone": "13800009999", "nonce": new_nonce()},
        "/admin/vouchers/<int:voucher_id>/void": {f"v{world.vouchers.get(role, (0,))[0]}-reason": "门店停业"},
        "/events/<int:event_id>/cancel-event": {"message": "因天气取消，抱歉。"},
        "/admin/partners": {"name": "新来的伙伴"},
        "/admin/partners/<int:partner_id>/staff": {"login": "13800009999"},
        "/admin/partners/<int:partner_id>/stores": {"name": "二号店", "city": "上海", "address": "上海市某路 2 号"},
        "/admin/roles": {"login": "13800009999", "role": "moderator", "community": 0, "partner": ""},
        "/admin/words": {"word": "另一个禁词", "action": "block"},
        "/auth/forgot": {"login": "13800009999"},
        "/auth/login": {"login": "13800009999", "password": "Passw0rd-demo"},
        "/auth/login/sms/send": {"phone": "13800009999"},
        "/lang": {"lang": "en"},
        "/moderation/<any(stories, comments):kind>/<int:target_id>/<any(hide, restore, approve, feature, unfeature):action>":
            {"note": "广告"},
        "/moderation/report": {"story_id": world.story_id, "reason": "false_info"},
        "/stories/<int:story_id>/comments": {"body": "说得好，学到了。"},
        "/events/<int:event_id>/signup": {"companions": 0},
        "/events/<int:event_id>/checkin": {"code": world.ticket_token},
        "/me/notifications/marketing": {"opt_in": "1"},
    }
    return data.get(rule, {})


@pytest.mark.usefixtures("outer_transaction")
class TestAccessMatrix:
    """Every route × every role, on one world built once and rolled back after each case."""

    @staticmethod
    def client(app, world, role):
        if role == "visitor":
            return app.test_client()
        return app.test_client(user=db.session.get(User, world.accounts[role]))

    @pytest.mark.parametrize("role", ROLES)
    @pytest.mark.parametrize("rule", sorted(ROUTES))
    def test_get(self, app, world, role, rule):
        path = example_path(rule, world, role)
        response = self.client(app, world, role).get(path)
        allowed = role in ROUTES[rule]
        if allowed:
            assert response.status_code in (200, 302), f"{role} should open {path}"
            if response.status_code == 302:
                assert "/auth/login" not in response.headers["Location"]
        elif role == "visitor":
            assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
        elif rule in NOT_FOUND_FOR_OTHERS:
            assert response.status_code == 404
        else:
            assert response.status_code == 403
            assert "无权访问" in response.get_data(as_text=True) or "没有" in response.get_data(as_text=True)

    @pytest.mark.parametrize("role", ROLES)
    @pytest.mark.parametrize("rule", sorted(POST_ROUTES))
    def test_post(self, app, world, outer_transaction, role, rule):
        # What the previous cases did (voided, deleted, revoked, cancelled…) was rolled back.
        assert outer_transaction.fingerprint() == world.fingerprint, "a previous case changed the world"
        path = example_path(rule, world, role)
        client = self.client(app, world, role)
        if rule in JSON_ROUTES:
            from blueprints.events.checkin import checkin_key

            user = db.session.get(User, world.accounts[role]) if role != "visitor" else None
            headers = {"X-Checkin-Key": checkin_key(world.event_id, user)} if user else {}
            response = client.post(path, json={"checkins": [{"id": "scan-1", "ticket": world.ticket_token,
                                                             "scanned_at": "2026-01-01T00:00:00Z"}]}, headers=headers)
        else:
            response = client.post(path, data=post_data(rule, world, role))
        where = f"{role} POST {path}: {response.status_code} {response.headers.get('Location', '')}"
        to_login = response.status_code == 302 and "/auth/login" in response.headers["Location"]
        if role in POST_ROUTES[rule]:
            assert response.status_code in (200, 204, 302, 303, 422) and not to_login, where
            changed = outer_transaction.fingerprint() != world.fingerprint
            assert changed or rule not in CHANGES_THE_WORLD, f"{where}: allowed, yet nothing changed"
        elif role == "visitor" and rule in JSON_ROUTES:
            assert response.status_code == 401, where
        elif role == "visitor":
            assert to_login, where
        else:
            assert response.status_code == 403, where
        if role not in POST_ROUTES[rule]:
            assert outer_transaction.fingerprint() == world.fingerprint, f"{where}: refused, yet something changed"

    # The eager job runner works inside the case too: what a job writes goes with the case.
    # (These two run in this order, after the matrix.)

    def test_a_job_run_after_a_commit_writes_inside_the_case(self, app, world):
        from models import Event, JobRow, Notification

        organizer = db.session.get(User, world.accounts["organizer"])
        response = app.test_client(user=organizer).post(f"/events/{world.event_id}/cancel-event",
                                                        data={"message": "因天气取消，抱歉。"})
        assert response.status_code in (302, 303)
        job = db.session.scalar(select(JobRow).where(JobRow.name == "services.tasks.settle_cancelled_event"))
        assert job.status == "done"  # run by the eager runner, after the request's commit
        assert db.session.get(Event, world.event_id).status == "cancelled"
        assert db.session.scalar(select(Notification).where(Notification.user_id == world.holder_id,
                                                            Notification.kind == "event_cancelled")) is not None

    def test_the_next_case_sees_neither_the_change_nor_the_job(self, world, outer_transaction):
        from models import Event, JobRow, Notification

        assert db.session.get(Event, world.event_id).status == "published"
        assert db.session.scalar(select(JobRow).where(JobRow.name == "services.tasks.settle_cancelled_event")) is None
        assert db.session.scalar(select(Notification).where(Notification.kind == "event_cancelled")) is None
        assert outer_transaction.fingerprint() == world.fingerprint
        assert outer_transaction.committed_rows() == {}  # and nothing ever reached the database for real


def test_htmx_call_without_login_gets_401_and_a_redirect_header(client, communities):
    response = client.post("/c/ev/join", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/auth/login")


def test_scoped_roles_only_count_in_their_scope(factories, communities):
    organizer = factories.user(role="organizer", community=communities["ev"])
    assert organizer.has_role("organizer", community=communities["ev"])
    assert not organizer.has_role("organizer", community=communities["women"])
    assert not organizer.has_role("moderator")
    admin = factories.user(role="admin")
    assert admin.has_role("organizer", community=communities["women"])
    staff = factories.user(role="partner")
    other = factories.partner("别家洗车")
    assert staff.has_role("partner", partner=staff.partner_ids()[0])
    assert not staff.has_role("partner", partner=other)


def test_one_account_may_hold_several_roles(factories, communities):
    user = factories.user(role="organizer", community=communities["ev"])
    user.grant("moderator", community=communities["women"])
    user.grant("organizer", community=communities["ev"])  # repeat is harmless
    db.session.commit()
    assert sorted((g.role, g.community.slug) for g in user.grants) == [("moderator", "women"), ("organizer", "ev")]


def test_users_create_cli(runner, communities):
    result = runner.invoke(args=["users", "create", "13600000000", "--password", "Abcdef123"])
    assert result.exit_code == 0, result.output
    member = User.find_by_login("13600000000")
    assert member.check_password("Abcdef123") and member.grants == []

    result = runner.invoke(args=["users", "create", "org@example.com", "--password", "Abcdef123",
                                 "--role", "organizer", "--community", "modding"])
    assert result.exit_code == 0, result.output
    organizer = User.find_by_login("org@example.com")
    assert organizer.has_role("organizer", community=communities["modding"])

    result = runner.invoke(args=["users", "create", "staff@example.com", "--password", "Abcdef123",
                                 "--role", "partner", "--partner", "新店洗车"])
    assert result.exit_code == 0, result.output
    partner = db.session.scalar(select(Partner).where(Partner.name == "新店洗车"))
    assert User.find_by_login("staff@example.com").has_role("partner", partner=partner)

    result = runner.invoke(args=["users", "create", "boss@example.com", "--password", "Abcdef123", "--role", "admin"])
    assert result.exit_code == 0 and User.find_by_login("boss@example.com").is_admin


@pytest.mark.parametrize(
    "args, message",
    [
        (["users", "create", "12345", "--password", "x"], "mobile"),
        (["users", "create", "a@example.com", "--password", "x", "--role", "organizer"], "--community"),
        (["users", "create", "a@example.com", "--password", "x", "--role", "organizer", "--community", "nope"], "nope"),
        (["users", "create", "a@example.com", "--password", "x", "--role", "partner"], "--partner"),
    ],
)
def test_users_create_cli_refuses_bad_input(runner, communities, args, message):
    result = runner.invoke(args=args)
    assert result.exit_code != 0
    assert message in result.output
    assert db.session.scalar(select(User)) is None


def test_users_create_refuses_a_taken_login(runner, factories):
    factories.user(login="a@example.com")
    result = runner.invoke(args=["users", "create", "A@example.com", "--password", "x"])
    assert result.exit_code != 0 and "already exists" in result.output


def test_admin_grants_and_revokes_roles_through_the_audit_log(app, factories, communities):
    admin = factories.user(role="admin", nickname="站长")
    member = factories.user(login="member@example.com", nickname="小王")
    client = app.test_client(user=admin)
    response = client.post("/admin/roles", data={"login": "member@example.com", "role": "moderator",
                                                 "community": communities["women"].id, "partner": ""})
    assert response.status_code == 302
    member = db.session.get(User, member.id)
    assert member.has_role("moderator", community=communities["women"])
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "role.grant", AuditEntry.target_id == str(member.id)))
    assert entry.actor_id == admin.id and entry.after["role"] == "moderator"
    note = db.session.scalar(select(Notification).where(Notification.user_id == member.id, Notification.kind == "role_granted"))
    member_client = app.test_client(user=member)
    assert "版主" in member_client.get("/me/notifications").get_data(as_text=True)
    assert note is not None

    grant = db.session.scalar(select(RoleGrant).where(RoleGrant.user_id == member.id))
    assert client.post(f"/admin/roles/{grant.id}/revoke").status_code == 302
    db.session.expire_all()
    assert not db.session.get(User, member.id).has_role("moderator")
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "role.revoke")) is not None
    assert "站长" in client.get("/admin/audit").get_data(as_text=True)


def test_admin_grant_form_explains_a_missing_scope_and_keeps_input(app, factories, communities):
    admin = factories.user(role="admin")
    factories.user(login="member@example.com")
    client = app.test_client(user=admin)
    response = client.post("/admin/roles", data={"login": "member@example.com", "role": "organizer", "community": 0})
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert 'value="member@example.com"' in body
    response = client.post("/admin/roles", data={"login": "nobody@example.com", "role": "admin", "community": 0})
    assert response.status_code == 422


def test_audit_log_is_append_only(factories):
    from models import audit

    admin = factories.user(role="admin")
    entry = audit(admin, "test.action", admin, before={"a": 1}, after={"a": 2})
    db.session.commit()
    entry.action = "changed"
    with pytest.raises(RuntimeError, match="append-only"):
        db.session.commit()
    db.session.rollback()
    with pytest.raises(RuntimeError, match="append-only"):
        db.session.delete(db.session.get(AuditEntry, entry.id))
        db.session.commit()
    db.session.rollback()


# -- a story in each state × every role × its pages and the POSTs on it -----------------------
# Drafts are their author's alone (moderators and admins included: 404). A story under review or
# hidden is seen by its author and by the moderators of its community (admins hold every role);
# a deleted one by nobody. Likes, comments and reports go only to published stories; editing and
# deleting only to the author. Whatever is refused changes nothing and pays nothing.

STORY_ROLES = ["visitor", "member", "author", "organizer", "moderator", "other_moderator", "partner", "admin"]
STORY_STATES = ["published", "draft", "review", "hidden", "deleted"]
STORY_ACTIONS = ["show", "edit_page", "like", "unlike", "comment", "report", "edit", "delete"]
SEEN_BY = {
    "published": set(STORY_ROLES),
    "draft": {"author"},
    "review": {"author", "moderator", "admin"},
    "hidden": {"author", "moderator", "admin"},
    "deleted": set(),
}
STORY_BODY = "提车三个月，电池健康度还是 98%，冬天续航掉了两成。"


def expected_for(state: str, role: str, action: str):
    """The status code ROLE gets for ACTION on a story in STATE ("login": sent to log in first)."""
    sees = role in SEEN_BY[state]
    if action == "show":
        return 200 if sees else 404
    if role == "visitor":
        return "login"
    if not sees:
        return 404
    if action in ("edit_page", "edit", "delete"):
        if role != "author":
            return 403
        if action == "edit_page":
            return 200
        return 422 if (action, state) == ("edit", "hidden") else 302  # a hidden story can no longer be edited
    if state != "published":
        return 404
    if (action, role) == ("report", "author"):
        return 422  # one's own story
    return 302


def form_fields(html: str, action: str) -> dict:
    """The hidden inputs of the form posting to ACTION on the page (its CSRF token, its nonce)."""
    from html.parser import HTMLParser

    class Forms(HTMLParser):
        def __init__(self):
            super().__init__()
            self.inside, self.fields = False, {}

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "form":
                self.inside = attrs.get("action") == action and not self.fields
            elif tag == "input" and self.inside and attrs.get("type") == "hidden" and attrs.get("name"):
                self.fields[attrs["name"]] = attrs.get("value") or ""

        def handle_endtag(self, tag):
            if tag == "form":
                self.inside = False

    parser = Forms()
    parser.feed(html)
    return parser.fields


@pytest.fixture
def story_in(factories, communities):
    """A story of `author` in the ev community, in STATE (rows written directly)."""
    from models import Story
    from models.types import utcnow

    def make(state: str, author) -> Story:
        now = utcnow()
        story = Story(author_id=author.id, community_id=communities["ev"].id, title="矩阵里的故事",
                      body=STORY_BODY, body_html=f"<p>{STORY_BODY}</p>", tags=[], status=state, created_at=now,
                      updated_at=now, published_at=None if state == "draft" else now,
                      hidden_at=now if state == "hidden" else None, hidden_note="广告" if state == "hidden" else None)
        db.session.add(story)
        db.session.commit()
        return story

    return make


def account_for(factories, communities, role: str):
    login = f"136{next(_phones):08d}"
    if role == "member":
        return factories.user(login=login, verified=True)
    if role == "other_moderator":
        return factories.user(login=login, verified=True, role="moderator", community=communities["women"])
    return factories.user(login=login, verified=True, role=role)  # organizer and moderator run ev


def story_snapshot(story) -> tuple:
    """What a refused action must leave as it was: the story, its likes, comments, reports, the author's points."""
    from sqlalchemy import func

    from models import Comment, PointsPosting, Report, Story
    from models.engagement import StoryLike

    db.session.expire_all()
    row = db.session.get(Story, story.id)
    count = lambda model, column: db.session.scalar(  # noqa: E731
        select(func.count()).select_from(model).where(column == story.id))
    postings = db.session.scalar(select(func.count()).select_from(PointsPosting)
                                 .where(PointsPosting.user_id == story.author_id))
    return (row.status, row.title, row.updated_at, count(StoryLike, StoryLike.story_id),
            count(Comment, Comment.story_id), count(Report, Report.story_id), postings)


@pytest.mark.usefixtures("outer_transaction")
class TestStoryMatrix:
    """Each case makes its own story and accounts inside a savepoint rolled back after it."""

    @pytest.mark.parametrize("action", STORY_ACTIONS)
    @pytest.mark.parametrize("role", STORY_ROLES)
    @pytest.mark.parametrize("state", STORY_STATES)
    def test_story_matrix(self, app, factories, communities, story_in, state, role, action):
        author = factories.user(login=f"135{next(_phones):08d}", nickname="作者", verified=True)
        story = story_in(state, author)
        user = author if role == "author" else None if role == "visitor" else account_for(factories, communities, role)
        client = app.test_client(user=user) if user else app.test_client()
        base = f"/stories/{story.id}"
        before = story_snapshot(story)

        if action == "show":
            response = client.get(base)
        elif action == "edit_page":
            response = client.get(f"{base}/edit")
        elif action == "edit":
            page = client.get(f"{base}/edit")
            data = form_fields(page.get_data(as_text=True), f"{base}/edit") if page.status_code == 200 else {}
            response = client.post(f"{base}/edit", data={
                **data, "community": communities["ev"].id, "title": "改过的标题", "body": STORY_BODY,
                "action": "draft" if state == "draft" else "publish"})
        elif action == "comment":
            page = client.get(base)
            data = form_fields(page.get_data(as_text=True), f"{base}/comments") if page.status_code == 200 else {}
            response = client.post(f"{base}/comments", data={**data, "body": "说得好，学到了。"})
        elif action == "report":
            response = client.post("/moderation/report", data={"story_id": story.id, "reason": "false_info"})
        else:  # like, unlike, delete
            response = client.post(f"{base}/{action}")

        expected = expected_for(state, role, action)
        where = f"{role} {action} on a {state} story"
        if expected == "login":
            assert response.status_code == 302 and "/auth/login" in response.headers["Location"], where
        else:
            assert response.status_code == expected, where
            if expected == 302:
                assert "/auth/login" not in response.headers["Location"], where
        if expected != 302 and action not in ("show", "edit_page"):
            assert story_snapshot(story) == before, f"{where}: refused, yet something changed"
        if action == "like" and state != "published":
            from models.loyalty import PointsPosting

            assert db.session.scalar(select(PointsPosting).where(PointsPosting.rule == "like_received")) is None, where


def test_a_member_without_a_role_costs_no_role_query_and_a_new_role_shows_at_once(app, factories, login_as):
    """The session's user loader asks whether the member holds any role in its one query: for
    most members no role query follows. A role granted meanwhile shows on the next page."""
    from sqlalchemy import event

    factories.communities()
    member = factories.user(verified=True)
    client = login_as(member)
    statements = []

    def log(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", log)
    try:
        for path in ("/events", "/me", "/c/ev", "/"):
            assert client.get(path).status_code == 200
        members_roles = [s for s in statements if s.lstrip().startswith("SELECT role_grants")
                         and re.search(r"WHERE \S+ = role_grants\.user_id", s)]  # not the community page's list of its staff
        assert not members_roles, members_roles
        assert client.get("/admin").status_code in (302, 403)

        db.session.get(User, member.id).grant("admin")  # as another administrator would
        db.session.commit()
        assert client.get("/admin").status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", log)
