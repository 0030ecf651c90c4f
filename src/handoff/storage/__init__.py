"""The two buckets as S3 sees them: the recipient's handoff bucket (checked, exactly-once,
encrypted writes) and the write-once audit bucket (ledger anchors and stop markers, read with their
versions). Uses ``state`` and ``signing``.
"""
