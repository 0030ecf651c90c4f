"""The court order as data: versioned order files, the source data model, who may be disclosed
(population and scope as SQL), content rules, the Great Expectations suites built from an order, and
which new versions may be recorded as only narrowing it. Uses nothing of handoff but ``errors``.
"""
