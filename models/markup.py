"""User Markdown to safe HTML: a real CommonMark parser, then an allow-list sanitizer.

Raw HTML in the Markdown is not rendered (markdown-it's `html` option is off) and nh3
(ammonia) removes anything outside the allow-list afterwards, so a script in a story can
only ever show up as text. Links get `rel="nofollow ugc noopener"`.
"""
from __future__ import annotations

from html.parser import HTMLParser

import nh3
from markdown_it import MarkdownIt

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable("strikethrough")

ALLOWED_TAGS = {
    "p", "br", "strong", "em", "del", "s", "blockquote", "ul", "ol", "li", "h3", "h4", "code", "pre", "hr", "a",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}


def render_markdown(text: str) -> str:
    """Sanitized HTML for TEXT. Headings are demoted to h3/h4 so a story never outranks the page."""
    html = _md.render(text or "")
    for level, shown in ((1, 3), (2, 3), (5, 4), (6, 4)):
        html = html.replace(f"<h{level}>", f"<h{shown}>").replace(f"</h{level}>", f"</h{shown}>")
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow ugc noopener",
    )


_BLOCKS = {"p", "br", "blockquote", "ul", "ol", "li", "h3", "h4", "pre", "hr"}


class _TextOnly(HTMLParser):
    """The words of sanitized story HTML: no marks, blocks separated by a space."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in _BLOCKS:
            self.parts.append(" ")

    def handle_endtag(self, tag):
        if tag in _BLOCKS:
            self.parts.append(" ")

    def handle_data(self, data):
        self.parts.append(data)


def plain_text(html: str, at_least: int | None = None) -> str:
    """What a reader sees of sanitized HTML, as one line of plain text (for excerpts and search
    snippets: no **, #, >, list dashes or [text](url) left over from the Markdown).

    With AT_LEAST, only the opening of a long HTML is read when it holds more than that many
    characters of text (a card's excerpt needs 90 of a story's thousands): the text starts the
    same, it just stops sooner."""
    html = html or ""
    if at_least is not None and len(html) > 8 * at_least:
        opening = _text_of(html[: 8 * at_least], complete=False)
        if len(opening) > at_least:
            return opening
    return _text_of(html)


def _text_of(html: str, complete: bool = True) -> str:
    parser = _TextOnly()
    parser.feed(html)
    if complete:  # a cut-off opening ends mid-tag: what is left unparsed is not text
        parser.close()
    return " ".join("".join(parser.parts).split())
