"""Reports, the moderation queue, hide/restore, approve, featured stories with rewards,
earnings reversed on a violation, and the admin's prohibited-words list."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from models import AuditEntry, Comment, EarningRule, Notification, ProhibitedWord, Report, Story, db
from models.nonces import new_nonce
from models.loyalty import balance_of, spend
from models.stories import StoryInput, recount_stories, save_story
from tests.html import assert_no_inline_code

BODY = "提车三个月，电池健康度还是 98%，冬天续航掉了两成。"


@pytest.fixture
def author(factories, communities):
    return factories.user(login="13900001111", nickname="电车老王", verified=True)


@pytest.fixture
def story(author, communities):
    story = save_story(author, StoryInput(communities["ev"], "冬天的续航", BODY, []), publish=True)
    db.session.commit()
    return story


@pytest.fixture
def moderator(factories, communities):
    return factories.user(role="moderator", community=communities["ev"], nickname="版主小李")


@pytest.fixture
def member(factories, communities):
    return factories.user(login="13900002222", nickname="路人甲", verified=True)


def points(rule: str) -> int:
    return EarningRule.get(rule).points


def audit_actions(target) -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).where(
        AuditEntry.target_type == target.__tablename__, AuditEntry.target_id == str(target.id)).order_by(AuditEntry.id)))


def report(client, **data):
    return client.post("/moderation/report", data={"reason": "false_info", **data})


def reports_of(story) -> list[Report]:
    return list(db.session.scalars(select(Report).where(Report.story_id == story.id)))


def fresh(model, row):
    db.session.expire_all()
    return db.session.get(model, row.id)


# -- reporting -----------------------------------------------------------------------------

def test_a_member_reports_a_story_once_and_is_thanked(login_as, member, story):
    client = login_as(member)
    response = report(client, story_id=story.id, note="电池数据是编的")
    assert response.status_code == 302 and response.headers["Location"] == f"/stories/{story.id}"
    [row] = reports_of(story)
    assert (row.reporter_id, row.reason, row.status, row.note) == (member.id, "false_info", "open", "电池数据是编的")
    assert row.community_id == story.community_id
    assert report(client, story_id=story.id, reason="spam").status_code == 302, "a repeat is harmless"
    assert len(reports_of(story)) == 1


def test_the_story_page_offers_a_report_form_to_others_only(login_as, member, author, story):
    page = login_as(member).get(f"/stories/{story.id}").get_data(as_text=True)
    assert 'action="/moderation/report"' in page and f'name="story_id" value="{story.id}"' in page
    assert 'value="false_info"' in page
    own = login_as(author).get(f"/stories/{story.id}").get_data(as_text=True)
    assert 'action="/moderation/report"' not in own
    assert "/moderation/stories/" not in own, "authors get no moderation buttons"


def test_reporting_ones_own_story_is_refused(login_as, author, story):
    response = report(login_as(author), story_id=story.id)
    assert response.status_code == 422
    assert reports_of(story) == []


def test_reporting_what_one_cannot_see_is_a_404(login_as, member, author, communities):
    draft = save_story(author, StoryInput(communities["ev"], "还没写完", BODY, []), publish=False)
    db.session.commit()
    client = login_as(member)
    assert report(client, story_id=draft.id).status_code == 404
    assert report(client, story_id=999_999).status_code == 404
    assert reports_of(draft) == []


def test_a_bad_reason_is_refused_and_visitors_log_in_first(client, login_as, member, story):
    assert report(login_as(member), story_id=story.id, reason="boring").status_code == 422
    response = report(client, story_id=story.id)
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    assert reports_of(story) == []


# -- the queue -----------------------------------------------------------------------------

def test_the_queue_lists_open_reports_for_that_communitys_moderators(login_as, factories, communities, member,
                                                                      moderator, story):
    report(login_as(member), story_id=story.id, note="数据不实")
    client = login_as(moderator)
    index = client.get("/moderation").get_data(as_text=True)
    assert 'data-community="ev"' in index and 'data-open="1"' in index and 'data-community="women"' not in index
    page = client.get("/moderation/c/ev").get_data(as_text=True)
    row = reports_of(story)[0]
    assert f'data-report="{row.id}"' in page and "冬天的续航" in page and "路人甲" in page and "数据不实" in page

    other = factories.user(role="moderator", community=communities["women"])
    assert login_as(other).get("/moderation/c/ev").status_code == 403
    assert login_as(other).post(f"/moderation/reports/{row.id}/dismiss").status_code == 403
    assert login_as(other).post(f"/moderation/stories/{story.id}/hide", data={"note": "x"}).status_code == 403
    assert fresh(Report, row).status == "open" and fresh(Story, story).status == "published"
    assert login_as(member).get("/moderation").status_code == 403
    assert login_as(member).get("/moderation/c/ev").status_code == 403

    admin = factories.user(role="admin")
    assert login_as(admin).get("/moderation/c/ev").status_code == 200
    assert 'data-community="women"' in login_as(admin).get("/moderation").get_data(as_text=True)


def test_content_under_review_is_in_the_queue_and_approving_pays_story_posted(login_as, author, moderator,
                                                                                communities):
    db.session.add(ProhibitedWord(word="代购", action="review"))
    db.session.commit()
    held = save_story(author, StoryInput(communities["ev"], "代购充电桩的经历", BODY, []), publish=True)
    db.session.commit()
    assert held.status == "review" and balance_of(author) == 0
    client = login_as(moderator)
    assert f'data-story="{held.id}"' in client.get("/moderation/c/ev").get_data(as_text=True)
    assert client.post(f"/moderation/stories/{held.id}/approve").status_code == 302
    assert fresh(Story, held).status == "published"
    assert balance_of(author) == points("story_posted")
    assert client.post(f"/moderation/stories/{held.id}/approve").status_code == 302  # not under review any more
    assert balance_of(author) == points("story_posted")
    assert audit_actions(held) == ["story.approve"]


# -- hide and restore ----------------------------------------------------------------------

def test_a_hidden_story_leaves_the_feed_and_only_its_author_and_moderators_see_it(login_as, member, author,
                                                                                   moderator, story, client):
    mod = login_as(moderator)
    response = mod.post(f"/moderation/stories/{story.id}/hide", data={"note": "广告", "next": f"/stories/{story.id}"})
    assert response.status_code == 302 and response.headers["Location"] == f"/stories/{story.id}"
    hidden = fresh(Story, story)
    assert hidden.status == "hidden" and hidden.hidden_at is not None and hidden.hidden_note == "广告"
    assert "冬天的续航" not in client.get("/c/ev").get_data(as_text=True)
    assert login_as(member).get(f"/stories/{story.id}").status_code == 404
    assert client.get(f"/stories/{story.id}").status_code == 404
    assert login_as(author).get(f"/stories/{story.id}").status_code == 200
    moderator_view = mod.get(f"/stories/{story.id}")
    assert moderator_view.status_code == 200 and f"/moderation/stories/{story.id}/restore" in moderator_view.get_data(as_text=True)
    note = db.session.scalar(select(Notification).where(Notification.user_id == author.id,
                                                        Notification.kind == "content_hidden"))
    assert note is not None and note.params["note"] == "广告"

    assert mod.post(f"/moderation/stories/{story.id}/restore").status_code == 302
    restored = fresh(Story, story)
    assert restored.status == "published" and restored.hidden_at is None and restored.hidden_note is None
    assert "冬天的续航" in client.get("/c/ev").get_data(as_text=True)
    assert db.session.scalar(select(Notification).where(Notification.user_id == author.id,
                                                        Notification.kind == "content_restored")) is not None
    assert audit_actions(story) == ["story.hide", "story.restore"]
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "story.hide"))
    assert entry.actor_id == moderator.id and entry.before["status"] == "published" and entry.after["status"] == "hidden"


def test_hiding_needs_a_note(login_as, moderator, story):
    login_as(moderator).post(f"/moderation/stories/{story.id}/hide", data={"note": "  "})
    assert fresh(Story, story).status == "published"
    assert audit_actions(story) == []


def test_hiding_reverses_what_the_story_earned(login_as, moderator, author, story):
    earned = points("story_posted")
    assert balance_of(author) == earned
    login_as(moderator).post(f"/moderation/stories/{story.id}/hide", data={"note": "违规"})
    assert balance_of(author) == 0
    login_as(moderator).post(f"/moderation/stories/{story.id}/restore")
    login_as(moderator).post(f"/moderation/stories/{story.id}/hide", data={"note": "又违规"})
    assert balance_of(author) == 0, "reversed once, never below zero"


def test_a_reversal_never_takes_the_balance_below_zero(login_as, moderator, author, story):
    spend(author, points("story_posted") - 5, key="test:spent")
    db.session.commit()
    assert balance_of(author) == 5
    login_as(moderator).post(f"/moderation/stories/{story.id}/hide", data={"note": "违规"})
    assert balance_of(author) == 0


def test_hiding_and_restoring_a_comment(login_as, member, moderator, story):
    comment = Comment(story_id=story.id, author_id=member.id, body="这个车我也想买", status="published")
    db.session.add(comment)
    recount_stories()  # a row written directly: the story's kept counts follow it
    db.session.commit()
    mod = login_as(moderator)
    assert mod.post(f"/moderation/comments/{comment.id}/hide", data={"note": "无关"}).status_code == 302
    hidden = fresh(Comment, comment)
    assert hidden.status == "hidden" and hidden.hidden_note == "无关" and hidden.hidden_at is not None
    mod.post(f"/moderation/comments/{comment.id}/restore")
    assert fresh(Comment, comment).status == "published"
    assert audit_actions(comment) == ["comment.hide", "comment.restore"]


# -- handling reports ----------------------------------------------------------------------

def test_confirming_a_false_info_report_hides_the_story_and_pays_the_reporter_once(login_as, member, moderator,
                                                                                  author, story):
    report(login_as(member), story_id=story.id)
    row = reports_of(story)[0]
    mod = login_as(moderator)
    assert mod.post(f"/moderation/reports/{row.id}/confirm", data={"note": "续航数据不实"}).status_code == 302
    row = fresh(Report, row)
    assert row.status == "confirmed" and row.handled_by_id == moderator.id and row.handled_at is not None
    hidden = fresh(Story, story)
    assert hidden.status == "hidden" and hidden.hidden_note == "续航数据不实"
    assert balance_of(member) == points("confirmed_report")
    assert balance_of(author) == 0, "the story's earnings are reversed"
    mod.post(f"/moderation/reports/{row.id}/confirm")
    assert balance_of(member) == points("confirmed_report"), "paid once"
    assert audit_actions(row) == ["report.confirm"]
    assert audit_actions(story) == ["story.hide"]
    assert f'data-report="{row.id}"' not in mod.get("/moderation/c/ev").get_data(as_text=True)


def test_a_confirmed_report_of_another_reason_pays_nothing(login_as, member, moderator, story):
    report(login_as(member), story_id=story.id, reason="spam")
    row = reports_of(story)[0]
    login_as(moderator).post(f"/moderation/reports/{row.id}/confirm")
    assert fresh(Report, row).status == "confirmed" and balance_of(member) == 0


def test_dismissing_a_report_pays_nothing_and_keeps_the_story(login_as, member, moderator, author, story):
    report(login_as(member), story_id=story.id)
    row = reports_of(story)[0]
    assert login_as(moderator).post(f"/moderation/reports/{row.id}/dismiss").status_code == 302
    assert fresh(Report, row).status == "dismissed"
    assert fresh(Story, story).status == "published"
    assert balance_of(member) == 0 and balance_of(author) == points("story_posted")
    assert audit_actions(row) == ["report.dismiss"]
    report(login_as(member), story_id=story.id)
    assert len(reports_of(story)) == 2, "a dismissed report does not stop a new one"


def test_reporting_a_comment_and_confirming_it(login_as, factories, member, moderator, story):
    comment = Comment(story_id=story.id, author_id=member.id, body="加微信买便宜电池", status="published")
    db.session.add(comment)
    recount_stories()  # a row written directly: the story's kept counts follow it
    db.session.commit()
    reporter = factories.user(verified=True, login="13900003333")
    assert login_as(member).post("/moderation/report", data={"comment_id": comment.id, "reason": "spam"}).status_code == 422
    assert login_as(reporter).post("/moderation/report", data={"comment_id": comment.id, "reason": "spam"}).status_code == 302
    row = db.session.scalar(select(Report).where(Report.comment_id == comment.id))
    assert row.community_id == story.community_id
    login_as(moderator).post(f"/moderation/reports/{row.id}/confirm")
    assert fresh(Comment, comment).status == "hidden"


# -- featured stories ----------------------------------------------------------------------

def test_featuring_pins_the_story_pays_once_and_notifies(login_as, moderator, author, story, client):
    mod = login_as(moderator)
    assert mod.post(f"/moderation/stories/{story.id}/feature").status_code == 302
    assert fresh(Story, story).featured_at is not None
    assert balance_of(author) == points("story_posted") + points("story_featured")
    page = client.get("/c/ev").get_data(as_text=True)
    assert "featured-stories" in page and page.index("featured-stories") < page.index('id="stories"')
    mod.post(f"/moderation/stories/{story.id}/unfeature")
    assert fresh(Story, story).featured_at is None
    assert "featured-stories" not in client.get("/c/ev").get_data(as_text=True)
    mod.post(f"/moderation/stories/{story.id}/feature")
    assert balance_of(author) == points("story_posted") + points("story_featured"), "paid once"
    notes = db.session.scalar(select(func.count()).select_from(Notification).where(
        Notification.user_id == author.id, Notification.kind == "story_featured"))
    assert notes == 1
    assert audit_actions(story) == ["story.feature", "story.unfeature", "story.feature"]


def test_only_the_communitys_moderators_feature(login_as, member, story):
    assert login_as(member).post(f"/moderation/stories/{story.id}/feature").status_code == 403
    assert fresh(Story, story).featured_at is None


# -- prohibited words ----------------------------------------------------------------------

def test_admins_add_and_remove_words_and_a_new_block_word_refuses_a_story(login_as, factories, author, communities):
    admin = login_as(factories.user(role="admin"))
    assert admin.post("/admin/words", data={"word": "  假货 ", "action": "block"}).status_code == 302
    row = db.session.scalar(select(ProhibitedWord))
    assert (row.word, row.action) == ("假货", "block")
    assert admin.post("/admin/words", data={"word": "ABC代理", "action": "review"}).status_code == 302
    assert db.session.scalar(select(ProhibitedWord.word).where(ProhibitedWord.action == "review")) == "abc代理"
    duplicate = admin.post("/admin/words", data={"word": "abc代理", "action": "block"})
    assert duplicate.status_code == 422 and 'value="abc代理"' in duplicate.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(ProhibitedWord)) == 2
    assert 'data-word="假货"' in admin.get("/admin/words").get_data(as_text=True)

    response = login_as(author).post("/stories/new", data={"community": communities["ev"].id, "title": "便宜的假货电池",
                                                           "body": BODY, "action": "publish",
                                                           "nonce": new_nonce()},
                                     content_type="multipart/form-data")
    assert response.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(Story)) == 0

    assert admin.post(f"/admin/words/{row.id}/delete").status_code == 302
    assert db.session.scalar(select(ProhibitedWord).where(ProhibitedWord.word == "假货")) is None
    actions = list(db.session.scalars(select(AuditEntry.action).where(AuditEntry.target_type == "prohibited_words")
                                      .order_by(AuditEntry.id)))  # PostgreSQL returns rows in no set order
    assert actions == ["word.add", "word.add", "word.delete"]


def test_only_admins_manage_words(login_as, moderator):
    assert login_as(moderator).post("/admin/words", data={"word": "x", "action": "block"}).status_code == 403
    assert db.session.scalar(select(ProhibitedWord)) is None


def test_moderation_pages_have_no_inline_code(login_as, factories, member, moderator, story):
    report(login_as(member), story_id=story.id)
    mod = login_as(moderator)
    page = mod.get(f"/stories/{story.id}").get_data(as_text=True)
    assert f"/moderation/stories/{story.id}/hide" in page and f"/moderation/stories/{story.id}/feature" in page
    for html in (page, mod.get("/moderation").get_data(as_text=True), mod.get("/moderation/c/ev").get_data(as_text=True),
                 login_as(factories.user(role="admin")).get("/admin/words").get_data(as_text=True)):
        assert_no_inline_code(html)


def test_members_report_a_comment_from_the_story_page(login_as, factories, communities):
    from models import Report
    from models.engagement import add_comment
    from models.stories import StoryInput, recount_stories, save_story

    writer = factories.user(login="13955550001", verified=True)
    story = save_story(writer, StoryInput(communities["ev"], "有评论的故事", "正文正文正文正文正文正文。", []), publish=True)
    comment = add_comment(story, writer, "这条评论有广告")
    db.session.commit()
    reader = login_as(factories.user(login="13955550002", verified=True))
    page = reader.get(f"/stories/{story.id}").get_data(as_text=True)
    assert f'data-comment="{comment.id}" data-actions="reply report"' in page and 'data-opens="report-comment"' in page
    assert 'name="comment_id" value=""' in page
    page = reader.get(f"/stories/{story.id}?report={comment.id}").get_data(as_text=True)  # without JS
    assert f'name="comment_id" value="{comment.id}"' in page
    reader.post("/moderation/report", data={"comment_id": comment.id, "reason": "spam"})
    report = db.session.scalar(select(Report))
    assert report.comment_id == comment.id and report.status == "open"
