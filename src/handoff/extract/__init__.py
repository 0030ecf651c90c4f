"""Reading the source: the allow-listed SELECT and its chunks, a consistent snapshot with the counts
that explain it, values read as the order's types, client-side ordering in bounded memory, and the
Parquet files what passes is staged as. Uses ``policy``; never the decisions or the delivery.
"""
