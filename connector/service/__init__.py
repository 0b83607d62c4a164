"""``closedloop serve``: the scheduler (:mod:`.scheduler`), ``/healthz`` and ``/metrics``
(:mod:`.http`) and logs with secrets redacted (:mod:`.logs`)."""
