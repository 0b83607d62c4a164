"""Touchpoints keyed by a named unique index, ``ux_touchpoint_key`` on (source, key), instead of
the table's ``UNIQUE (source, key)`` constraint: a load into an empty table drops the index and
builds it once after the rows are in (one sort instead of an insert at a random place per row),
which SQLite cannot do with a constraint (its index belongs to the table).

On SQLite the table is copied into one of the same columns without the constraint, which
replaces it (ids kept; about 100 s for 10M touches, once); on PostgreSQL the
constraint is dropped in place. A store that has the index already (made by ``create_all`` at
this version) is left as it is. Idempotent, as every revision after the baseline (see
``connector.store.migrate``).

Revision ID: 0005_touchpoint_key_index
Revises: 0004_credit_model_code
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine.interfaces import ReflectedUniqueConstraint

from connector.store.models import UtcDateTime

revision = "0005_touchpoint_key_index"
down_revision = "0004_credit_model_code"
branch_labels = None
depends_on = None

KEY = ["source", "key"]
INDEX = "ux_touchpoint_key"
NEXT = "touchpoint_next"
# The touchpoint table's other indexes at this revision (dropped with the table on SQLite).
PLAIN = {
    "ix_touchpoint_occurred_at": ["occurred_at"],
    "ix_touchpoint_origin": ["origin"],
    "ix_touchpoint_journey": ["contact_id", "id", "occurred_at", "channel", "superseded"],
    "ix_touchpoint_channel": ["channel"],
}


def _columns() -> list[sa.Column[Any]]:
    text = ["source", "key", "identity_kind", "identity_value", "utm_source", "utm_medium"]
    text += ["utm_campaign", "landing_page", "campaign_id", "preset_channel", "channel"]
    return [
        sa.Column("id", sa.Integer(), primary_key=True),
        *(sa.Column(name, sa.String(), nullable=False) for name in text[:2]),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        *(sa.Column(name, sa.String(), nullable=False) for name in text[2:]),
        sa.Column("campaign_key", sa.String(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("superseded", sa.Boolean(), nullable=False),
        sa.Column("origin", sa.String(), nullable=False),
    ]


def _key_constraint() -> ReflectedUniqueConstraint | None:
    found = sa.inspect(op.get_bind()).get_unique_constraints("touchpoint")
    return next((c for c in found if c["column_names"] == KEY), None)


def _rebuild(key_constraint: bool) -> None:
    """SQLite: copy ``touchpoint`` into a table of the same columns, with the key's unique
    constraint or without, and put it in its place with its indexes."""
    op.execute(f"DROP TABLE IF EXISTS {NEXT}")  # left by an upgrade that was killed
    constraints = [sa.UniqueConstraint(*KEY)] if key_constraint else []
    op.create_table(NEXT, *_columns(), *constraints)
    names = ", ".join(f'"{c.name}"' for c in _columns())
    op.execute(f"INSERT INTO {NEXT} ({names}) SELECT {names} FROM touchpoint")
    op.execute("DROP TABLE touchpoint")
    op.execute(f"ALTER TABLE {NEXT} RENAME TO touchpoint")
    for name, columns in PLAIN.items():
        op.create_index(name, "touchpoint", columns)


def upgrade() -> None:
    constraint = _key_constraint()
    if constraint is not None:
        if op.get_bind().dialect.name == "sqlite":
            _rebuild(key_constraint=False)
        else:
            op.drop_constraint(str(constraint["name"]), "touchpoint", type_="unique")
    op.create_index(INDEX, "touchpoint", KEY, unique=True, if_not_exists=True)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="touchpoint")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(key_constraint=True)
    else:
        op.create_unique_constraint("touchpoint_source_key_key", "touchpoint", KEY)
