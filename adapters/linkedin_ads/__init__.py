"""LinkedIn Ads source adapter (see adapter.py)."""
