"""The web layer: one package per area of the site (registered in blueprints/registry.py) and
the helpers they share (access.py, web.py, transactions.py, times.py, i18n.py)."""
