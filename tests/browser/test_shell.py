"""The shell in a real phone browser: sign-up form, htmx join in place, installability, offline."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from models import Membership, User, db
from tests.factories import PASSWORD

pytestmark = pytest.mark.browser

SCREENSHOT = "/tmp/cheyou-home.png"


def _fresh():
    """End the test's own read transaction so the server's writes are visible."""
    db.session.rollback()


def log_in(page, login: str) -> None:
    """Through the real login form (CSRF on)."""
    page.goto("/auth/login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", PASSWORD)
    page.click("main form button[type=submit]")
    page.wait_for_url(lambda url: "/auth/login" not in url)


def wait_for_service_worker(page) -> None:
    """Until the service worker is active, then reload so it controls the page."""
    assert page.evaluate("'serviceWorker' in navigator && window.isSecureContext")
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    page.reload()
    assert page.evaluate("navigator.serviceWorker.controller !== null"), "the service worker controls the page"


def test_sign_up_through_the_real_form(page, factories, console_errors):
    factories.communities()
    page.goto("/auth/signup")
    page.fill("input[name=login]", "new.driver@example.com")
    page.fill("input[name=nickname]", "老司机小王")
    page.fill("input[name=password]", "Sichuan2026x")
    page.check("input[name=consent]")
    page.click("main form button[type=submit]")

    page.wait_for_url("**/communities")
    assert page.locator(".flash").first.inner_text().startswith("欢迎来到车友圈")
    assert page.locator("#join-ev").count() == 1  # the communities list
    page.goto("/")
    assert "你好，老司机小王" in page.locator("main h1").inner_text()

    _fresh()
    user = db.session.scalar(select(User).where(User.email == "new.driver@example.com"))
    assert user is not None and user.nickname == "老司机小王"
    assert not console_errors


def test_join_swaps_the_button_in_place_without_a_reload(page, factories, console_errors):
    factories.communities()
    member = factories.user(nickname="电车车主")
    log_in(page, member.email)

    page.goto("/c/ev")
    join = page.locator("#join-ev")
    assert join.locator("button[aria-pressed=false]").count() == 1
    page.evaluate("window.__marker = 1")
    join.locator("button[type=submit]").click()

    page.locator("#join-ev button[aria-pressed=true]").wait_for()
    assert "已加入" in page.locator("#join-ev button").inner_text()
    assert page.evaluate("window.__marker") == 1, "joined with htmx, no full page load"
    assert "1" in page.locator("#join-ev [data-member-count]").inner_text()

    _fresh()
    joined = db.session.scalars(select(Membership.community_id).where(Membership.user_id == member.id)).all()
    assert joined == [factories.communities()["ev"].id]
    assert not console_errors


def test_manifest_is_linked_and_the_service_worker_controls_the_page(page, factories, console_errors):
    factories.communities()
    page.goto("/")
    href = page.locator("link[rel=manifest]").get_attribute("href")
    assert href == "/manifest.webmanifest"
    manifest = page.evaluate("(href) => fetch(href).then((r) => r.json())", href)
    assert manifest["short_name"] == "车友圈" and manifest["display"] == "standalone"

    wait_for_service_worker(page)
    assert page.evaluate("navigator.serviceWorker.controller.scriptURL").endswith("/sw.js")
    assert not console_errors


def test_offline_page_when_the_network_is_gone(page, context, factories):
    factories.communities()
    page.goto("/")
    wait_for_service_worker(page)
    assert page.evaluate("caches.match('/offline').then((r) => Boolean(r))"), "offline page precached"

    # Every request now fails, including the service worker's own fetches.
    context.route("**/*", lambda route: route.abort())

    page.goto("/c/modding")  # never opened before: the service worker answers with /offline
    offline = page.locator("#offline")
    offline.wait_for()
    assert "离线" in offline.inner_text()
    # Its stylesheet comes from the service worker's precache.
    assert page.evaluate("[...document.styleSheets].some((s) => s.cssRules.length > 0)")

    page.goto("/")  # a visitor page opened before comes from the page cache
    assert page.locator("#offline").count() == 0
    assert page.locator("#join-ev").count() == 1
    context.unroute("**/*")


def test_home_fits_a_phone_screen(page, factories, console_errors):
    factories.communities()
    page.goto("/")
    page.screenshot(path=SCREENSHOT, full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"page scrolls sideways by {overflow}px"
    tabbar = page.locator("nav.tabbar")
    assert tabbar.is_visible()
    box = tabbar.bounding_box()
    assert box["y"] + box["height"] <= 844 + 1, "tab bar sits at the bottom of the screen"
    assert page.locator(".community-list > *").count() == 4
    assert not console_errors


TAP_TARGETS = ".tabbar a, .topbar a, main .button, main button, main input:not([type=hidden]), main select, .menu a, .site-footer a, .site-footer button"


@pytest.mark.parametrize("path", ["/", "/c/ev", "/me", "/me/notifications", "/auth/phone", "/rewards", "/me/points", "/me/vouchers"])
def test_tap_targets_are_at_least_44px(page, factories, path):
    """Every control a thumb aims at is at least 44 CSS px tall (and wide) on a phone."""
    factories.communities()
    member = factories.user(login="member@example.com")
    from models import notify

    notify(member, "welcome", {"nickname": "x"})
    db.session.commit()
    log_in(page, "member@example.com")
    page.goto(path)
    small = page.evaluate(
        """(selector) => [...document.querySelectorAll(selector)]
            .filter((el) => el.offsetParent !== null && el.type !== "checkbox")
            .map((el) => { const r = el.getBoundingClientRect();
                           return {tag: el.tagName, text: (el.innerText || el.name || "").trim().slice(0, 20),
                                   w: Math.round(r.width), h: Math.round(r.height)}; })
            .filter((b) => b.h < 44 || b.w < 44)""",
        TAP_TARGETS,
    )
    assert small == []
