"""The store: SQLModel tables (:mod:`.models`), the engine and set-based helpers
(:mod:`.database`) and the run lock (:mod:`.lock`)."""
