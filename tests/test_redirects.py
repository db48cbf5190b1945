"""No open redirect: a `next` (or a Referer) that a browser would follow to another host,
however it is disguised, sends the member to our own default page instead, and never a 500."""
from __future__ import annotations

from urllib.parse import unquote, urljoin, urlsplit

import pytest

from blueprints.access import safe_path
from models import db
from models import moderation as rules
from models.nonces import new_nonce
from models.stories import StoryInput, save_story
from tests.factories import PASSWORD

HOST = "localhost"

# Each of these leads a browser (or a proxy that decodes first) to evil.example, or is not a
# path on this site at all.
HOSTILE = [
    "//evil.example/", "///evil.example/", "////evil.example/", "/\\evil.example/", "\\\\evil.example/",
    "/\\/evil.example/", "\\/evil.example/", "/\t/evil.example/", "/\n/evil.example/", "/\r/evil.example/",
    "/\r\n/evil.example/", "\t//evil.example/", "/\x00/evil.example/", "\x01//evil.example/", "/\x7f/evil.example/",
    " //evil.example/", "  /\\evil.example/", "\u3000//evil.example/", "\u00a0//evil.example/",
    "\u2028//evil.example/", "/\u200b/evil.example/", "/\u202e/evil.example/", "\ufeff//evil.example/",
    "https://evil.example/", "HTTPS://evil.example/", "https:evil.example", "http:/evil.example",
    "https:/\\evil.example", "javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:alert(1)",
    "java\tscript:alert(1)", "data:text/html,<script>alert(1)</script>", "evil.example", "@evil.example",
    "/%2F%2Fevil.example", "/%2f%2fevil.example", "%2F%2Fevil.example", "/%2F/evil.example",
    "/%5Cevil.example", "/%5C%5Cevil.example", "%5C%5Cevil.example", "/%09/evil.example", "/%0A/evil.example",
    "/%0d%0a/evil.example", "/%00/evil.example", "/%252F%252Fevil.example",
    "/%25252F%25252Fevil.example", "/%2525252F%2525252Fevil.example", "%20//evil.example",
]

# Our own pages, as the app writes them into `next`: they must keep working.
LOCAL = ["/", "/communities", "/communities?sort=hot&cursor=abc", "/c/ev#comments", "/me/points?before=8",
         "/stories/search?q=%E7%94%B5%E6%B1%A0", "/stories/search?q=电池", "/stories/search?q=a%2Fb",
         "/stories/search?q=%5C", "/events?community=ev&month=2026-12"]


def lands_on_this_host(location: str) -> bool:
    """Resolve LOCATION as a browser would from one of our pages, and again after each
    percent-decoding (as a decoding proxy would): every reading stays on this host."""
    for _ in range(6):
        read = "".join(ch for ch in location if ch not in "\t\n\r").lstrip("".join(map(chr, range(33))))
        read = read.replace("\\", "/")
        if read.startswith("//"):  # for http(s) a browser reads any run of slashes as `//`
            read = "//" + read.lstrip("/")
        resolved = urlsplit(urljoin(f"http://{HOST}/page", read))
        if resolved.scheme != "http" or resolved.hostname != HOST:
            return False
        decoded = unquote(location)
        if decoded == location:
            return True
        location = decoded
    return False


@pytest.mark.parametrize("value", HOSTILE)
def test_safe_path_refuses_anything_that_leaves_the_site(app, value):
    assert safe_path(value, "/fallback") == "/fallback"


@pytest.mark.parametrize("value", LOCAL)
def test_safe_path_keeps_our_own_paths(app, value):
    assert safe_path(value, "/fallback") == value


def test_safe_path_cleans_what_it_keeps(app):
    assert safe_path("  /communities", "/fallback") == "/communities"
    assert safe_path("/commu\tnities", "/fallback") == "/communities"
    assert safe_path("/c/ev\\x", "/fallback") == "/c/ev/x"
    assert safe_path("", "/fallback") == safe_path(None, "/fallback") == "/fallback"


def assert_redirects_home(response, default: str):
    assert response.status_code in (302, 303), response.status_code
    location = response.headers["Location"]
    assert lands_on_this_host(location), location
    assert location == default, location


@pytest.mark.parametrize("value", HOSTILE)
def test_language_switch_never_leaves_the_site(client, communities, value):
    response = client.post("/lang", data={"lang": "en", "next": value})
    assert_redirects_home(response, "/")
    # ...while our own pages, query string included, still come back after the switch.
    for local in LOCAL:
        response = client.post("/lang", data={"lang": "en", "next": local})
        assert response.status_code == 302 and lands_on_this_host(response.headers["Location"])
        assert unquote(response.headers["Location"]) == unquote(local)


@pytest.fixture
def report(factories, communities):
    author = factories.user(login="13900005555", nickname="被举报", verified=True)
    story = save_story(author, StoryInput(communities["ev"], "冬天的续航", "提车三个月，电池健康度还是 98%。", []),
                       publish=True, nonce=new_nonce())
    row, _created = rules.file_report(factories.user(), story, "false_info", "")
    db.session.commit()
    return row


def test_moderation_never_sends_a_moderator_off_the_site(login_as, factories, communities, report):
    client = login_as(factories.user(role="moderator", community=communities["ev"]))
    for value in HOSTILE:
        response = client.post(f"/moderation/reports/{report.id}/dismiss", data={"next": value})
        assert_redirects_home(response, "/moderation/c/ev")
    response = client.post(f"/moderation/reports/{report.id}/dismiss", data={"next": "/c/ev?sort=hot"})
    assert response.headers["Location"] == "/c/ev?sort=hot"


def test_login_never_sends_a_member_off_the_site(client, factories):
    factories.user(login="13900006666")
    for value in HOSTILE:
        response = client.post("/auth/login", query_string={"next": value},
                               data={"login": "13900006666", "password": PASSWORD})
        assert_redirects_home(response, "/")
        # Already signed in: the login page sends the member on at once, with the same check.
        assert_redirects_home(client.get("/auth/login", query_string={"next": value}), "/")
        client.post("/auth/logout")
    # A page behind login still comes back after logging in (the next= Flask-Login builds).
    response = client.get("/me/points?before=8")
    login_url = response.headers["Location"]
    assert response.status_code == 302 and urlsplit(login_url).path == "/auth/login"
    response = client.post(login_url, data={"login": "13900006666", "password": PASSWORD})
    assert response.headers["Location"] == "/me/points?before=8"


def test_join_and_check_in_without_javascript_go_back_only_to_our_pages(login_as, factories, communities):
    client = login_as(factories.user())
    for referer in ["https://evil.example/", "https://evil.example/me", f"http://{HOST}.evil.example/me",
                    f"http://evil.example/{HOST}/me", "javascript:alert(1)"]:
        response = client.post("/c/ev/join", headers={"Referer": referer})
        assert_redirects_home(response, "/c/ev")
        response = client.post("/me/checkin", headers={"Referer": referer})
        assert_redirects_home(response, "/me/points")
    assert client.post("/c/ev/leave", headers={"Referer": f"http://{HOST}/communities"}).headers["Location"] == "/communities"
    assert client.post("/c/ev/leave", data={"next": "/\t/evil.example/"}).headers["Location"] == "/c/ev"
    assert client.post("/me/checkin", headers={"Referer": f"http://{HOST}/me"}).headers["Location"] == "/me"
