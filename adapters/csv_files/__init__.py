"""CSV files source adapter (see adapter.py)."""
