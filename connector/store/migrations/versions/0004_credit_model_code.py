"""Credits keyed by (model, deal, touch), the model stored as a small-integer code, and on SQLite
the table is its key (WITHOUT ROWID): the attribute step rewrites the whole table, so its rows
are made as small and as cheap to append as they can be.

The rows are copied into a table of the new shape, which replaces ``credit``; a store whose
``credit.model`` is an integer already (made by ``create_all`` at this version, then stamped at
the baseline) is left as it is. The codes are those of ``connector.store.models.CREDIT_MODELS``
when this revision was written, frozen here; a row of any other model name is dropped (no
closedloop ever wrote one). Idempotent, as every revision after the baseline (see
``connector.store.migrate``).

Revision ID: 0004_credit_model_code
Revises: 0003_touchpoint_load
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004_credit_model_code"
down_revision = "0003_touchpoint_load"
branch_labels = None
depends_on = None

MODELS = (
    "first_touch",
    "last_touch",
    "last_non_direct",
    "linear",
    "time_decay",
    "position_based",
    "w_shaped",
    "full_path",
    "markov",
    "markov_k",
    "shapley",
)
NEXT = "credit_next"


def _model_is_integer() -> bool:
    columns = sa.inspect(op.get_bind()).get_columns("credit")
    model = next(c for c in columns if c["name"] == "model")
    return isinstance(model["type"], sa.Integer)


def _rebuild(model: sa.types.TypeEngine[Any], key: list[str], convert: str) -> None:
    """Copy ``credit`` into a new table with ``model`` of type ``model`` (the value ``convert``
    computes from the old ``model``), keyed by ``key``, and put it in place of ``credit``."""
    bind = op.get_bind()
    op.execute(f"DROP TABLE IF EXISTS {NEXT}")  # left by an attribute step that was killed
    op.create_table(
        NEXT,
        sa.Column("model", model, nullable=False),
        sa.Column("deal_id", sa.Integer(), nullable=False),
        sa.Column("touchpoint_id", sa.Integer(), nullable=False),
        sa.Column("fraction", sa.Float(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(*key),
        sqlite_with_rowid=key[0] != "model",
    )
    op.execute(
        f"INSERT INTO {NEXT} (model, deal_id, touchpoint_id, fraction, amount) "
        f"SELECT model, deal_id, touchpoint_id, fraction, amount FROM ("
        f"SELECT {convert} AS model, deal_id, touchpoint_id, fraction, amount FROM credit"
        ") old WHERE model IS NOT NULL"
    )
    op.execute("DROP TABLE credit")
    op.execute(f"ALTER TABLE {NEXT} RENAME TO credit")
    if bind.dialect.name == "postgresql":
        op.execute(f"ALTER INDEX {NEXT}_pkey RENAME TO credit_pkey")


def upgrade() -> None:
    if _model_is_integer():
        return
    to_code = " ".join(f"WHEN '{name}' THEN {code}" for code, name in enumerate(MODELS))
    _rebuild(sa.SmallInteger(), ["model", "deal_id", "touchpoint_id"], f"CASE model {to_code} END")


def downgrade() -> None:
    to_name = " ".join(f"WHEN {code} THEN '{name}'" for code, name in enumerate(MODELS))
    _rebuild(sa.String(), ["deal_id", "touchpoint_id", "model"], f"CASE model {to_name} END")
