"""Signed decisions and what they allow: counsel's signature on an order version, the court
calendar and its outcomes, the emergency stop, which version is in force, operators' transfer requests,
approvals, and the chain of authority a delivery carries. Decides from the ledger, never from files
or rows that can be edited. Uses ``signing``, ``state``, ``storage`` and ``policy``.
"""
