"""Alert rules on the live graph and their evaluation (issue 10; docs/alerts.md).

``states`` is the state machine (pure), ``metrics`` and ``targets`` what a rule measures and
on what, ``rules`` a rule's fields checked together; ``windows`` and ``series_windows`` read
the live windows from Redis, ``window_cache`` keeps settled data between cycles;
``evaluator`` runs one cycle (lock, read), ``recording`` its transaction (step, record);
``backtest`` is the preview over the last hour, ``api`` and ``schemas`` the endpoints,
``tasks`` the Celery beat task.
"""
