"""Baseline: the tables closedloop 0.1 made with ``create_all`` (a store made by it is stamped
at this revision once it has every table and column).

Revision ID: 0001_baseline
Revises: (none: the first revision)
Create Date: 2026-12-03 16:34:47.334374
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from connector.store.models import UtcDateTime

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contact",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crm_object", sa.String(), nullable=False),
        sa.Column("crm_id", sa.String(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("account_id", sa.String(), nullable=True),
        sa.Column("merged_into", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("crm_id"),
    )
    op.create_table(
        "contact_consent",
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("contact_id", "field"),
    )
    op.create_table(
        "contact_journey",
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("first_touch_id", sa.Integer(), nullable=True),
        sa.Column("lead_touch_id", sa.Integer(), nullable=True),
        sa.Column("last_touch_id", sa.Integer(), nullable=True),
        sa.Column("touch_count", sa.Integer(), nullable=False),
        sa.Column("channel_path", sa.String(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("contact_id"),
    )
    op.create_table(
        "conversion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("destination", sa.String(), nullable=False),
        sa.Column("milestone", sa.String(), nullable=False),
        sa.Column("subject_id", sa.String(), nullable=False),
        sa.Column("contact_crm_id", sa.String(), nullable=False),
        sa.Column("dedup_id", sa.String(), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("currency", sa.String(), nullable=True),
        sa.Column("value_base", sa.Float(), nullable=True),
        sa.Column("campaign", sa.String(), nullable=False),
        sa.Column("matched_by", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("sent_at", UtcDateTime(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("platform", "destination", "dedup_id"),
    )
    with op.batch_alter_table("conversion", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_conversion_contact_crm_id"), ["contact_crm_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_conversion_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_conversion_subject_id"), ["subject_id"], unique=False)

    op.create_table(
        "conversion_adjustment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("conversion_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("old_value", sa.Float(), nullable=True),
        sa.Column("new_value", sa.Float(), nullable=True),
        sa.Column("adjusted_at", UtcDateTime(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("conversion_adjustment", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_conversion_adjustment_conversion_id"), ["conversion_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_conversion_adjustment_run_id"), ["run_id"], unique=False
        )

    op.create_table(
        "credit",
        sa.Column("deal_id", sa.Integer(), nullable=False),
        sa.Column("touchpoint_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("fraction", sa.Float(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("deal_id", "touchpoint_id", "model"),
    )
    op.create_table(
        "cursor",
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("stream", sa.String(), nullable=False),
        sa.Column("value", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", "stream"),
    )
    op.create_table(
        "deal",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("crm_object", sa.String(), nullable=False),
        sa.Column("crm_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("currency", sa.String(), nullable=True),
        sa.Column("amount_base", sa.Float(), nullable=True),
        sa.Column("stage", sa.String(), nullable=False),
        sa.Column("is_won", sa.Boolean(), nullable=False),
        sa.Column("is_closed", sa.Boolean(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.Column("account_id", sa.String(), nullable=True),
        sa.Column("close_date", sa.Date(), nullable=True),
        sa.Column("close_day_end", UtcDateTime(), nullable=True),
        sa.Column("stage_label", sa.String(), nullable=False),
        sa.Column("stage_order", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("crm_id"),
    )
    op.create_table(
        "deal_contact",
        sa.Column("deal_crm_id", sa.String(), nullable=False),
        sa.Column("contact_crm_id", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("deal_crm_id", "contact_crm_id"),
    )
    op.create_table(
        "field_write",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("crm_object", sa.String(), nullable=False),
        sa.Column("record_id", sa.String(), nullable=False),
        sa.Column("field", sa.String(), nullable=False),
        sa.Column("old_value", sa.String(), nullable=True),
        sa.Column("new_value", sa.String(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("error", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("field_write", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_field_write_record_id"), ["record_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_field_write_run_id"), ["run_id"], unique=False)

    op.create_table(
        "forgotten",
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.Column("forgotten_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "value"),
    )
    op.create_table(
        "job_lock",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("token", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("process", sa.String(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("acquired_at", UtcDateTime(), nullable=False),
        sa.Column("heartbeat_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "rejected_row",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("message", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("rejected_row", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rejected_row_run_id"), ["run_id"], unique=False)

    op.create_table(
        "spend",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(), nullable=False),
        sa.Column("account", sa.String(), nullable=False),
        sa.Column("campaign_id", sa.String(), nullable=False),
        sa.Column("campaign", sa.String(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("currency", sa.String(), nullable=False),
        sa.Column("cost_base", sa.Float(), nullable=True),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.Column("impressions", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("campaign_key", sa.String(), nullable=False),
        sa.Column("origin", sa.String(), nullable=False),
        sa.Column("read_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("platform", "account", "campaign_id", "day"),
    )
    op.create_table(
        "sync_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("counts", sa.String(), nullable=False),
        sa.Column("error", sa.String(), nullable=False),
        sa.Column("api_calls", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "touch_record",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("crm_id", sa.String(), nullable=True),
        sa.Column("inputs_hash", sa.BigInteger(), nullable=False),
        sa.Column("values_hash", sa.BigInteger(), nullable=False),
        sa.Column("written", sa.String(), nullable=False),
        sa.Column("person_id", sa.String(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("touch_record", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_touch_record_person_id"), ["person_id"], unique=False)

    op.create_table(
        "touchpoint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("identity_kind", sa.String(), nullable=False),
        sa.Column("identity_value", sa.String(), nullable=False),
        sa.Column("utm_source", sa.String(), nullable=False),
        sa.Column("utm_medium", sa.String(), nullable=False),
        sa.Column("utm_campaign", sa.String(), nullable=False),
        sa.Column("landing_page", sa.String(), nullable=False),
        sa.Column("campaign_id", sa.String(), nullable=False),
        sa.Column("preset_channel", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("campaign_key", sa.String(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("superseded", sa.Boolean(), nullable=False),
        sa.Column("origin", sa.String(), nullable=False),
        sa.Column("read_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "key"),
    )
    with op.batch_alter_table("touchpoint", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_touchpoint_channel"), ["channel"], unique=False)
        batch_op.create_index(batch_op.f("ix_touchpoint_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_touchpoint_identity_value"), ["identity_value"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_touchpoint_occurred_at"), ["occurred_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_touchpoint_origin"), ["origin"], unique=False)

    op.create_table(
        "identity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contact.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "value", "contact_id"),
    )
    with op.batch_alter_table("identity", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_contact_id"), ["contact_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_identity_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_identity_value"), ["value"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("identity", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_value"))
        batch_op.drop_index(batch_op.f("ix_identity_kind"))
        batch_op.drop_index(batch_op.f("ix_identity_contact_id"))

    op.drop_table("identity")
    with op.batch_alter_table("touchpoint", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_touchpoint_origin"))
        batch_op.drop_index(batch_op.f("ix_touchpoint_occurred_at"))
        batch_op.drop_index(batch_op.f("ix_touchpoint_identity_value"))
        batch_op.drop_index(batch_op.f("ix_touchpoint_contact_id"))
        batch_op.drop_index(batch_op.f("ix_touchpoint_channel"))

    op.drop_table("touchpoint")
    with op.batch_alter_table("touch_record", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_touch_record_person_id"))

    op.drop_table("touch_record")
    op.drop_table("sync_run")
    op.drop_table("spend")
    with op.batch_alter_table("rejected_row", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rejected_row_run_id"))

    op.drop_table("rejected_row")
    op.drop_table("job_lock")
    op.drop_table("forgotten")
    with op.batch_alter_table("field_write", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_field_write_run_id"))
        batch_op.drop_index(batch_op.f("ix_field_write_record_id"))

    op.drop_table("field_write")
    op.drop_table("deal_contact")
    op.drop_table("deal")
    op.drop_table("cursor")
    op.drop_table("credit")
    with op.batch_alter_table("conversion_adjustment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversion_adjustment_run_id"))
        batch_op.drop_index(batch_op.f("ix_conversion_adjustment_conversion_id"))

    op.drop_table("conversion_adjustment")
    with op.batch_alter_table("conversion", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversion_subject_id"))
        batch_op.drop_index(batch_op.f("ix_conversion_run_id"))
        batch_op.drop_index(batch_op.f("ix_conversion_contact_crm_id"))

    op.drop_table("conversion")
    op.drop_table("contact_journey")
    op.drop_table("contact_consent")
    op.drop_table("contact")
