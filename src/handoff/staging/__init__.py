"""Extract, check and stage one batch: the part that decides *what* may leave. ``start`` verifies
the signed request and the order's signature; ``pipeline`` and ``partition`` run extract and
checks; ``record`` writes the batch and its ``staged`` ledger entry; ``revalidate`` moves a staged
batch to a newer order version. Uses everything below ``gates``.
"""
