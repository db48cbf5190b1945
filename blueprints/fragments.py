"""Rendered fragments kept per process, keyed by everything they show.

A story card is the same HTML for every member who sees the same counts in the same language,
and a feed page renders twenty of them: rendering one is most of a page's template time. In a
template:

    {% call cached_fragment("card", story.id, story.updated_at, …every value it shows…) %}
      …the fragment…
    {% endcall %}

The key is the whole list of values the fragment depends on, so nothing is ever invalidated:
a changed value is a new key, and the old entry ages out of the bounded LRU. What is not in the
key must not vary between members (no nonces, no per-member links). The CSRF token is the one
exception, for a fragment that holds forms (`csrf=true`): it is kept as a hole and the member's
own token goes in on each use.
"""
from __future__ import annotations

import secrets
import threading
from collections import OrderedDict

from flask import Flask, current_app
from flask_babel import get_locale
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup

MAX_ENTRIES = 5_000  # about 1.5 KB a card: under 8 MB a process
# Where a cached fragment's forms take the member's token; random per process, so no text a
# member wrote can pose as one.
CSRF_HOLE = f"\x00csrf-{secrets.token_hex(8)}\x00"


class FragmentCache:
    """A bounded, thread-safe LRU of rendered HTML."""

    def __init__(self, max_entries: int = MAX_ENTRIES):
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, Markup] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get_or_render(self, key: tuple, render) -> Markup:
        with self._lock:
            html = self._entries.get(key)
            if html is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return html
        html = Markup(render())  # outside the lock: two threads may render the same card once each
        with self._lock:
            self.misses += 1
            self._entries[key] = html
            if len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return html

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0


def init_fragments(app: Flask) -> None:
    app.extensions["fragments"] = FragmentCache()

    def cached_fragment(*key, caller, csrf=False):
        # The language is always part of the key: the same card in English is another fragment.
        cache, key = current_app.extensions["fragments"], (str(get_locale()), *key)
        if not csrf:
            return cache.get_or_render(key, caller)
        token = generate_csrf()  # one per request (Flask-WTF keeps it in g)
        html = cache.get_or_render(key, lambda: str(caller()).replace(token, CSRF_HOLE))
        return Markup(str(html).replace(CSRF_HOLE, token))

    app.jinja_env.globals["cached_fragment"] = cached_fragment
