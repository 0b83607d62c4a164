"""closedloop: marketing touchpoints in, lead-source fields and attributed revenue out."""

__version__ = "0.1.0"
