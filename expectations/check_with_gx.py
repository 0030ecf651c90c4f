"""Check a delivered Parquet file against a suite in plain Great Expectations (GX Core 1.x), without handoff.

    python check_with_gx.py suites/ORDER.vN.json part-00000.parquet 2026-01-07

The suite's date expectations end at ``{"$PARAMETER": "snapshot_date"}``: the day the source was
read (the manifest's ``delivered_at`` date is a safe stand-in), bound here to its last second. Date
columns are compared as instants, so they are read as datetime64. Exit 0 when every expectation
passes, 1 when one fails.
"""

import json
import sys

import great_expectations as gx
import pandas as pd
import pyarrow.parquet as pq
from great_expectations.core import ExpectationSuite
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

suite_file, parquet_file, snapshot_date = sys.argv[1:4]
with open(suite_file, encoding="utf-8") as fh:
    doc = json.load(fh)
bound = f"{snapshot_date}T23:59:59"  # the day the source was read, to its last second
expectations = []
for e in doc["expectations"]:
    kwargs = {
        k: (bound if isinstance(v, dict) and v.get("$PARAMETER") == "snapshot_date" else v)
        for k, v in e["kwargs"].items()
    }
    expectations.append(ExpectationConfiguration(type=e["type"], kwargs=kwargs).to_domain_obj())
table = pq.read_table(parquet_file)
frame = table.to_pandas()
for name in frame.columns:  # dates as datetime64, so the between-expectations compare instants
    if str(table.schema.field(name).type) == "date32[day]":
        frame[name] = pd.to_datetime(frame[name])
context = gx.get_context(mode="ephemeral")
batch = (
    context.data_sources.add_pandas("delivered")
    .add_dataframe_asset("file")
    .add_batch_definition_whole_dataframe("whole")
    .get_batch(batch_parameters={"dataframe": frame})
)
result = batch.validate(ExpectationSuite(name=doc["name"], expectations=expectations))
print("success:", result.success, "evaluated:", len(result.results))
sys.exit(0 if result.success else 1)
