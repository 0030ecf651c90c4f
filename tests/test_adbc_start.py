"""The snapshot's row query starts without pandas: ADBC's DB-API imports ``pyarrow.dataset`` (for a
bulk ingest handoff never runs), which imports pandas, about 0.2 s before the database could start
its scan. Deferred, it loads wherever it is used (in a fresh interpreter: the switch is per process)."""

from __future__ import annotations

import json
import subprocess
import sys

SCRIPT = """
import json, sys
import sqlalchemy as sa
import handoff.staging.pipeline  # as a transfer does, before it opens the read
from handoff.extract.snapshot import fast_path_available

seen = {"fast": fast_path_available(sa.create_engine("postgresql+psycopg://u@127.0.0.1:1/x")),
        "pandas": "pandas" in sys.modules}
import pyarrow
import pyarrow.dataset as ds

table = pyarrow.table({"x": [1, 2, 3]})
seen["dataset_used"] = ds.dataset(table).to_table().num_rows
seen["loaded"] = type(sys.modules["pyarrow.dataset"]).__name__ == "module" and pyarrow.dataset.dataset is ds.dataset
print(json.dumps(seen))
"""


def test_adbc_loads_without_pandas_and_pyarrow_dataset_still_works() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "fast": True, "pandas": False, "dataset_used": 3, "loaded": True,
    }  # fmt: skip
