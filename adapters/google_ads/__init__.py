"""Google Ads source adapter (see adapter.py)."""
