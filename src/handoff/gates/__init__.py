"""The gates: pure decisions over a batch, its order and the runtime view (``decide``), and the
keeper that reads what they look at in the acting transaction and records the status they imply.
"""
