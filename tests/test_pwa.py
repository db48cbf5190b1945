"""Installable app: manifest, icons, service worker, offline page and cache headers."""
from __future__ import annotations

import io
import json
import re
import uuid
from pathlib import Path

from PIL import Image

from tests.html import assert_no_inline_code


def _manifest(client):
    response = client.get("/manifest.webmanifest")
    assert response.status_code == 200
    return response, json.loads(response.get_data(as_text=True))


def _precache(body: str) -> list[str]:
    match = re.search(r"const PRECACHE = (\[.*?\]);", body)
    assert match, "the service worker declares its precache list"
    return json.loads(match.group(1))


def _sw_version(body: str) -> str:
    match = re.search(r'const VERSION = "([^"]+)";', body)
    assert match, "the service worker declares its version"
    return match.group(1)


# --- manifest -------------------------------------------------------------------------------


def test_manifest_is_served_as_a_web_manifest(client):
    response, _data = _manifest(client)
    assert response.mimetype == "application/manifest+json"


def test_manifest_describes_an_installable_chinese_app(client):
    _response, data = _manifest(client)
    assert data["name"]
    assert data["short_name"] and len(data["short_name"]) <= 12
    assert data["start_url"].startswith("/")
    assert data["display"] == "standalone"
    assert re.fullmatch(r"#[0-9a-fA-F]{6}", data["theme_color"])
    assert re.fullmatch(r"#[0-9a-fA-F]{6}", data["background_color"])
    assert data["lang"] == "zh-CN"
    assert data["shortcuts"] and all(s["name"] and s["url"].startswith("/") for s in data["shortcuts"])


def test_manifest_icons_exist_at_their_declared_sizes(client):
    _response, data = _manifest(client)
    icons = data["icons"]
    sizes = {icon["sizes"] for icon in icons}
    assert {"192x192", "512x512"} <= sizes
    assert any("maskable" in icon.get("purpose", "").split() for icon in icons)
    for icon in icons:
        with client.get(icon["src"]) as response:  # a file response: close it
            assert response.status_code == 200, icon["src"]
            assert response.mimetype == "image/png"
            data = response.data
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "PNG"
            width, height = (int(n) for n in icon["sizes"].split("x"))
            assert image.size == (width, height), icon["src"]


# --- service worker -------------------------------------------------------------------------


def test_service_worker_is_javascript_for_the_whole_site(client):
    response = client.get("/sw.js")
    assert response.status_code == 200
    assert response.mimetype in ("text/javascript", "application/javascript")
    assert response.headers["Service-Worker-Allowed"] == "/"
    assert "no-cache" in response.headers["Cache-Control"]


def test_service_worker_precaches_the_offline_page_and_versioned_assets(client):
    precache = _precache(client.get("/sw.js").get_data(as_text=True))
    assert "/offline" in precache
    assets = [url for url in precache if url.startswith("/static/")]
    for name in ("css/app.css", "js/app.js", "vendor/htmx.min.js"):
        assert any(url.startswith(f"/static/{name}?v=") for url in assets), name
    for url in assets:
        assert re.search(r"\?v=[0-9a-f]{6,}$", url), url
        with client.get(url) as response:
            assert response.status_code == 200, url


def test_service_worker_version_changes_when_a_static_file_changes(client, app):
    before = client.get("/sw.js").get_data(as_text=True)
    assert _sw_version(before) == _sw_version(client.get("/sw.js").get_data(as_text=True))
    extra = Path(app.static_folder) / f"_pwa-test-{uuid.uuid4().hex}.txt"
    try:
        extra.write_text("a new asset")
        after = client.get("/sw.js").get_data(as_text=True)
    finally:
        extra.unlink(missing_ok=True)
    assert _sw_version(after) != _sw_version(before)
    assert after != before
    # Gone again: the version returns to what it was.
    assert _sw_version(client.get("/sw.js").get_data(as_text=True)) == _sw_version(before)



def test_service_worker_keeps_only_pages_that_ask_in_a_private_cache_wiped_at_logout(client):
    """Pages marked `X-Cheyou-Offline: keep` (tickets, the check-in page) go to their own cache;
    a POST to the logout URL and the "clear" message drop it (tests/browser/test_checkin.py
    drives this in Chromium)."""
    body = client.get("/sw.js").get_data(as_text=True)
    version = _sw_version(body)
    assert 'const PRIVATE = "cheyou-private-" + VERSION;' in body and version
    assert 'const OFFLINE_HEADER = "X-Cheyou-Offline";' in body
    assert 'const LOGOUT_PATH = "/auth/logout";' in body
    assert re.search(r'event\.data === "clear"\) \{\s*event\.waitUntil\(forgetPages\(\)\)', body)
    assert re.search(r"function forgetPages\(\) \{\s*return Promise\.all\(\[caches\.delete\(PRIVATE\)", body)


def test_ordinary_member_pages_do_not_ask_to_be_kept_offline(factories, login_as, communities):
    member = login_as(factories.user())
    for url in ("/", "/communities", "/c/ev", "/me"):
        response = member.get(url)
        assert response.status_code == 200, url
        assert "X-Cheyou-Offline" not in response.headers, url
        assert "data-offline-keep" not in response.text, url

# --- offline page ---------------------------------------------------------------------------


def test_offline_page_is_chinese_and_cacheable(client):
    response = client.get("/offline")
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "离线" in body
    assert 'id="offline"' in body
    assert "no-store" not in response.headers.get("Cache-Control", "")


# --- cache headers --------------------------------------------------------------------------


def test_versioned_static_files_are_immutable(client, communities):
    page = client.get("/").get_data(as_text=True)
    css = re.search(r'href="(/static/css/app\.css\?v=[^"]+)"', page)
    assert css, "the layout links the stylesheet with a version"
    with client.get(css.group(1)) as response:
        assert response.status_code == 200
        cache_control = response.headers["Cache-Control"]
    assert "immutable" in cache_control
    max_age = int(re.search(r"max-age=(\d+)", cache_control).group(1))
    assert max_age >= 30 * 24 * 3600


def test_member_pages_are_private_and_never_stored(factories, login_as, communities):
    member = login_as(factories.user())
    for url in ("/", "/communities", "/c/ev"):
        response = member.get(url)
        assert response.status_code == 200, url
        assert response.headers["Cache-Control"] == "private, no-store", url
        assert "Cookie" in response.headers.get("Vary", ""), url


def test_visitor_pages_may_be_cached_but_vary_on_cookie(client, communities):
    for url in ("/", "/communities", "/c/ev"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "no-store" not in response.headers.get("Cache-Control", ""), url
        assert "Cookie" in response.headers.get("Vary", ""), url


# --- layout ---------------------------------------------------------------------------------


def test_layout_links_the_manifest_and_has_no_inline_code(client, communities):
    html = client.get("/").get_data(as_text=True)
    tags = assert_no_inline_code(html)
    links = [attrs for tag, attrs in tags.tags if tag == "link"]
    assert any(a.get("rel") == "manifest" and a.get("href") == "/manifest.webmanifest" for a in links)


def test_offline_page_carries_nothing_personal(login_as, factories):
    """The service worker keeps /offline: a signed-in member's copy must hold no token or badge."""
    from models import notify, db

    member = factories.user(nickname="私人车友")
    notify(member, "welcome", {"nickname": "私人车友"})
    db.session.commit()
    body = login_as(member).get("/offline").get_data(as_text=True)
    assert "X-CSRFToken" not in body and "csrf_token" not in body
    assert "data-unread" not in body and "私人车友" not in body
