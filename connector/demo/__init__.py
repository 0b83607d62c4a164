"""``closedloop demo``: a synthetic company (:mod:`.synthetic`) seeded into the emulators, which
start on 127.0.0.1 with a config pointing at them (:mod:`.emulators`)."""
