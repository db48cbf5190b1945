"""Reading served HTML the way the CSP does: no inline script, style or event handler."""
from __future__ import annotations

from html.parser import HTMLParser


class Tags(HTMLParser):
    """Every start tag with its attributes, and any text inside <script>/<style>."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.inline_code: list[str] = []
        self._open = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._open = tag

    def handle_endtag(self, tag):
        if tag == self._open:
            self._open = None

    def handle_data(self, data):
        if self._open and data.strip():
            self.inline_code.append(f"<{self._open}>{data.strip()[:60]}")


def assert_no_inline_code(html: str) -> Tags:
    """Fail on anything a strict Content-Security-Policy would block; returns the parsed tags."""
    tags = Tags(html)
    assert not tags.inline_code, tags.inline_code
    for tag, attrs in tags.tags:
        assert tag != "style", "no <style> element"
        assert "style" not in attrs, f"inline style on <{tag}>"
        handlers = [a for a in attrs if a.startswith("on") or a.startswith("hx-on")]
        assert not handlers, f"inline handler {handlers} on <{tag}>"
        if tag == "script":
            assert attrs.get("src"), "every script is a file"
    return tags
