"""Sharing on a phone (issue #10), at 360 and 412 px: the share button opens the phone's share
sheet (Web Share API) where there is one, else copies the link; the invite poster loads."""
from __future__ import annotations

import time

import pytest

from models import db
from models.referrals import invite_code
from models.stories import StoryInput, save_story
from tests.browser.test_shell import log_in

pytestmark = pytest.mark.browser

WIDTHS = [360, 412]
# The browser's own API, removed or recorded (not our code): what WeChat's browser lacks, what a phone has.
NO_WEB_SHARE = "delete Navigator.prototype.share; delete Navigator.prototype.canShare;"
RECORD_WEB_SHARE = """
Object.defineProperty(Navigator.prototype, "share", {configurable: true, value: function (data) {
  window.__shared = (window.__shared || []).concat([JSON.parse(JSON.stringify(data))]);
  return Promise.resolve();
}});
"""


def _phone(page, width):
    page.set_viewport_size({"width": width, "height": 780})


def _until(page, expression: str, timeout: float = 10) -> None:
    """Poll EXPRESSION in the page (wait_for_function would need eval, which our CSP forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.05)


def _assert_tappable(locator):
    box = locator.bounding_box()
    assert box["width"] >= 44 and box["height"] >= 44, box


def _no_sideways_scroll(page, width):
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def _story(factories, communities):
    author = factories.user(login="13900002222", nickname="电车老王", verified=True)
    story = save_story(author, StoryInput(communities["ev"], "冬天续航实测",
                                          "提车三个月，冬天续航掉了两成，分享一下经验。", []), publish=True)
    db.session.commit()
    return story


@pytest.mark.parametrize("width", WIDTHS)
def test_without_web_share_the_invite_link_is_copied_and_the_toast_says_so(page, context, live_server, factories,
                                                                           console_errors, width):
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.add_init_script(NO_WEB_SHARE)
    _phone(page, width)
    member = factories.user(nickname="小周爱开车")
    log_in(page, member.email)

    page.goto("/me/points")
    button = page.locator("#invite [data-share-button]")
    assert "分享邀请链接" in button.inner_text()
    _assert_tappable(button)
    button.click()

    toast = page.locator("#toast")
    toast.wait_for(state="visible")
    assert toast.inner_text() == "链接已复制"
    assert page.evaluate("navigator.clipboard.readText()") == f"{live_server}/i/{invite_code(member)}"
    _no_sideways_scroll(page, width)
    assert not console_errors


@pytest.mark.parametrize("width", WIDTHS)
def test_with_web_share_a_story_opens_the_share_sheet_with_its_title_and_link(page, context, live_server, factories,
                                                                             communities, console_errors, width):
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.add_init_script(RECORD_WEB_SHARE)
    _phone(page, width)
    story = _story(factories, communities)

    page.goto(f"/stories/{story.id}")
    page.evaluate("navigator.clipboard.writeText('before')")
    button = page.get_by_role("button", name="分享")
    _assert_tappable(button)
    button.click()

    _until(page, "(window.__shared || []).length === 1")
    [shared] = page.evaluate("window.__shared")
    assert shared["url"] == f"{live_server}/stories/{story.id}"
    assert shared["title"] == "冬天续航实测" and "冬天续航实测" in shared["text"]
    assert page.locator("#toast").is_hidden()  # the share sheet did it: nothing copied, no toast
    assert page.evaluate("navigator.clipboard.readText()") == "before"
    _no_sideways_scroll(page, width)
    assert not console_errors


@pytest.mark.parametrize("width", WIDTHS)
def test_without_web_share_a_story_link_is_copied(page, context, live_server, factories, communities,
                                                 console_errors, width):
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.add_init_script(NO_WEB_SHARE)
    _phone(page, width)
    story = _story(factories, communities)

    page.goto(f"/stories/{story.id}")
    page.get_by_role("button", name="分享").click()
    page.locator("#toast").wait_for(state="visible")
    assert page.locator("#toast").inner_text() == "链接已复制"
    assert page.evaluate("navigator.clipboard.readText()") == f"{live_server}/stories/{story.id}"
    assert not console_errors


@pytest.mark.parametrize("width", WIDTHS)
def test_the_invite_poster_loads_on_the_points_page_with_its_save_link(page, factories, console_errors, width):
    _phone(page, width)
    member = factories.user(nickname="小周爱开车")
    log_in(page, member.email)

    page.goto("/me/points")
    poster = page.locator("#invite .poster img")
    poster.scroll_into_view_if_needed()  # it loads lazily, below the points card
    _until(page, "(function (img) { return img.complete && img.naturalWidth > 0; })"
                 "(document.querySelector('#invite .poster img'))")
    assert page.evaluate("[document.querySelector('#invite .poster img').naturalWidth,"
                         " document.querySelector('#invite .poster img').naturalHeight]") == [750, 1334]
    box = poster.bounding_box()
    assert 0 < box["width"] <= width - 32 and box["height"] > box["width"]  # inside the card, portrait
    save = page.get_by_role("link", name="保存海报")
    assert save.get_attribute("download") and save.get_attribute("href") == "/me/invite-poster.png"
    _assert_tappable(save)
    assert "长按海报保存" in page.locator("#invite").inner_text()
    page.screenshot(path=f"/tmp/cheyou-invite-poster-{width}.png")
    _no_sideways_scroll(page, width)
    assert not console_errors
