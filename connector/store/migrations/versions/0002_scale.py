"""The store at scale: write-back digests (an unchanged re-sync reads nothing back), the audit
index a batch settles by (run, record) in place of the run-only one, and the journey index the
attribute step reads touches from.

Idempotent, as every revision after the baseline (see ``connector.store.migrate``).

Revision ID: 0002_scale
Revises: 0001_baseline
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_scale"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "writeback_record",
        sa.Column("crm_object", sa.String(), nullable=False),
        sa.Column("record_id", sa.String(), nullable=False),
        sa.Column("digest", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("crm_object", "record_id"),
        if_not_exists=True,
    )
    op.drop_index("ix_field_write_run_id", table_name="field_write", if_exists=True)
    op.create_index(
        "ix_field_write_run_record", "field_write", ["run_id", "record_id"], if_not_exists=True
    )
    op.drop_index("ix_touchpoint_contact_id", table_name="touchpoint", if_exists=True)
    op.create_index(
        "ix_touchpoint_journey",
        "touchpoint",
        ["contact_id", "id", "occurred_at", "channel", "superseded"],
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_index("ix_touchpoint_journey", table_name="touchpoint")
    op.create_index("ix_touchpoint_contact_id", "touchpoint", ["contact_id"])
    op.drop_index("ix_field_write_run_record", table_name="field_write")
    op.create_index("ix_field_write_run_id", "field_write", ["run_id"])
    op.drop_table("writeback_record")
