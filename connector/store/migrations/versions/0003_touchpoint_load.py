"""Touchpoints load faster.

- The index on ``touchpoint.identity_value`` goes: the match step looks identities up in
  ``identity``'s own index, and every load paid for this one at a random place per row.
- ``read_at`` goes from ``touchpoint`` and ``spend``: a complete read (a CSV file) finds the
  rows it no longer holds against the rows it staged, so a re-read of unchanged rows writes
  nothing (no stamp per row).

Idempotent, as every revision after the baseline (see ``connector.store.migrate``).

Revision ID: 0003_touchpoint_load
Revises: 0002_scale
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from connector.store.models import UtcDateTime

revision = "0003_touchpoint_load"
down_revision = "0002_scale"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_touchpoint_identity_value", table_name="touchpoint", if_exists=True)
    existing = sa.inspect(op.get_bind())
    for table in ("touchpoint", "spend"):
        if "read_at" in {c["name"] for c in existing.get_columns(table)}:
            op.drop_column(table, "read_at")  # SQLite >= 3.35 drops it in place


def downgrade() -> None:
    for table in ("touchpoint", "spend"):
        op.add_column(table, sa.Column("read_at", UtcDateTime(), nullable=True))
    op.create_index("ix_touchpoint_identity_value", "touchpoint", ["identity_value"])
