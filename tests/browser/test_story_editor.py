"""The story editor on 360 px and 412 px phones (issue #10): the format bar, the nine-photo picker
(remove, reorder), photos made smaller on the phone, the upload's progress bar, a refusal that
keeps what was typed and picked, and the plain form without JavaScript."""
from __future__ import annotations

import io
import re
import threading
import time
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select
from werkzeug.formparser import parse_form_data

from models import Story, db
from tests.browser.conftest import PHONE, TIMEOUT_MS
from tests.browser.test_shell import _fresh, log_in

pytestmark = pytest.mark.browser

WIDTHS = [360, 412]
TITLE = "冬天续航实测"
BODY = "提车三个月，电池健康度还是 98%，冬天续航掉了两成。"
RED, GREEN, BLUE = (210, 30, 30), (30, 180, 60), (30, 60, 210)
SCREENSHOTS = "/tmp/cheyou-story-editor-{name}-{width}.png"


@pytest.fixture(params=WIDTHS, ids=[f"{w}px" for w in WIDTHS])
def width(request, page):
    page.set_viewport_size({"width": request.param, "height": 780})
    return request.param


@pytest.fixture
def writer(factories):
    ev = factories.communities()["ev"]
    factories.user(login="13911112222", nickname="电车老王", verified=True)
    db.session.commit()
    return ev


def jpeg(path, size, colour):
    """A photo of one colour with some texture (so it is not tiny once encoded)."""
    image = Image.effect_noise(size, 40).convert("RGB")
    image = Image.blend(Image.new("RGB", size, colour), image, 0.15)
    image.save(path, "JPEG", quality=92)
    return str(path)


def colour_near(data: bytes, wanted) -> bool:
    with Image.open(io.BytesIO(data)) as image:
        small = image.convert("RGB").resize((1, 1), Image.Resampling.BOX)
        return all(abs(a - b) < 40 for a, b in zip(small.getpixel((0, 0)), wanted))


class Recorder:
    """WSGI middleware that keeps the bodies of the story posts exactly as the server receives
    them (before any re-encoding), and can hold each response a moment so a test can see what
    the page shows meanwhile."""

    def __init__(self, app, delay=0.0):
        self.app, self.wsgi, self.delay = app, app.wsgi_app, delay
        self.posts: list[tuple[dict, list]] = []
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"].startswith("/stories/"):
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            copy = dict(environ, **{"wsgi.input": io.BytesIO(body)})
            _stream, form, files = parse_form_data(copy)
            photos = [(f.filename, f.read()) for f in files.getlist("photos") if f.filename]
            for _key, upload in files.items(multi=True):
                upload.close()
            with self.lock:
                self.posts.append((form.to_dict(flat=False), photos))
            environ["wsgi.input"] = io.BytesIO(body)
            time.sleep(self.delay)
        return self.wsgi(environ, start_response)

    def __enter__(self):
        self.app.wsgi_app = self
        return self

    def __exit__(self, *exc):
        self.app.wsgi_app = self.wsgi


def body_value(page) -> str:
    return page.locator("textarea[name=body]").input_value()


def select_text(page, text):
    page.evaluate("""(text) => {
      const area = document.querySelector("textarea[name=body]");
      const at = area.value.indexOf(text);
      area.focus();
      area.setSelectionRange(at, at + text.length);
    }""", text)


def test_the_format_bar_puts_the_marks_in_and_the_preview_shows_them(page, writer, width, console_errors):
    log_in(page, "13911112222")
    page.goto("/stories/new")
    bar = page.get_by_role("group", name="文字格式")
    assert bar.is_visible()
    buttons = {name: bar.get_by_role("button", name=name) for name in ("加粗", "小标题", "列表", "引用", "插入链接")}
    for name, button in buttons.items():
        box = button.bounding_box()
        assert box["width"] >= 44 and box["height"] >= 44, (name, box)
    right = max(b.bounding_box()["x"] + b.bounding_box()["width"] for b in buttons.values())
    assert right <= width, "the bar fits the phone"
    assert "markdown" not in page.locator("main").inner_text().lower()

    area = page.locator("textarea[name=body]")
    area.fill("电池健康度还是 98%")
    select_text(page, "98%")
    buttons["加粗"].click()
    assert body_value(page) == "电池健康度还是 **98%**"
    buttons["加粗"].click()  # the same button takes the marks off again
    assert body_value(page) == "电池健康度还是 98%"
    buttons["加粗"].click()

    area.press("End")
    area.press("Enter")
    area.type("冬天续航")
    buttons["小标题"].click()
    assert body_value(page).endswith("\n## 冬天续航")

    area.press("End")
    area.type("\n充电快\n保养便宜")
    select_text(page, "充电快\n保养便宜")
    buttons["列表"].click()
    assert body_value(page).endswith("\n- 充电快\n- 保养便宜")

    area.press("End")
    area.type("\n老司机说得对")
    buttons["引用"].click()
    assert body_value(page).endswith("\n> 老司机说得对")

    area.press("End")
    area.type("\n\n看官网")  # a blank line ends the quote
    select_text(page, "官网")
    buttons["插入链接"].click()
    assert body_value(page).endswith("\n\n看[官网](https://)")
    assert page.evaluate("""() => { const a = document.querySelector("textarea[name=body]");
                                    return a.value.slice(a.selectionStart, a.selectionEnd); }""") == "https://"
    page.keyboard.type("https://www.example.cn")
    assert body_value(page).endswith("\n\n看[官网](https://www.example.cn)")

    page.fill("input[name=title]", TITLE)
    page.evaluate("window.__marker = 1")
    page.get_by_role("button", name="预览").click()
    preview = page.locator("[data-story-preview] .prose")
    preview.wait_for()
    assert preview.locator("strong", has_text="98%").count() == 1
    assert preview.locator("h3", has_text="冬天续航").count() == 1
    assert preview.locator("ul li").all_inner_texts() == ["充电快", "保养便宜"]
    assert preview.locator("blockquote", has_text="老司机说得对").count() == 1
    assert preview.locator("a", has_text="官网").get_attribute("href") == "https://www.example.cn"
    assert page.evaluate("window.__marker") == 1, "previewed in place, no page load"
    assert "**98%**" in body_value(page) and page.locator("input[name=title]").input_value() == TITLE
    page.screenshot(path=SCREENSHOTS.format(name="format", width=width), full_page=True)
    _fresh()
    assert db.session.scalars(select(Story)).all() == []
    assert not console_errors


def test_pick_remove_reorder_and_publish_with_a_progress_bar(app, page, writer, width, tmp_path, console_errors):
    big = jpeg(tmp_path / "IMG_4000.jpg", (4000, 3000), RED)
    middle = jpeg(tmp_path / "IMG_0800.jpg", (800, 600), GREEN)
    small = jpeg(tmp_path / "IMG_1200.jpg", (1200, 900), BLUE)
    log_in(page, "13911112222")
    page.goto("/stories/new?community=ev")
    page.fill("input[name=title]", TITLE)
    page.fill("textarea[name=body]", BODY)
    page.set_input_files("input[name=photos]", [big, middle, small])

    cells = page.locator("[data-photo-list] li")
    cells.nth(2).wait_for()
    assert cells.count() == 3
    page.wait_for_function("() => [...document.querySelectorAll('[data-photo-list] img')].every(i => i.complete && i.naturalWidth)")
    assert "3" in page.locator("[data-photo-count]").inner_text()
    boxes = [cells.nth(i).bounding_box() for i in range(3)]
    assert len({round(b["y"]) for b in boxes}) == 1, "three to a row"
    assert all(abs(b["width"] - b["height"]) < 2 for b in boxes), "square cells"
    for name in ("移除第 1 张照片", "第 1 张照片后移", "第 2 张照片前移"):
        box = page.get_by_role("button", name=name).bounding_box()
        assert box["width"] >= 44 and box["height"] >= 44, (name, box)
    assert page.get_by_role("button", name="第 1 张照片前移").is_disabled()
    page.screenshot(path=SCREENSHOTS.format(name="picked", width=width), full_page=True)

    page.get_by_role("button", name="移除第 2 张照片").click()
    assert [cells.nth(i).get_attribute("data-name") for i in range(cells.count())] == ["IMG_4000.jpg", "IMG_1200.jpg"]
    page.get_by_role("button", name="第 2 张照片前移").click()
    assert [cells.nth(i).get_attribute("data-name") for i in range(cells.count())] == ["IMG_1200.jpg", "IMG_4000.jpg"]
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "第 1 张照片后移", "focus follows the photo"

    shown = []
    page.expose_function("__progressShown", lambda text: shown.append(text))
    page.evaluate("""() => {
      const box = document.querySelector("[data-upload-progress]");
      new MutationObserver(() => { if (!box.hidden) window.__progressShown(box.innerText); })
        .observe(box, { attributes: true, childList: true, subtree: true, characterData: true });
    }""")
    with Recorder(app, delay=0.8) as recorder:
        page.get_by_role("button", name="发布").click()
        page.wait_for_url(re.compile(r"/stories/\d+$"))
    assert page.locator(".flash", has_text="故事已发布").count() == 1, "the flash was kept for this page"
    assert any(re.search(r"正在上传… \d+%", text) for text in shown), shown

    ((form, photos),) = recorder.posts
    assert form["action"] == ["publish"] and form["title"] == [TITLE] and form["nonce"][0]
    assert [name for name, _data in photos] == ["IMG_1200.jpg", "IMG_4000.jpg"], "the order chosen, the removed one gone"
    sizes = []
    for _name, data in photos:
        with Image.open(io.BytesIO(data)) as received:
            sizes.append(received.size)
    assert sizes[0] == (1200, 900), "already small enough: sent as it was"
    assert max(sizes[1]) <= 1600 and sizes[1] == (1600, 1200), "the 4000 px photo was made smaller on the phone"
    assert len(photos[1][1]) < (tmp_path / "IMG_4000.jpg").stat().st_size

    images = page.locator(".story-photos img")
    assert images.count() == 2
    served = [page.request.get(images.nth(i).get_attribute("src")).body() for i in range(2)]
    assert colour_near(served[0], BLUE) and colour_near(served[1], RED), "shown in the order chosen"
    _fresh()
    story = db.session.scalar(select(Story))
    assert [p.position for p in story.photos] == [0, 1] and story.photos[1].width == 1280
    assert not console_errors


def test_a_refusal_keeps_the_words_and_the_photos_picked(page, writer, width, tmp_path, console_errors):
    photo = jpeg(tmp_path / "road.jpg", (900, 600), GREEN)
    log_in(page, "13911112222")
    page.goto("/stories/new")
    page.fill("textarea[name=body]", BODY)
    page.set_input_files("input[name=photos]", photo)
    page.locator("[data-photo-list] li").first.wait_for()
    page.get_by_role("button", name="发布").click()

    page.locator("#story-editor .has-error .error").first.wait_for()
    assert "标题" in page.locator("#story-editor .has-error").first.inner_text()
    assert body_value(page) == BODY, "what was typed is kept"
    assert page.locator("[data-photo-list] li").count() == 1, "the photo is still picked"
    assert page.locator("[data-upload-progress]").is_hidden()
    page.screenshot(path=SCREENSHOTS.format(name="refused", width=width), full_page=True)

    page.fill("input[name=title]", TITLE)
    page.get_by_role("button", name="发布").click()
    page.wait_for_url(re.compile(r"/stories/\d+$"))
    assert page.locator(".story-photos img").count() == 1
    _fresh()
    assert len(db.session.scalars(select(Story)).all()) == 1
    assert [e for e in console_errors if "status of 422" not in e] == [], "the browser logs the 422 itself"


def test_a_photo_the_phone_cannot_read_goes_as_it_is_and_the_server_says_why(page, writer, width, tmp_path):
    odd = tmp_path / "IMG_0001.heic"
    odd.write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 200)
    log_in(page, "13911112222")
    page.goto("/stories/new")
    page.fill("input[name=title]", TITLE)
    page.fill("textarea[name=body]", BODY)
    page.set_input_files("input[name=photos]", str(odd))
    cell = page.locator("[data-photo-list] li.photo-unshown")
    cell.wait_for()
    assert "IMG_0001.heic" in cell.inner_text(), "no thumbnail: the file name instead"
    page.get_by_role("button", name="发布").click()
    page.locator("#story-editor .form-error", has_text="JPEG").wait_for()
    assert body_value(page) == BODY
    _fresh()
    assert db.session.scalars(select(Story)).all() == []


@pytest.mark.parametrize("phone_width", WIDTHS, ids=[f"{w}px" for w in WIDTHS])
def test_without_javascript_the_plain_form_publishes_a_photo(browser, live_server, csrf_on, writer, tmp_path,
                                                             phone_width):
    photo = jpeg(tmp_path / "plain.jpg", (2000, 1500), RED)
    settings = dict(PHONE, viewport={"width": phone_width, "height": 780})
    context = browser.new_context(base_url=live_server, java_script_enabled=False, **settings)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        log_in(page, "13911112222")
        page.goto("/stories/new")
        assert page.locator("[data-format-bar]").is_hidden() and page.locator("[data-photo-picker]").is_hidden()
        assert page.locator("input[name=photos]").is_visible()
        page.fill("input[name=title]", TITLE)
        page.fill("textarea[name=body]", BODY)
        page.set_input_files("input[name=photos]", photo)
        page.click("button[name=action][value=publish]")
        page.wait_for_url(re.compile(r"/stories/\d+$"))
        assert page.locator(".flash", has_text="故事已发布").count() == 1
        assert page.locator(".story-photos img").count() == 1
    finally:
        context.close()
    _fresh()
    story = db.session.scalar(select(Story))
    assert story.title == TITLE and len(story.photos) == 1 and story.photos[0].width == 1280


def test_the_storys_own_photos_count_towards_nine(app, page, writer, width, tmp_path, console_errors):
    from models import User
    from models.stories import NewPhoto, StoryInput, save_story
    from services.images import process_upload, store_photo
    from services.storage import get_storage

    author = db.session.scalar(select(User).where(User.nickname == "电车老王"))
    source = Path(jpeg(tmp_path / "old.jpg", (400, 300), GREEN)).read_bytes()
    stored = []
    for _n in range(8):
        processed = process_upload(source)
        full, thumb = store_photo(processed, get_storage(app), prefix=str(author.id))
        stored.append(NewPhoto(full, thumb, processed.width, processed.height))
    story = save_story(author, StoryInput(writer, TITLE, BODY, []), publish=True, new_photos=stored)
    db.session.commit()

    log_in(page, "13911112222")
    page.goto(f"/stories/{story.id}/edit")
    page.set_input_files("input[name=photos]", [jpeg(tmp_path / f"new{n}.jpg", (300, 200), BLUE) for n in range(2)])
    page.locator("[data-photo-list] li").first.wait_for()
    assert page.locator("[data-photo-list] li").count() == 1, "8 of its own + 1 = 9"
    assert "最多 9 张" in page.locator("[data-photo-count]").inner_text()
    assert page.locator("[data-photo-add]").is_hidden()
    page.locator("input[data-existing-photo]").first.check()
    assert page.locator("[data-photo-add]").is_visible(), "ticking one of its own off makes room"
    assert page.locator("[data-photo-count]").inner_text() == "已选 8 张，最多 9 张"
    page.get_by_role("button", name="发布").click()
    page.wait_for_url(re.compile(rf"/stories/{story.id}$"))
    _fresh()
    photos = db.session.get(Story, story.id).photos
    assert len(photos) == 8 and [p.position for p in photos] == list(range(8))
    assert photos[-1].full_key not in {p.full_key for p in stored}, "the new photo comes after the story's own"
    assert not console_errors
