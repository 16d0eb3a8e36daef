"""Fixture helper: functions append what they received to $OUTPUT_DIR/<name>.jsonl for the tests."""

import json
import os
import threading

_lock = threading.Lock()


def record(function_name: str, **fields) -> None:
    out_dir = os.environ.get("OUTPUT_DIR")
    if not out_dir:
        return
    with _lock, open(os.path.join(out_dir, f"{function_name}.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps(fields, default=str) + "\n")
