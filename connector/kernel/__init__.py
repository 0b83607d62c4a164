"""The kernel: what every part of closedloop and every adapter may import, and nothing more.

    records     Touchpoint, Spend, CrmRecord, CrmDeal, FieldSpec, RecordUpdate, WriteResult,
                TouchSchema and TouchRecord* (touchpoint records in the CRM)
    protocols   SourceAdapter, CrmAdapter: the two shapes an adapter takes; TouchRecordWriter
    errors      ConfigError, TransientError, BudgetExhausted, Interrupted, Unavailable,
                RecordError
    retry       call_with_retry: the one retry policy (tenacity, honours Retry-After)
    ratelimit   RateLimiter: wait before a request instead of collecting 429s
    metrics     the metric names adapters and runs report to (the service only exposes them)
    timeutil    parse and print aware UTC datetimes
    identity    email normalisation and hashing, id clean-up
    batches     chunks(): a stream cut into batches

The kernel imports nothing else of closedloop (an import-linter contract checks it).
"""
