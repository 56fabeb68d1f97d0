"""Loads a retort run directory as Hugging Face `datasets` users do, and prints what it found.

Usage: load_outputs.py RUN_DIR CONFIG [CONFIG ...]
Prints one JSON object: for the default load and each config, the column names and row count,
and for each Parquet file the same through the parquet builder.
"""
import glob
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
import datasets  # noqa: E402

datasets.disable_progress_bars()
datasets.logging.set_verbosity_error()
run_dir, configs = sys.argv[1], sys.argv[2:]
cache = os.path.join(run_dir, ".hf-cache")
found = {}
default = datasets.load_dataset(run_dir, split="train", cache_dir=cache)
found["default"] = {"columns": default.column_names, "rows": default.num_rows}
for config in configs:
    split = datasets.load_dataset(run_dir, config, split="train", cache_dir=cache)
    found[config] = {"columns": split.column_names, "rows": split.num_rows, "first": split[0] if split.num_rows else None}
import pyarrow.parquet  # noqa: E402

for path in sorted(glob.glob(os.path.join(run_dir, "*.parquet"))):
    metadata = pyarrow.parquet.read_metadata(path)
    if metadata.num_rows == 0:
        # `datasets` builds no split from a file without rows; pyarrow (and pandas) read its columns.
        table = pyarrow.parquet.read_table(path)
        found[os.path.basename(path)] = {"columns": table.column_names, "rows": table.num_rows}
        continue
    split = datasets.load_dataset("parquet", data_files=path, split="train", cache_dir=cache)
    found[os.path.basename(path)] = {"columns": split.column_names, "rows": split.num_rows}
print(json.dumps(found, default=str))
