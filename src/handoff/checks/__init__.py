"""Checking what would leave: row quarantine by the content rules, Great Expectations validation,
and both per chunk in threads or worker processes. Uses ``policy`` and ``extract``.
"""
