"""Reading surfaces on real phones (360 and 412 px): the inbox's buttons stay on one line, the
comments' "…" menu opens, replies and reports, and no emoji glyph is left on the main pages."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from models import Comment, Report, db
from models.events import SignupInput, signup
from models.notifications import notify
from models.stories import StoryInput, save_story
from tests.browser.test_shell import _fresh, log_in

pytestmark = pytest.mark.browser

WIDTHS = [360, 412]
SHOTS = "/tmp/cheyou-reading-{name}-{width}.png"
BODY = "提车三个月，**电池健康度**还是 98%，冬天续航掉了两成。\n\n- 别充满\n- 别放空"

# Lines a button's text takes: one client rect per line box of its text.
BUTTON_LINES = """() => [...document.querySelectorAll('main button, main .button')]
  .filter(el => el.offsetParent !== null)
  .map(el => {
    const range = document.createRange();
    range.selectNodeContents(el);
    const tops = new Set([...range.getClientRects()].filter(r => r.width > 0).map(r => Math.round(r.top)));
    const style = getComputedStyle(el);
    return {text: el.innerText.trim(), lines: tops.size, height: el.getBoundingClientRect().height,
            line: parseFloat(style.lineHeight) || parseFloat(style.fontSize) * 1.6,
            minHeight: parseFloat(style.minHeight) || 0};
  })"""

EMOJI_IN_TEXT = r"""() => {
  const found = document.body.innerText.match(/(?![©®™])\p{Extended_Pictographic}/gu);
  return found ? [...new Set(found)] : [];
}"""


def shot(page, path, **kw):
    """A screenshot that leaves the page as it was (Playwright hides the caret with an inline
    style otherwise, which htmx's settle then copies onto swapped fields: a CSP violation)."""
    if kw.pop("at", None):
        page.locator(kw.pop("selector")).evaluate("el => el.scrollIntoView({block: 'center'})")
    page.screenshot(path=path, caret="initial", **kw)


@pytest.fixture(params=WIDTHS, ids=lambda w: f"{w}px")
def width(request, page):
    page.set_viewport_size({"width": request.param, "height": 780})
    return request.param


def _story(factories, communities, author):
    story = save_story(author, StoryInput(communities["ev"], "冬天续航实测", BODY, []), publish=True)
    db.session.commit()
    return story


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_inbox_buttons_stay_on_one_line(page, width, factories, locale, console_errors):
    communities = factories.communities()
    member = factories.user(login="13912345678", nickname="车友小李", verified=True, locale=locale)
    author = factories.user(login="13900001111", nickname="一位名字特别特别长的电动车车主", verified=True)
    story = _story(factories, communities, author)
    for n in range(4):
        notify(member, "comment_received", {"nickname": author.nickname, "title": f"冬天续航实测：电池健康度与充电习惯（第 {n} 篇）"},
               link=f"/stories/{story.id}")
    notify(member, "welcome", {"nickname": member.nickname})
    db.session.commit()

    log_in(page, "13912345678")
    page.goto("/me/notifications")
    page.locator(".notification").first.wait_for()
    buttons = page.evaluate(BUTTON_LINES)
    assert len(buttons) >= 6, buttons  # "mark all" and one per unread notice
    for button in buttons:
        assert button["lines"] == 1, button
        assert button["height"] <= max(button["minHeight"], button["line"] * 1.5) + 1, button
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "no sideways scrolling"
    first = page.locator(".notification time").first
    assert first.inner_text() in ("刚刚", "just now") and first.get_attribute("title")
    if width == 360 and locale == "zh_CN":
        shot(page, SHOTS.format(name="inbox", width=width), full_page=True)

    page.locator(".notification-action button").first.click()
    expect(page.locator(".notification-action button")).to_have_count(4)  # marked read in place
    assert not console_errors


def test_comment_menu_opens_replies_and_reports(page, width, factories, console_errors):
    communities = factories.communities()
    author = factories.user(login="13900001111", nickname="电车老王", verified=True)
    story = _story(factories, communities, author)
    commenter = factories.user(login="13900002222", nickname="路人甲", verified=True)
    db.session.add(Comment(story_id=story.id, author_id=commenter.id, body="冬天开空调大概掉多少？", status="published"))
    factories.user(login="13912345678", nickname="车友小李", verified=True)
    db.session.commit()
    story_id = story.id

    log_in(page, "13912345678")
    page.goto(f"/stories/{story_id}")
    page.evaluate("window.__marker = 1")
    comments = page.locator("#comments")
    assert comments.locator("details, summary").count() == 0, "no disclosure triangles"

    button = comments.locator(".comment .menu-button").first
    popover = comments.locator(".comment .menu-popover").first
    assert button.get_attribute("aria-expanded") == "false" and popover.is_hidden()
    button.click()
    assert button.get_attribute("aria-expanded") == "true" and popover.is_visible()
    box = popover.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width, "the popover stays on screen"
    if width == 360:
        shot(page, SHOTS.format(name="menu", width=width), at=True, selector="#comments .comment")
    page.keyboard.press("Escape")
    assert button.get_attribute("aria-expanded") == "false" and popover.is_hidden()

    # Reply: the form opens under the comment, and the reply lands in place (htmx, no reload).
    button.click()
    popover.get_by_text("回复").click()
    assert popover.is_hidden()
    reply_panel = comments.locator(".comment-panel[id^=reply-]").first
    assert reply_panel.is_visible()
    textarea = reply_panel.locator("textarea")
    assert textarea.evaluate("el => el === document.activeElement")
    comment_box, panel_box = comments.locator(".comment").first.bounding_box(), reply_panel.bounding_box()
    assert comment_box["y"] < panel_box["y"] < comment_box["y"] + comment_box["height"], "under its comment"
    if width == 360:
        shot(page, SHOTS.format(name="reply", width=width), at=True, selector="#comments .comment-panel:not([hidden])")
    textarea.fill("开座椅加热更省电")
    reply_panel.locator("button[type=submit]").click()
    page.locator("#comments .replies .comment-body", has_text="开座椅加热更省电").wait_for()
    assert page.evaluate("window.__marker") == 1, "replied with htmx, no full page load"

    # After the swap the menus still work: report the first comment.
    page.locator("#comments .comment .menu-button").first.click()
    page.locator("#comments .menu-popover").first.get_by_text("举报").click()
    report_panel = page.locator("#comments .comment-panel[id^=report-c]").first
    assert report_panel.is_visible()
    report_panel.locator("select").select_option("spam")
    report_panel.locator("button[type=submit]").click()
    page.locator(".flash", has_text="感谢").wait_for()

    _fresh()
    assert db.session.scalar(select(Report.comment_id)) is not None
    assert not console_errors


def test_without_js_the_menu_still_reaches_reply_and_report(browser, live_server, factories):
    """JavaScript off: the "…" button submits ?menu=, the items are links opening the forms."""
    from tests.browser.conftest import PHONE

    communities = factories.communities()
    author = factories.user(login="13900001111", nickname="电车老王", verified=True)
    story = _story(factories, communities, author)
    commenter = factories.user(login="13900002222", nickname="路人甲", verified=True)
    db.session.add(Comment(story_id=story.id, author_id=commenter.id, body="冬天开空调大概掉多少？", status="published"))
    factories.user(login="13912345678", verified=True)
    db.session.commit()
    context = browser.new_context(base_url=live_server, java_script_enabled=False, **(PHONE | {"viewport": {"width": 360, "height": 780}}))
    try:
        page = context.new_page()
        log_in(page, "13912345678")
        page.goto(f"/stories/{story.id}")
        page.locator("#comments .menu-button").first.click()
        page.wait_for_url(lambda url: "menu=" in url)
        page.locator("#comments .menu-popover").first.get_by_text("回复").click()
        page.wait_for_url(lambda url: "reply_to=" in url)
        assert page.locator("#comments .comment-panel[id^=reply-] textarea").first.is_visible()
    finally:
        context.close()


MAIN_PAGES = ["/", "/communities", "/c/ev", "/stories/{story}", "/stories/search?q=电池", "/events", "/events/{event}",
              "/me", "/me/tickets", "/me/vouchers", "/me/points", "/me/notifications", "/rewards"]


def test_no_emoji_on_the_main_pages(page, width, factories, console_errors):
    communities = factories.communities()
    member = factories.user(login="13912345678", nickname="车友小李", verified=True)
    author = factories.user(login="13900001111", nickname="电车老王", verified=True)
    story = _story(factories, communities, author)
    event = factories.event(community=communities["ev"], attendance_points=30, points_price=0)
    full = factories.event(community=communities["ev"], capacity=1, companions_allowed=0, title="满员的试驾会")
    signup(db.session.merge(event), member, SignupInput())
    signup(db.session.merge(full), author, SignupInput())
    signup(db.session.merge(full), member, SignupInput())
    db.session.commit()

    log_in(page, "13912345678")
    for path in MAIN_PAGES:
        page.goto(path.format(story=story.id, event=event.id))
        assert page.evaluate(EMOJI_IN_TEXT) == [], path
        assert page.evaluate("document.documentElement.scrollWidth") <= width, path
    page.goto(f"/events/{event.id}")
    if width == 360:
        shot(page, SHOTS.format(name="event", width=width), full_page=True)
        page.goto("/c/ev")
        shot(page, SHOTS.format(name="feed", width=width), full_page=True)
    assert not console_errors
