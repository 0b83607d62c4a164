"""One sync run, a module per step, in the order they run:

    extract -> match -> revenue -> attribute -> writeback      (sync: the orchestration)

:mod:`.context` builds what a run needs once; :mod:`.preflight` checks every system and field
before the first step (and :mod:`.doctor` reuses its checks); :mod:`.values` serves the
write-back; :mod:`.rollback` and :mod:`.forget` are runs of their own kind. Each step reads from
and writes to the store, so any step can run alone and a killed run resumes.
"""
