"""Many accounts on Celery workers: ``fleet.yaml`` and its accounts (``accounts``), each
account's schema in one PostgreSQL store (``schemas``), the Celery app and its one task
(``tasks``), the worker (``worker``), the scheduler that queues every account's jobs
(``scheduler``) and the rate limiters all workers share through Redis (``limiter``)."""
