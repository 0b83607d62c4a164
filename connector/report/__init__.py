"""The closed-loop report: assembled from the store (:mod:`.closed_loop`), shown as a terminal
table (:mod:`.terminal`), CSV or JSON, or an offline HTML page (:mod:`.html`)."""
