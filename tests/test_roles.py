"""Roles as data, checked in one place: every route × every role, plus the CLI and admin grants."""
from __future__ import annotations

import itertools

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
    "/me": SIGNED_IN,
    "/me/notifications": SIGNED_IN,
    "/me/unread-badge": SIGNED_IN,
    "/me/points": SIGNED_IN,
    "/me/invite-poster.png": SIGNED_IN,
    "/me/vouchers": SIGNED_IN,
    "/me/vouchers/<code>": SIGNED_IN,  # the member's own voucher; another's is a 404 (test_member_vouchers)
    "/me/vouchers/<code>.pdf": SIGNED_IN,
    "/me/tickets": SIGNED_IN,
    "/me/garage": SIGNED_IN,
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


@pytest.fixture
def world(factories, communities):
    """One of each thing a parameterised route can point at."""
    from types import SimpleNamespace

    from models import Reward

    partner = factories.partner("示例洗车")
    reward = Reward(partner_id=partner.id, kind="wash", title="精洗一次", points_price=100, stock=5)
    db.session.add(reward)
    db.session.commit()
    from tests.test_vouchers_pdf import issue_voucher

    from models.stories import NewPhoto, StoryInput, save_story
    from services.storage import get_storage

    get_storage(factories.app).write("photos/matrix/p.jpg", b"\xff\xd8\xff\xd9")
    writer = factories.user(login="13800009999", verified=True)
    story = save_story(writer, StoryInput(communities["ev"], "矩阵里的故事", "这是一篇用于权限测试的故事。", []),
                       publish=True, new_photos=[NewPhoto("photos/matrix/p.jpg", "photos/matrix/p.jpg", 1, 1)])
    db.session.commit()
    world = SimpleNamespace(communities=communities, partner=partner, reward=reward, story=story,
                            voucher=issue_voucher(factories, partner=partner),
                            event=factories.event(community=communities["ev"]))
    from models.events import SignupInput, signup

    world.ticket = signup(world.event, factories.user(), SignupInput())
    db.session.commit()
    # Voucher pages show only one's own voucher: the account made next (by `client_for`) gets
    # one of world.partner, issued the real way (so `points verify` finds its payment).
    make_user = factories.user

    def user_owning_a_voucher(*args, **kwargs):
        user = make_user(*args, **kwargs)
        world.voucher = issue_voucher(factories, member=user, partner=partner)
        return user

    factories.user = user_owning_a_voucher
    return world


def example_path(rule: str, world) -> str:
    """A concrete URL for RULE, pointing at something that exists in WORLD."""
    examples = {
        "/i/<code>": lambda: "/i/1",
        "/rewards/<int:reward_id>": lambda: f"/rewards/{world.reward.id}",
        "/rewards/<int:reward_id>/confirm": lambda: f"/rewards/{world.reward.id}/confirm",
        "/me/vouchers/<code>": lambda: f"/me/vouchers/{world.voucher.code}",
        "/me/vouchers/<code>.pdf": lambda: f"/me/vouchers/{world.voucher.code}.pdf",
        "/partner/v/<path:code>": lambda: f"/partner/v/{world.voucher.code}",
        "/admin/partners/<int:partner_id>": lambda: f"/admin/partners/{world.partner.id}",
        "/admin/stores/<int:store_id>/edit": lambda: f"/admin/stores/{world.partner.stores[0].id}/edit",
        "/admin/rewards/<int:reward_id>/edit": lambda: f"/admin/rewards/{world.reward.id}/edit",
        "/stories/<int:story_id>": lambda: f"/stories/{world.story.id}",
        "/stories/by/<int:user_id>": lambda: f"/stories/by/{world.story.author_id}",
        "/stories/<int:story_id>/edit": lambda: f"/stories/{world.story.id}/edit",
        "/media/<path:key>": lambda: "/media/photos/matrix/p.jpg",
    }
    if rule == "/auth/reset/<token>":
        from flask import current_app

        return f"/auth/reset/{db.session.get(User, world.story.author_id).reset_token(current_app.config['SECRET_KEY'])}"
    if rule == "/events/t/<token>":
        return f"/events/t/{world.ticket.ticket_token}"
    if "<int:event_id>" in rule:
        return rule.replace("<int:event_id>", str(world.event.id))
    if rule in examples:
        return examples[rule]()
    return rule.replace("<slug>", "ev")


@pytest.fixture
def client_for(app, factories, world):
    def make(role):
        if role == "visitor":
            return app.test_client()
        # The matrix's partner staff work for world.partner, so its voucher is theirs to validate.
        scope = {"partner": world.partner} if role == "partner" else {}
        # Verified mobile accounts, so pages for members who may post open for every role.
        login = f"137{next(_phones):08d}"
        return app.test_client(user=factories.user(login=login, verified=True,
                                                   role=None if role == "member" else role, **scope))

    return make


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("rule", sorted(ROUTES))
def test_access_matrix(client_for, world, role, rule):
    client = client_for(role)  # first: the account it makes gets world.voucher
    path = example_path(rule, world)
    response = client.get(path)
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


@pytest.mark.parametrize("action", STORY_ACTIONS)
@pytest.mark.parametrize("role", STORY_ROLES)
@pytest.mark.parametrize("state", STORY_STATES)
def test_story_matrix(app, factories, communities, story_in, state, role, action):
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
        from models.points import PointsPosting

        assert db.session.scalar(select(PointsPosting).where(PointsPosting.rule == "like_received")) is None, where
