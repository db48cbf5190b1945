"""Communities: pages, join and leave in place, the home page."""
from __future__ import annotations

from sqlalchemy import event, func, select

from models import Membership, db


def test_community_page_shows_its_description_and_staff(client, factories, communities):
    factories.user(role="organizer", community=communities["ev"], nickname="老陈组局")
    body = client.get("/c/ev").get_data(as_text=True)
    assert "新能源车主" in body and "电池" in body
    assert "老陈组局" in body
    assert "theme-green" in body


def test_unknown_community_is_a_friendly_404(client, communities):
    response = client.get("/c/nope")
    assert response.status_code == 404
    assert "页面不存在" in response.get_data(as_text=True)


def test_join_with_htmx_returns_only_the_button(login_as, factories, communities):
    member = factories.user()
    client = login_as(member)
    response = client.post("/c/women/join", headers={"HX-Request": "true"})
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<div class="join" id="join-women">')
    assert "<html" not in body
    assert "已加入" in body and "1 位" in body
    assert "HX-Request" in response.headers["Vary"]
    assert db.session.scalar(select(func.count()).select_from(Membership)) == 1

    again = client.post("/c/women/join", headers={"HX-Request": "true"})
    assert again.status_code == 200, "joining twice is harmless"
    assert db.session.scalar(select(func.count()).select_from(Membership)) == 1

    left = client.post("/c/women/leave", headers={"HX-Request": "true"})
    assert "加入" in left.get_data(as_text=True) and "0 位" in left.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Membership)) == 0


def test_join_without_javascript_redirects_back(login_as, factories, communities):
    client = login_as(factories.user())
    response = client.post("/c/ev/join", headers={"Referer": "http://localhost/communities"})
    assert response.status_code == 302 and response.headers["Location"] == "/communities"  # the path, on this host
    response = client.post("/c/ev/leave", headers={"Referer": "http://evil.example/"})
    assert response.headers["Location"] == "/c/ev"


def test_home_shows_the_members_communities_first(login_as, factories, communities):
    member = factories.user(nickname="小周")
    communities["modding"].join(member)
    db.session.commit()
    body = login_as(member).get("/").get_data(as_text=True)
    mine, _, discover = body.partition("发现")
    assert "改装部落" in mine and "新能源车主" not in mine
    assert "新能源车主" in discover


def test_visitors_see_every_community(client, communities):
    body = client.get("/").get_data(as_text=True)
    for name in ("新能源车主", "她车社", "改装部落", "新手车友帮"):
        assert name in body


def test_community_pages_run_a_constant_number_of_queries(login_as, factories, communities, count_queries):
    viewer = factories.user(role="organizer", community=communities["ev"])
    client = login_as(viewer)

    def queries_for(path):
        with count_queries() as counter:
            assert client.get(path).status_code == 200
        return counter["n"]

    few = {p: queries_for(p) for p in ("/", "/communities", "/c/ev")}
    for i in range(30):
        member = factories.user(role="moderator" if i % 10 == 0 else None, community=communities["ev"])
        communities["ev"].join(member)
        communities["women"].join(member)
    db.session.commit()
    many = {p: queries_for(p) for p in ("/", "/communities", "/c/ev")}
    assert many == few


def test_a_member_joins_every_community_one_after_another(login_as, factories, communities):
    """Membership is asked of the community, not of a number that happens to match the member's
    id: the first member (id 1) who joined ev (id 1) could join nothing else, and every other
    community's page said 已加入."""
    member = factories.user()
    joined = [communities[slug].join(member) for slug in ("ev", "women", "modding", "newcomers")]
    db.session.commit()
    assert joined == [True, True, True, True]
    assert db.session.scalar(select(func.count()).select_from(Membership).where(Membership.user_id == member.id)) == 4

    newcomer = factories.user()
    communities["ev"].join(newcomer)
    db.session.commit()
    client = login_as(newcomer)
    assert 'action="/c/ev/leave"' in client.get("/c/ev").get_data(as_text=True)
    for slug in ("women", "modding", "newcomers"):
        assert communities[slug].has_member(newcomer) is False
        assert f'action="/c/{slug}/join"' in client.get(f"/c/{slug}").get_data(as_text=True)


def test_member_counters_follow_joins_and_leaves_and_verify_against_the_rows(factories, communities, runner):
    """The counter a page shows is the memberships' number, kept in the transaction that joins
    or leaves; `flask communities verify` finds a counter that drifted from the rows."""
    members = [factories.user() for _ in range(3)]
    for member in members:
        communities["ev"].join(member)
        communities["ev"].join(member)  # a repeat counts nothing
    communities["women"].join(members[0])
    communities["ev"].leave(members[1])
    communities["ev"].leave(members[1])  # nor does leaving twice
    db.session.commit()
    assert communities["ev"].member_count() == 2 and communities["women"].member_count() == 1
    assert communities["modding"].member_count() == 0
    result = runner.invoke(args=["communities", "verify"])
    assert result.exit_code == 0 and "0 mismatches" in result.output

    db.session.execute(Membership.__table__.delete().where(Membership.user_id == members[0].id))
    db.session.commit()
    result = runner.invoke(args=["communities", "verify"])
    assert result.exit_code == 1
    assert "ev: counter 2, memberships 1" in result.output and "women: counter 1, memberships 0" in result.output


def test_the_home_and_community_list_read_the_counters_without_counting_memberships(login_as, factories, communities):
    member = factories.user()
    for slug in ("ev", "women"):
        communities[slug].join(member)
    db.session.commit()
    client = login_as(member)
    client.get("/")  # the first request of a session records the day
    statements = []

    def seen(_conn, _cursor, statement, *_rest):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", seen)
    try:
        for path in ("/", "/communities"):
            assert "1 位" in client.get(path).get_data(as_text=True)
    finally:
        event.remove(db.engine, "before_cursor_execute", seen)
    assert not [s for s in statements if "count(" in s.lower() and "memberships" in s], statements


def test_a_cached_community_card_carries_each_members_own_token_and_follows_joins(
        app, login_as, factories, communities, csrf_on):
    """Community cards are rendered once per process (blueprints/fragments.py): each member's
    join form still holds their own CSRF token (a join from it works), and a join shows at once."""
    import re

    alice, bob = login_as(factories.user(nickname="阿丽")), login_as(factories.user(nickname="小周"))

    def card(client, slug="women"):
        page = client.get("/").get_data(as_text=True)
        header_token = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
        html = re.search(rf'<article class="community-card[^>]*>(?:(?!</article>).)*id="join-{slug}".*?</article>', page, re.S).group(0)
        return html, header_token

    first, _ = card(alice)
    bobs, bob_header = card(bob)
    assert app.extensions["fragments"].hits >= 1, "the second member's page reused the rendered card"
    form_token = re.search(r'name="csrf_token" value="([^"]+)"', bobs).group(1)
    assert "\x00" not in bobs and form_token == bob_header, "Bob's form carries Bob's token"
    assert "0 位" in bobs and "加入" in bobs

    joined = bob.post("/c/women/join", data={"csrf_token": form_token})
    assert joined.status_code in (302, 303), "the token from the cached card is accepted"
    again, _ = card(bob)
    assert "已加入" in again and "1 位" in again
    assert "1 位" in card(alice)[0] and "已加入" not in card(alice)[0]
