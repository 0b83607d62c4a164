"""Meta Ads source adapter (see adapter.py)."""
